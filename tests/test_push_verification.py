"""Verified Pub/Sub push: ``POST /run-from-pubsub`` runs only what a push subscription of the
configured service account sends, with Google-style tokens signed by a local issuer (its keys
made here) that stands in for accounts.google.com."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.auth_helpers import LocalIssuer, bearer, challenge, write_tokens
from tests.helpers import Client, ClientFactory, SettingsFactory
from tests.pubsub_helpers import push_body, run_command
from wtrunner.auth.oidc import InvalidToken, IssuerKeys, TokenVerifier
from wtrunner.keys import RUNS
from wtrunner.settings import GOOGLE_ISSUER

ECHO = "wt-test-echo-workflow"
PUSH_AUDIENCE = "https://wtrunner.example.org/run-from-pubsub"
PUSHER = "pubsub-push@my-project.iam.gserviceaccount.com"


@pytest.fixture
async def pushed_to(
    make_client: ClientFactory, make_settings: SettingsFactory, local_issuer: LocalIssuer
) -> Client:
    """The app with push verification on (and authentication otherwise off)."""
    settings = make_settings(
        pubsub_push_audience=PUSH_AUDIENCE,
        pubsub_push_service_accounts=f"{PUSHER},other@my-project.iam.gserviceaccount.com",
        pubsub_push_issuer=local_issuer.url,
    )
    return await make_client(settings)


def _push_token(issuer: LocalIssuer, **claims: Any) -> str:
    """What Pub/Sub sends: a Google-signed ID token of the push service account."""
    defaults: dict[str, Any] = {
        "audience": PUSH_AUDIENCE,
        "email": PUSHER,
        "email_verified": True,
        "sub": "104912345678901234567",
        "azp": "104912345678901234567",
    }
    return issuer.token(**{**defaults, **claims})


async def _push(client: Client, results: Path, headers: dict[str, str]) -> Any:
    command = run_command(ECHO, {"echo": {"message": "pushed"}}, results)
    return await client.post("/run-from-pubsub", json=push_body(command), headers=headers)


async def test_a_push_of_the_service_account_runs(
    pushed_to: Client, local_issuer: LocalIssuer, tmp_path: Path
) -> None:
    response = await _push(pushed_to, tmp_path / "r", bearer(_push_token(local_issuer)))
    assert (response.status, await response.json()) == (200, {"status": "processed"})
    assert (tmp_path / "r" / "result.json").is_file()
    page = await pushed_to.app[RUNS].store.list()
    assert [(run.front_door, run.client) for run in page.runs] == [("pubsub-push", PUSHER)]
    # the rest of the API is open: authentication itself is off
    assert (await pushed_to.get("/runs")).status == 200


@pytest.mark.parametrize(
    ("case", "claims", "status"),
    [
        ("another audience", {"audience": "https://elsewhere.example.org"}, 401),
        ("expired", {"lifetime": -600}, 401),
        ("unverified email", {"email_verified": False}, 401),
        ("no email", {"email": None}, 401),
        ("another service account", {"email": "intruder@evil.iam.gserviceaccount.com"}, 403),
        ("another issuer", {"iss": "https://accounts.google.com.evil.example"}, 401),
    ],
)
async def test_a_push_token_that_does_not_fit_runs_nothing(
    pushed_to: Client,
    local_issuer: LocalIssuer,
    tmp_path: Path,
    case: str,
    claims: dict[str, Any],
    status: int,
) -> None:
    response = await _push(pushed_to, tmp_path / "r", bearer(_push_token(local_issuer, **claims)))
    assert response.status == status, case
    assert response.content_type == "application/json"
    if status == 401:
        assert 'error="invalid_token"' in challenge(response.headers)
    assert not (tmp_path / "r").exists()
    assert (await pushed_to.app[RUNS].store.list()).runs == []


async def test_a_push_without_a_google_token_runs_nothing(
    pushed_to: Client, local_issuer: LocalIssuer, tmp_path: Path
) -> None:
    forged_key = local_issuer.add_key(publish=False)
    for headers in (
        {},
        bearer("wtr_not-a-jwt"),
        bearer(_push_token(local_issuer, sign_with=forged_key)),
    ):
        response = await _push(pushed_to, tmp_path / "r", headers)
        assert response.status == 401, headers
        assert challenge(response.headers).startswith("Bearer")
    assert not (tmp_path / "r").exists()


async def test_with_authentication_on_a_push_needs_the_push_token_not_a_client_token(
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    local_issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    tokens = write_tokens(tmp_path / "tokens.txt", {"ops": None})
    client = await make_client(
        make_settings(
            auth_tokens_file=tmp_path / "tokens.txt",
            pubsub_push_audience=PUSH_AUDIENCE,
            pubsub_push_service_accounts=PUSHER,
            pubsub_push_issuer=local_issuer.url,
            results_roots=(str(tmp_path),),
        )
    )
    refused = await _push(client, tmp_path / "r", bearer(tokens["ops"]))
    assert refused.status == 401
    accepted = await _push(client, tmp_path / "r", bearer(_push_token(local_issuer)))
    assert accepted.status == 200
    # the pushed run is the service account's: the ops token (no admin) does not see it
    assert (await (await client.get("/runs", headers=bearer(tokens["ops"]))).json())["runs"] == []


async def test_without_push_settings_and_authentication_a_push_is_open(
    client: Client, tmp_path: Path
) -> None:
    response = await _push(client, tmp_path / "r", {})
    assert (response.status, await response.json()) == (200, {"status": "processed"})


async def test_google_tokens_name_their_issuer_either_way(local_issuer: LocalIssuer) -> None:
    # Google signs with iss "https://accounts.google.com" or "accounts.google.com"; the keys
    # here are the local issuer's, standing in for Google's
    async with aiohttp.ClientSession() as session:
        verifier = TokenVerifier(
            {GOOGLE_ISSUER: (PUSH_AUDIENCE,)},
            {GOOGLE_ISSUER: IssuerKeys(local_issuer.url, session)},
        )
        for iss in (GOOGLE_ISSUER, "accounts.google.com"):
            claims = await verifier.verify(_push_token(local_issuer, iss=iss))
            assert claims["email"] == PUSHER
        with pytest.raises(InvalidToken, match="not accepted"):
            await verifier.verify(_push_token(local_issuer, iss="google.com"))
