"""A canary secret in data_connections_env_vars appears in no response, log line, span, file
left on disk, or error result — whatever happens to the run and whichever door it came in by."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import ClientFactory, SettingsFactory
from tests.pubsub_helpers import push_body, run_command

CANARY = "canary-7d1f0b2e-secret"
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
