"""Authentication: every route's answer to every kind of caller, bearer tokens from a token file
(reloaded on change), OIDC JWTs from a local issuer (keys made here, rotated), scopes, and each
caller seeing only its own runs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web

from tests.auth_helpers import AUDIENCE, LocalIssuer, bearer, challenge, write_tokens
from tests.helpers import Client, ClientFactory, SettingsFactory, until
from tests.processes import free_port
from wtrunner import cli
from wtrunner.api.operations import Access, Operation
from wtrunner.api.routes import OPERATIONS
from wtrunner.app import create_app
from wtrunner.auth.tokens import new_token, token_line
from wtrunner.logs import JsonFormatter
from wtrunner.processes import wtrunner_command
from wtrunner.scopes import Scope
from wtrunner.server import exposure_warning
from wtrunner.settings import Settings, SettingsError

ECHO = "wt-test-echo-workflow"
CLIENTS: dict[str, tuple[Scope, ...] | None] = {
    "reader": (Scope.READ,),
    "runner": (Scope.RUN,),
    "alice": None,  # run and read
    "bob": None,
    "ops": (Scope.ADMIN,),
}
CALLERS = "alice@example.org,ops@example.org=admin,reader-subject=read"
NEEDS = {Access.READ: Scope.READ, Access.RUN: Scope.RUN, Access.METRICS: Scope.READ,
         Access.PUSH: Scope.RUN}  # fmt: skip
LACKS = {Scope.READ: "runner", Scope.RUN: "reader"}
HAS = {Scope.READ: "reader", Scope.RUN: "runner"}


@dataclass
class Secured:
    """The app with authentication on: token file clients and the local OIDC issuer."""

    client: Client
    tokens: dict[str, str]
    issuer: LocalIssuer
    tokens_file: Path


@pytest.fixture
async def secured(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path,
    local_issuer: LocalIssuer,
) -> Secured:  # fmt: skip
    tokens_file = tmp_path / "tokens.txt"
    tokens = write_tokens(tokens_file, CLIENTS)
    settings = make_settings(
        auth_tokens_file=tokens_file,
        oidc_issuers=f"{local_issuer.url}={AUDIENCE}|https://other.test",
        oidc_callers=CALLERS,
        metrics_auth=True,
        kill_grace_seconds=0.2,
        results_roots=(str(tmp_path),),  # (with authentication on, <cache>/results otherwise)
    )
    return Secured(await make_client(settings), tokens, local_issuer, tokens_file)


def _call(client: Client, op: Operation, headers: dict[str, str]) -> Any:
    """``op`` with placeholder path parameters, no query and an empty JSON object for a body:
    what a handler answers then does not matter here, only whether it was reached."""
    path = op.path.replace("{run_id}", "no-such-run").replace("{name}", ECHO)
    body = {"json": {}} if op.method == "POST" else {}
    return client.request(op.method, path, headers=headers, **body)


async def _refused(response: ClientResponse, status: int, invalid_token: bool) -> str:
    """'' if ``response`` is the JSON refusal expected, else what is wrong with it."""
    if response.status != status:
        return f"{response.status} instead of {status}"
    if response.content_type != "application/json" or "detail" not in await response.json():
        return "not a JSON body with a detail"
    if status == 401:
        header = challenge(response.headers)
        if not header.startswith("Bearer") or ('error="invalid_token"' in header) != invalid_token:
            return f"WWW-Authenticate: {header!r}"
    return ""


async def test_every_route_answers_each_kind_of_caller(secured: Secured) -> None:
    client, tokens, issuer = secured.client, secured.tokens, secured.issuer
    unpublished = issuer.add_key(publish=False)
    bad_tokens = {
        "wrong token": new_token(),
        "expired JWT": issuer.token(email="alice@example.org", email_verified=True, lifetime=-120),
        "JWT not valid yet": issuer.token(nbf=int(time.time()) + 3600),
        "badly signed JWT": issuer.token(sign_with=unpublished, email="alice@example.org",
                                         email_verified=True),
        "JWT of a key not published": issuer.token(unpublished, email="alice@example.org",
                                                   email_verified=True),
        "JWT for another audience": issuer.token(audience="https://elsewhere.test"),
        "JWT of another issuer": issuer.token(iss="https://issuer.elsewhere.test"),
        "JWT without exp": issuer.token(exp=None),
        "HS256 JWT made with the public key": _hmac_token(issuer),
    }  # fmt: skip
    problems = []
    for op in OPERATIONS:
        name = f"{op.method} {op.path}"
        if op.access is Access.OPEN:
            response = await _call(client, op, {})
            if response.status in (401, 403):
                problems.append(f"{name} is open but answered {response.status}")
            continue
        scope = NEEDS[op.access]
        expected = [
            ("anonymous", {}, 401, False),
            ("another scheme", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, 401, False),
            ("without the scope", bearer(tokens[LACKS[scope]]), 403, False),
            *[(kind, bearer(token), 401, True) for kind, token in bad_tokens.items()],
        ]
        for kind, headers, status, invalid in expected:
            problem = await _refused(await _call(client, op, headers), status, invalid)
            if problem:
                problems.append(f"{name}, {kind}: {problem}")
        allowed = {
            "the scope": bearer(tokens[HAS[scope]]),
            "run and read": bearer(tokens["alice"]),
            "admin": bearer(tokens["ops"]),
            "OIDC caller": bearer(issuer.token(email="alice@example.org", email_verified=True)),
            "OIDC admin": bearer(issuer.token(email="ops@example.org", email_verified=True,
                                              audience="https://other.test")),
        }  # fmt: skip
        for kind, headers in allowed.items():
            response = await _call(client, op, headers)
            if response.status in (401, 403):
                problems.append(f"{name}, {kind}: {response.status}")
    assert problems == []


def _hmac_token(issuer: LocalIssuer) -> str:
    """A token "signed" with HS256 using the issuer's public key as the secret (the classic
    algorithm confusion): it must never verify."""
    kid = issuer.published[-1]
    secret = json.dumps(issuer.jwk(kid)).encode()

    def part(value: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signed = part({"alg": "HS256", "typ": "JWT", "kid": kid}) + b"." + part(
        {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": 4102444800,
         "email": "ops@example.org", "email_verified": True}
    )  # fmt: skip
    signature = base64.urlsafe_b64encode(hmac.digest(secret, signed, hashlib.sha256))
    return (signed + b"." + signature.rstrip(b"=")).decode()


async def test_a_rotated_key_is_fetched_once_its_kid_is_seen(secured: Secured) -> None:
    client, issuer = secured.client, secured.issuer
    claims = {"email": "alice@example.org", "email_verified": True}
    first = await client.get("/runs", headers=bearer(issuer.token(**claims)))
    assert first.status == 200
    assert issuer.jwks_fetches == 1
    old = issuer.published[-1]
    again = await client.get("/runs", headers=bearer(issuer.token(**claims)))
    assert again.status == 200 and issuer.jwks_fetches == 1  # the keys are kept

    new = issuer.rotate("ES256")

    async def accepted() -> bool:
        response = await client.get("/runs", headers=bearer(issuer.token(new, **claims)))
        return response.status == 200

    await until(accepted, 10, "the rotated key to be accepted")
    assert issuer.jwks_fetches >= 2

    async def old_refused() -> bool:
        response = await client.get("/runs", headers=bearer(issuer.token(old, **claims)))
        return response.status == 401

    await until(old_refused, 10, "the retired key to be refused")


async def test_an_oidc_caller_is_named_by_its_verified_email_or_its_subject(
    secured: Secured,
) -> None:
    client, issuer = secured.client, secured.issuer
    # an email the issuer did not verify names nobody: the subject counts, and is no caller
    unverified = issuer.token(email="ops@example.org", email_verified=False)
    response = await client.get("/runs", headers=bearer(unverified))
    assert response.status == 403
    assert "subject-1" in (await response.json())["detail"]
    # a subject listed with the read scope may read, not run
    reader = bearer(issuer.token(sub="reader-subject"))
    assert (await client.get("/runs", headers=reader)).status == 200
    refused = await client.post("/runs", json={}, headers=reader)
    assert refused.status == 403
    assert 'error="insufficient_scope"' in challenge(refused.headers)


async def test_an_issuer_out_of_reach_is_a_503_not_a_401(
    make_client: ClientFactory, make_settings: SettingsFactory, local_issuer: LocalIssuer
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    client = await make_client(make_settings(oidc_issuers=f"{closed}={AUDIENCE}", oidc_callers="*"))
    token = local_issuer.token(iss=closed)
    for _ in range(2):  # the second at once: the failure is reported, not fetched again
        response = await client.get("/runs", headers=bearer(token))
        assert response.status == 503
        assert closed in (await response.json())["detail"]


async def test_the_token_file_is_reloaded_when_it_changes(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    client, tokens_file = secured.client, secured.tokens_file
    alice = bearer(secured.tokens["alice"])
    assert (await client.get("/runs", headers=alice)).status == 200

    carol_token = new_token()
    tokens_file.write_text(token_line("carol", carol_token, [Scope.READ]) + "\n")
    assert (await client.get("/runs", headers=bearer(carol_token))).status == 200
    assert (await client.get("/runs", headers=alice)).status == 401

    pasted = new_token()  # a token pasted where its hash belongs
    with caplog.at_level(logging.ERROR):
        tokens_file.write_text(f"# carol\n{token_line('carol', carol_token)}\ndave:{pasted}\n")
        assert (await client.get("/runs", headers=bearer(carol_token))).status == 200
    reports = [r.getMessage() for r in caplog.records if r.name == "wtrunner.auth.tokens"]
    assert len(reports) == 1 and "line 3" in reports[0] and "stay in use" in reports[0]
    assert pasted not in caplog.text

    tokens_file.unlink()
    with caplog.at_level(logging.ERROR):
        assert (await client.get("/runs", headers=bearer(carol_token))).status == 200


async def test_a_token_file_swapped_like_a_kubernetes_secret_is_reloaded(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    # a Secret volume: the file is a symlink through ..data, which is swapped atomically
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    old = write_tokens(first / "tokens.txt", {"ci": None})
    new = write_tokens(second / "tokens.txt", {"ci": None})
    (tmp_path / "..data").symlink_to(first)
    (tmp_path / "tokens.txt").symlink_to(tmp_path / "..data" / "tokens.txt")
    client = await make_client(make_settings(auth_tokens_file=tmp_path / "tokens.txt"))
    assert (await client.get("/runs", headers=bearer(old["ci"]))).status == 200
    (tmp_path / "..data-new").symlink_to(second)
    os.replace(tmp_path / "..data-new", tmp_path / "..data")
    assert (await client.get("/runs", headers=bearer(new["ci"]))).status == 200
    assert (await client.get("/runs", headers=bearer(old["ci"]))).status == 401


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("alice:abc\n", "line 1: the second field must be the token's SHA-256"),
        (f"# ok\n\n{'a' * 64}\n", "line 3: not name:sha256-hex"),
        (f"alice:{'a' * 64}:run,write\n", "line 1: unknown scope 'write'"),
        (f"alice:{'a' * 64}\nbob:{'a' * 64}\n", "line 2: the same token as line 1"),
        ("bad name:" + "a" * 64 + "\n", "line 1: the name must be"),
    ],
)
async def test_an_unusable_token_file_stops_start_up_naming_the_line(
    make_settings: SettingsFactory, tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(content)
    runner = web.AppRunner(create_app(make_settings(auth_tokens_file=path)))
    try:
        with pytest.raises(SettingsError, match="WTRUNNER_AUTH_TOKENS_FILE") as info:
            await runner.setup()
    finally:
        await runner.cleanup()
    assert words in str(info.value)


async def test_serve_with_a_bad_token_file_exits_2_with_the_line(
    tmp_path: Path, channel: Path
) -> None:
    path = tmp_path / "tokens.txt"
    secret = new_token()
    path.write_text(f"ci:{secret}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wtrunner", "serve", "--port", str(free_port()),
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
             "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
             "WTRUNNER_CHANNELS": channel.as_uri(), "WTRUNNER_AUTH_TOKENS_FILE": str(path)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert b"line 1" in stderr and secret.encode() not in stderr


async def test_callers_see_and_act_on_their_own_runs_only(secured: Secured, tmp_path: Path) -> None:
    client, tokens = secured.client, secured.tokens
    alice, bob, ops = bearer(tokens["alice"]), bearer(tokens["bob"]), bearer(tokens["ops"])

    async def submit(headers: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
        response = await client.post(
            "/runs", params={"matchspec": ECHO}, headers=headers,
            json={"params": {"echo": {"message": name}}, "execution_mode": "sequential",
                  "mock_io": True, "results_url": str(tmp_path / name), **body},
        )  # fmt: skip
        assert response.status == 202, await response.text()
        return dict(await response.json())

    mine = await submit(alice, "alice-1", workflow_run_id="alice-run")
    theirs = await submit(bob, "bob-1")
    assert (mine["client"], theirs["client"]) == ("alice", "bob")
    for run in (mine, theirs):
        done = await client.get(f"/runs/{run['id']}", params={"wait": "30"}, headers=ops)
        assert (await done.json())["state"] == "succeeded"

    listed = await (await client.get("/runs", headers=alice)).json()
    assert [run["id"] for run in listed["runs"]] == [mine["id"]]
    everyone = await (await client.get("/runs", headers=ops)).json()
    assert {run["id"] for run in everyone["runs"]} == {mine["id"], theirs["id"]}

    missing = await client.get("/runs/no-such-run", headers=alice)
    for method, path in [
        ("GET", f"/runs/{theirs['id']}"),
        ("GET", f"/runs/{theirs['id']}/logs"),
        ("POST", f"/runs/{theirs['id']}/cancel"),
        ("DELETE", f"/runs/{theirs['id']}"),
    ]:
        response = await client.request(method, path, headers=alice)
        assert response.status == 404, (method, path)
        body = await response.json()
        assert body["detail"] == f"no run {theirs['id']}"  # as for a run that does not exist
        assert set(body) == set(await missing.json())
    assert (await client.get(f"/runs/{mine['id']}/logs", headers=alice)).status == 200
    assert (await client.get(f"/runs/{theirs['id']}/logs", headers=ops)).status == 200

    # another client's run id is not taken over, nor named
    response = await client.post(
        "/runs", params={"matchspec": ECHO}, headers=bob,
        json={"params": {"echo": {"message": "alice-1"}}, "execution_mode": "sequential",
              "mock_io": True, "results_url": str(tmp_path / "alice-1"),
              "workflow_run_id": "alice-run"},
    )  # fmt: skip
    assert response.status == 409
    assert mine["id"] not in await response.text()

    assert (await client.delete(f"/runs/{theirs['id']}", headers=bob)).status == 204


async def test_the_synchronous_run_and_its_logs_are_the_callers(
    secured: Secured, tmp_path: Path
) -> None:
    client, tokens = secured.client, secured.tokens
    response = await client.post(
        "/", params={"matchspec": ECHO}, headers=bearer(tokens["runner"]),
        json={"params": {"echo": {"message": "sync"}}, "execution_mode": "sequential",
              "mock_io": True, "results_url": str(tmp_path / "sync")},
    )  # fmt: skip
    assert response.status == 200
    run_id = response.headers["X-Run-ID"]
    record = await (await client.get(f"/runs/{run_id}", headers=bearer(tokens["ops"]))).json()
    assert record["client"] == "runner"
    # the runner may not read (no read scope); the reader may read only its own: none
    assert (await client.get(f"/runs/{run_id}", headers=bearer(tokens["runner"]))).status == 403
    assert (await client.get(f"/runs/{run_id}", headers=bearer(tokens["reader"]))).status == 404


async def test_log_lines_name_the_caller_never_the_token(secured: Secured, tmp_path: Path) -> None:
    token = secured.tokens["alice"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        response = await secured.client.post(
            "/", params={"matchspec": ECHO}, headers=bearer(token),
            json={"params": {"echo": {"message": "logged"}}, "execution_mode": "sequential",
                  "mock_io": True, "results_url": str(tmp_path / "logged")},
        )  # fmt: skip
        assert response.status == 200
        refused = await secured.client.get("/runs", headers=bearer(token + "x"))
        assert refused.status == 401
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    run_lines = [line for line in lines if line.get("run_id")]
    assert run_lines and all(line.get("client") == "alice" for line in run_lines)
    assert any(line["message"].startswith("refused GET /runs (401)") for line in lines)
    assert token not in stream.getvalue()


async def test_without_authentication_everything_is_open_and_recorded_for_nobody(
    client: Client, tmp_path: Path
) -> None:
    response = await client.post(
        "/runs", params={"matchspec": ECHO},
        json={"params": {"echo": {}}, "execution_mode": "sequential", "mock_io": True,
              "results_url": str(tmp_path / "open")},
    )  # fmt: skip
    assert response.status == 202
    assert (await response.json())["client"] is None
    assert (await client.get("/runs", headers=bearer("anything"))).status == 200


async def test_the_openapi_document_declares_the_bearer_scheme_and_refusals(
    client: Client,
) -> None:
    document = await (await client.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    paths = document["paths"]
    assert paths["/runs"]["get"]["security"] == [{"bearerAuth": ["read"]}]
    assert paths["/runs"]["post"]["security"] == [{"bearerAuth": ["run"]}]
    assert {"401", "403", "415", "421"} <= set(paths["/runs"]["post"]["responses"])
    assert "WWW-Authenticate" in paths["/runs"]["get"]["responses"]["401"]["headers"]
    assert paths["/metrics"]["get"]["security"] == [{}, {"bearerAuth": ["read"]}]
    for open_path in ("/", "/livez", "/readyz", "/openapi.json"):
        operation = paths[open_path]["get"]
        assert "security" not in operation and "401" not in operation["responses"]


def test_settings_describe_issuers_callers_and_push(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        oidc_issuers="https://issuer.test/=aud-1|aud-2,https://accounts.google.com=x",
        oidc_callers="a@example.org,ops=admin|read,*=read",
    )
    assert settings.auth_enabled
    assert settings.oidc_audiences == {
        "https://issuer.test": ("aud-1", "aud-2"),
        "https://accounts.google.com": ("x",),
    }
    assert settings.oidc_caller_scopes["a@example.org"] == {Scope.RUN, Scope.READ}
    assert settings.oidc_caller_scopes["*"] == {Scope.READ}
    assert settings.effective_cors_origins == ()
    for bad, words in [
        ({"oidc_issuers": "https://issuer.test"}, "names no audience"),
        ({"oidc_issuers": "http://issuer.test=a", "oidc_callers": "*"}, "over https"),
        ({"oidc_issuers": "https://issuer.test=a"}, "WTRUNNER_OIDC_CALLERS is empty"),
        ({"oidc_issuers": "https://i.test=a", "oidc_callers": "x=own"}, "unknown scope 'own'"),
        ({"pubsub_push_audience": "https://a.test"}, "go together"),
        ({"cors_origins": "https://a.test/app"}, "not an origin"),
        ({"cors_origins": "*,https://a.test"}, "stand alone"),
        ({"allowed_hosts": "a.test:8080"}, "not a host name"),
    ]:
        with pytest.raises(ValueError, match=words):
            Settings(**bad)


def test_serve_warns_when_it_listens_beyond_loopback_without_authentication(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.txt"
    assert exposure_warning(Settings(host="127.0.0.1")) is None
    assert exposure_warning(Settings(host="localhost")) is None
    assert exposure_warning(Settings(host="0.0.0.0", auth_tokens_file=tokens)) is None
    warning = exposure_warning(Settings(host="0.0.0.0"))
    assert warning is not None and "authentication off" in warning
    assert "every interface" in (exposure_warning(Settings(host="")) or "")


async def test_wtrunner_token_makes_a_line_the_server_accepts(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert cli.main(["token", "ci-bot", "--scopes", "read"]) == 0
    out, err = capsys.readouterr()
    line = out.strip()
    token = err.strip().rsplit(" ", 1)[-1]
    assert line.startswith("ci-bot:") and line.endswith(":read") and token not in out
    (tmp_path / "tokens.txt").write_text(line + "\n")
    client = await make_client(make_settings(auth_tokens_file=tmp_path / "tokens.txt"))
    assert (await client.get("/runs", headers=bearer(token))).status == 200
    assert (await client.post("/runs", json={}, headers=bearer(token))).status == 403
    assert cli.main(["token", "ci-bot", "--scopes", "everything"]) == 2


async def test_wtrunner_runs_sends_the_token_of_wtrunner_token(secured: Secured) -> None:
    url = str(secured.client.make_url("")).rstrip("/")

    async def runs_list(token: str | None) -> tuple[int, str]:
        env = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
        if token is not None:
            env["WTRUNNER_TOKEN"] = token
        process = await asyncio.create_subprocess_exec(
            *wtrunner_command(), "runs", "list", "--json", "--url", url, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, (out + err).decode()

    assert await runs_list(secured.tokens["reader"]) == (0, "[]\n")
    code, output = await runs_list(None)
    assert code == 1 and "HTTP 401" in output
