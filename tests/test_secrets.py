"""A canary secret in data_connections_env_vars appears in no response, log line, span, file
left on disk, or error result — whatever happens to the run and whichever door it came in by;
nor does a bearer token (of the token file, or an OIDC JWT), accepted or refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.auth_helpers import AUDIENCE, LocalIssuer, bearer
from tests.helpers import ClientFactory, SettingsFactory
from tests.pubsub_helpers import push_body, run_command
from wtrunner.auth.tokens import token_line
from wtrunner.scopes import Scope

CANARY = "canary-7d1f0b2e-secret"
TOKEN_CANARY = "wtr_canary-5c2e9d0a-token"
SECRETS = {"ER_PASSWORD": CANARY, "ER_TOKEN": f"Bearer {CANARY}"}


def _files_containing(root: Path, needle: str) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes()
    ]


async def test_the_canary_leaks_nowhere(
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # work dirs are kept here on purpose: even what is kept for debugging holds no secret
    settings = make_settings(kill_grace_seconds=0.2, keep_run_dirs=True)
    client = await make_client(settings)
    spans.clear()
    answers: list[str] = []
    http_cases = [
        ("wt-test-echo-workflow", {"echo": {"message": "ok"}}, {}),
        ("wt-test-echo-workflow", {"echo": {"raise": "the source refused"}}, {}),
        ("wt-test-crash-workflow", {}, {}),
        ("wt-test-slow-workflow", {"sleep": {"seconds": 30}}, {"timeout": "0.3"}),
        ("wt-test-echo-workflow", {"echo": {"message": 42}}, {}),  # fails the schema
        ("wt-no-such-workflow", {}, {}),
    ]
    with caplog.at_level(logging.DEBUG):
        for index, (package, params, query) in enumerate(http_cases):
            response = await client.post(
                "/",
                params={"matchspec": package, **query},
                json={
                    "params": params,
                    "execution_mode": "async",  # a Lithops config file is written too
                    "mock_io": True,
                    "results_url": str(tmp_path / "results" / str(index)),
                    "data_connections_env_vars": {**SECRETS, "PATH": CANARY},  # PATH: a 422
                },
            )
            answers.append(await response.text())
            response = await client.post(
                "/",
                params={"matchspec": package, **query},
                json={
                    "params": params,
                    "execution_mode": "sequential",
                    "mock_io": True,
                    "results_url": str(tmp_path / "results" / f"{index}-ok-names"),
                    "data_connections_env_vars": SECRETS,
                },
            )
            answers.append(await response.text())
        pushed = [
            ("wt-test-crash-workflow", {}),
            ("wt-test-echo-workflow", {"echo": {"raise": "x"}}),
        ]
        for package, params in pushed:
            command = run_command(
                package, params, tmp_path / "pushed" / package, data_connections_env_vars=SECRETS
            )
            response = await client.post("/run-from-pubsub", json=push_body(command))
            answers.append(await response.text())

    # the secrets did reach the workflow (its environment's names are in the echo result)
    assert any('"ER_PASSWORD"' in answer and '"ER_TOKEN"' in answer for answer in answers)
    for answer in answers:
        assert CANARY not in answer
    assert caplog.records and CANARY not in caplog.text
    exported = [span.to_json() for span in spans.get_finished_spans()]
    assert len(exported) > 10 and CANARY not in "".join(exported)
    assert _files_containing(tmp_path, CANARY) == []
    written = json.loads(
        (tmp_path / "pushed" / "wt-test-crash-workflow" / "result.json").read_text()
    )
    assert written["error"].startswith("The workflow exited with code 3")


async def test_bearer_tokens_leak_nowhere(
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    local_issuer: LocalIssuer,
) -> None:
    tokens_file = tmp_path / "tokens.txt"
    tokens_file.write_text(
        token_line("canary-client", TOKEN_CANARY) + "\n" + token_line("ops", CANARY, [Scope.ADMIN])
    )
    jwt = local_issuer.token(email="alice@example.org", email_verified=True)
    settings = make_settings(
        auth_tokens_file=tokens_file,
        oidc_issuers=f"{local_issuer.url}={AUDIENCE}",
        oidc_callers="alice@example.org",
        results_roots=(str(tmp_path),),
        keep_run_dirs=True,
        kill_grace_seconds=0.2,
    )
    client = await make_client(settings)
    spans.clear()
    answers: list[str] = []
    refused = [f"{TOKEN_CANARY}-wrong", jwt[:-4] + "AAAA", f"{jwt}.{TOKEN_CANARY}"]
    with caplog.at_level(logging.DEBUG):
        for index, token in enumerate((TOKEN_CANARY, jwt, *refused)):
            headers = bearer(token)
            for package, params in [
                ("wt-test-echo-workflow", {"echo": {"message": "ok"}}),
                ("wt-test-crash-workflow", {}),
            ]:
                results = tmp_path / "results" / f"{index}-{package}"
                body = {"params": params, "execution_mode": "sequential", "mock_io": True,
                        "results_url": str(results)}  # fmt: skip
                for path in ("/", "/runs"):
                    response = await client.post(
                        path, params={"matchspec": package}, json=body, headers=headers
                    )
                    answers.append(await response.text())
            listed = await client.get("/runs", headers=headers)
            answers.append(await listed.text())
            for run in (await listed.json()).get("runs", []):
                for suffix in ("?wait=30", "/logs"):
                    response = await client.get(f"/runs/{run['id']}{suffix}", headers=headers)
                    answers.append(await response.text())
        everything = await client.get("/runs", headers=bearer(CANARY))
        answers.append(await everything.text())

    records = (await everything.json())["runs"]
    assert {run["client"] for run in records} == {"canary-client", "alice@example.org"}
    secrets = [TOKEN_CANARY, CANARY, jwt, jwt.rsplit(".", 1)[1], *refused]
    exported = "".join(span.to_json() for span in spans.get_finished_spans())
    assert exported and caplog.records
    for secret in secrets:
        assert all(secret not in answer for answer in answers)
        assert secret not in caplog.text
        assert secret not in exported
        assert _files_containing(tmp_path, secret) == []
