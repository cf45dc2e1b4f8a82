"""What a request may put in its workflow's environment (``data_connections_env_vars``): never
a reserved name, in any case, through any front door; otherwise a name the pattern admits or
the package declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Client, ClientFactory, until
from tests.pubsub_helpers import Subscription, push_body, run_command
from wtrunner.keys import PUBSUB_CONSUMER
from wtrunner.reserved_env import RESERVED_ENV, reserved_because
from wtrunner.settings import SettingsError, load_settings

ECHO = "wt-test-echo-workflow"
TRIVIAL = "wt-test-trivial-workflow"
LOC = ["body", "data_connections_env_vars"]
PUBSUB_LOC = "payload.invoker_kwargs.data_connections_env_vars"


def _examples(pattern: str) -> list[str]:
    """Names an entry of the reserved table stands for, as written and in lower case."""
    if pattern.endswith("*"):
        name = pattern[:-1] + "X"
    elif pattern.startswith("*"):
        name = "X" + pattern[1:]
    else:
        name = pattern
    return [name, name.lower()]


RESERVED_NAMES = [name for pattern, _ in RESERVED_ENV for name in _examples(pattern)] + [
    "WT_RESULTS",  # the results variable
    "wt_results",
    "GOOGLE_CLOUD_PROJECT",  # the server passes its own on (see below)
    "LC_ALL",
    "Http_Proxy",
]


def _body(results: Path, variables: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"params": {"echo": {"env": list(variables)}}, "execution_mode": "sequential",
            "mock_io": True, "results_url": str(results),
            "data_connections_env_vars": variables, **extra}  # fmt: skip


def _items_by_name(detail: list[dict[str, Any]], prefix: list[str]) -> dict[str, str]:
    return {
        item["loc"][len(prefix)]: item["msg"]
        for item in detail
        if item["loc"][: len(prefix)] == prefix and len(item["loc"]) == len(prefix) + 1
    }


def test_the_table_is_case_insensitive_with_prefixes_and_suffixes() -> None:
    assert reserved_because("BASH_ENV") == reserved_because("bash_env") is not None
    assert reserved_because("PERL5OPT") and reserved_because("perl5lib")
    assert reserved_because("https_proxy") and reserved_because("NO_PROXY")
    assert reserved_because("CONDA_PREFIX") and reserved_because("SSL_CERT_DIR")
    for allowed in ("ER_TOKEN", "ECOSCOPE_WORKFLOWS__CONNECTIONS__ER__SERVER", "AWS_SECRET"):
        assert reserved_because(allowed) is None, allowed


@pytest.mark.parametrize("front_door", ["POST /", "Prefer: respond-async", "POST /runs"])
async def test_every_reserved_name_is_refused_on_every_http_front_door(
    client: Client, tmp_path: Path, front_door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "the-servers-project")
    variables = dict.fromkeys(RESERVED_NAMES, "value")
    path, headers = "/", {}
    if front_door == "POST /runs":
        path = "/runs"
    elif front_door == "Prefer: respond-async":
        headers = {"Prefer": "respond-async"}
    response = await client.post(
        path,
        params={"matchspec": ECHO},
        json=_body(tmp_path / "r", variables),
        headers=headers,
    )
    assert response.status == 422
    refused = _items_by_name((await response.json())["detail"], LOC)
    assert sorted(refused) == sorted(variables)
    assert all("reserved" in message for message in refused.values())
    assert not (tmp_path / "r").exists(), "nothing ran"


async def test_reserved_names_in_a_pushed_message_are_a_permanent_error(
    client: Client, tmp_path: Path
) -> None:
    variables = dict.fromkeys(("BASH_ENV", "node_options", "CONDA_PREFIX", "OK"), "value")
    command = run_command(ECHO, {"echo": {}}, tmp_path / "r", data_connections_env_vars=variables)
    response = await client.post("/run-from-pubsub", json=push_body(command))
    body = await response.json()
    assert (response.status, body["status"]) == (200, "error")  # acked: it can never run
    for name in ("BASH_ENV", "node_options", "CONDA_PREFIX"):
        assert f"{PUBSUB_LOC}.{name}: {name} is reserved" in body["error"]
    assert f"{PUBSUB_LOC}.OK" not in body["error"]
    written = json.loads((tmp_path / "r" / "result.json").read_text())
    assert written["result"] is None and "BASH_ENV is reserved" in written["error"]


async def test_reserved_names_in_a_pulled_message_are_acked_with_an_error(
    make_client: ClientFactory, subscription: Subscription, tmp_path: Path
) -> None:
    client = await make_client(pubsub_subscription=subscription.path, kill_grace_seconds=0.5)
    consumer = client.app[PUBSUB_CONSUMER]
    variables = {"PERL5OPT": "-Mevil", "TOKEN": "t"}
    await subscription.publish(
        run_command(ECHO, {"echo": {}}, tmp_path / "r", data_connections_env_vars=variables)
    )
    await until(lambda: consumer.stats.acked == 1, 60, "the message to be acked")
    written = json.loads((tmp_path / "r" / "result.json").read_text())
    assert f"{PUBSUB_LOC}.PERL5OPT: PERL5OPT is reserved" in written["error"]
    assert consumer.stats.nacked == 0


async def test_a_variable_the_server_passes_on_is_the_operators(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WT_SERVER_SETTING", "the operator's")
    client = await make_client()  # WTRUNNER_CHILD_ENV_PASSTHROUGH passes WT_* on by default
    variables = {"WT_SERVER_SETTING": "x", "wt_server_setting": "x"}
    response = await client.post(
        "/", params={"matchspec": ECHO}, json=_body(tmp_path / "r", variables)
    )
    assert response.status == 422
    refused = _items_by_name((await response.json())["detail"], LOC)
    assert sorted(refused) == sorted(variables)
    assert all("passes on its own value" in message for message in refused.values())

    # a WT_ name the server does not have is a data connection like any other (the example
    # workflow reads WT_CONNECTIONS__TRACKS__<NAME>__URL)
    variables = {"WT_CONNECTIONS__TRACKS__MAIN__URL": "https://er.example.org"}
    response = await client.post(
        "/", params={"matchspec": ECHO}, json=_body(tmp_path / "r", variables)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["result"]["env"] == variables


async def test_names_the_workflows_environment_sets_are_its_own(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    # WT_* is passed on by default; with it not passed on, the activation's name is still taken
    client = await make_client(child_env_passthrough=("TZ",))
    response = await client.post(
        "/",
        params={"matchspec": ECHO},
        json=_body(tmp_path / "r", {"WT_TEST_ACTIVATED": "no", "ER_TOKEN": "t"}),
    )
    assert response.status == 422
    refused = _items_by_name((await response.json())["detail"], LOC)
    assert list(refused) == ["WT_TEST_ACTIVATED"]
    assert "the workflow's environment sets it" in refused["WT_TEST_ACTIVATED"]


async def test_names_must_match_the_pattern_or_be_declared(client: Client, tmp_path: Path) -> None:
    # the echo package declares the data connection "EchoConnection"
    variables = {"EchoConnection": "declared", "ER_TOKEN": "matches the pattern"}
    response = await client.post(
        "/", params={"matchspec": ECHO}, json=_body(tmp_path / "ok", variables)
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["result"]["env"] == variables

    for name in ("Undeclared", "lower_case", "_LEADING"):
        response = await client.post(
            "/", params={"matchspec": ECHO}, json=_body(tmp_path / "no", {name: "x"})
        )
        assert response.status == 422, name
        refused = _items_by_name((await response.json())["detail"], LOC)
        assert list(refused) == [name]
        assert "WTRUNNER_DATA_CONNECTION_ENV_PATTERN" in refused[name]
    assert not (tmp_path / "no").exists(), "nothing ran"


async def test_the_pattern_is_a_setting(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(data_connection_env_pattern="ER_[A-Z_]+")
    variables = {"ER_TOKEN": "t", "EchoConnection": "declared"}
    response = await client.post(
        "/", params={"matchspec": ECHO}, json=_body(tmp_path / "a", variables)
    )
    assert response.status == 200, await response.text()

    response = await client.post(
        "/", params={"matchspec": ECHO}, json=_body(tmp_path / "b", {"OTHER_TOKEN": "t"})
    )
    assert response.status == 422
    assert list(_items_by_name((await response.json())["detail"], LOC)) == ["OTHER_TOKEN"]


async def test_a_package_without_declarations_admits_only_the_pattern(
    client: Client, tmp_path: Path
) -> None:
    # the trivial package has no `get` command at all: it declares nothing (not a 502)
    for _ in range(2):
        response = await client.post(
            "/",
            params={"matchspec": TRIVIAL},
            json={"params": {}, "execution_mode": "sequential", "mock_io": True,
                  "results_url": str(tmp_path / "r"),
                  "data_connections_env_vars": {"SomeConnection": "x"}},
        )  # fmt: skip
        assert response.status == 422
        detail = (await response.json())["detail"]
        assert [item["loc"] for item in detail] == [[*LOC, "SomeConnection"]]


async def test_an_undeclared_name_in_a_pushed_message_is_a_permanent_error(
    client: Client, tmp_path: Path
) -> None:
    command = run_command(
        ECHO, {"echo": {}}, tmp_path / "r", data_connections_env_vars={"Undeclared": "x"}
    )
    response = await client.post("/run-from-pubsub", json=push_body(command))
    body = await response.json()
    assert (response.status, body["status"]) == (200, "error")
    assert f"{PUBSUB_LOC}.Undeclared: Undeclared is neither" in body["error"]


def test_a_pattern_that_is_no_regular_expression_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WTRUNNER_DATA_CONNECTION_ENV_PATTERN", "[A-Z")
    with pytest.raises(SettingsError, match="WTRUNNER_DATA_CONNECTION_ENV_PATTERN"):
        load_settings()
