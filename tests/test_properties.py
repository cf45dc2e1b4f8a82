"""Property-based: whatever a client sends as MatchSpec, results URL or data-connection
variables, the answer is a clean 4xx or a run — never a crash (against a real server)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import LiveServer
from tests.pubsub_helpers import push_body, run_command

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TRIVIAL = "wt-test-trivial-workflow"
ECHO = "wt-test-echo-workflow"


def _post(server: LiveServer, query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
    url = f"{server.url}/?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, content_type = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, content_type = error.code, error.read(), error.headers
    assert content_type["Content-Type"].startswith("application/json")
    return status, json.loads(raw)


def _body(server: LiveServer, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "params": {"echo": {}},
        "execution_mode": "sequential",
        "mock_io": True,
        "results_url": str(server.results_root / uuid.uuid4().hex),
    }
    body.update(changes)
    return body


def _not_a_crash(status: int, body: Any) -> None:
    assert status != 500 or body.get("error"), f"a crash, not an outcome: {body}"
    if status == 422:
        assert isinstance(body["detail"], list) and body["detail"]


matchspecs = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\Awt-[a-z-]{0,12}(-workflow)?( ?[<>=!~]{1,2}[0-9.*]{0,6})?\Z"),
    st.sampled_from([ECHO, f"{ECHO}>=1", f"{ECHO} 1.*", f"{ECHO}==1.0.0", "conda-forge::x"]),
)


@given(spec=matchspecs)
@PROPERTY_SETTINGS
def test_any_matchspec_gets_a_clean_answer(live_server: LiveServer, spec: str) -> None:
    status, body = _post(live_server, {"matchspec": spec}, _body(live_server))
    _not_a_crash(status, body)
    assert status in (200, 404, 422), (spec, status, body)
    if status == 422:
        assert any(item["loc"][-1] == "matchspec" for item in body["detail"])


segments = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12)
results_urls = st.one_of(
    st.text(max_size=80),
    st.builds(lambda parts: "/" + "/".join(parts), st.lists(segments, max_size=4)),
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from(["file", "gs", "s3", "ftp", "FILE", "memory", "GS"]),
        st.text(max_size=40),
    ),
)


@given(url=results_urls)
@PROPERTY_SETTINGS
def test_any_results_url_gets_a_clean_answer(live_server: LiveServer, url: str) -> None:
    status, body = _post(live_server, {"matchspec": TRIVIAL}, _body(live_server, results_url=url))
    _not_a_crash(status, body)
    # file:// only under the server's results root; a cloud store that cannot be reached is 503
    assert status in (200, 422, 503), (url, status, body)
    if status == 503:
        assert urllib.parse.urlsplit(url).scheme.lower() in ("gs", "s3"), (url, body)


@given(url=st.builds(lambda parts: "/" + "/".join(parts), st.lists(segments, max_size=3)))
@PROPERTY_SETTINGS
def test_urls_under_the_root_run(live_server: LiveServer, url: str) -> None:
    target = f"{live_server.results_root}{url}"
    status, body = _post(
        live_server, {"matchspec": TRIVIAL}, _body(live_server, results_url=target)
    )
    _not_a_crash(status, body)
    assert status in (200, 422), (target, status, body)
    if status == 200:
        assert body["result"]["ok"] is True


names = st.one_of(st.text(max_size=20), st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z"))


@given(variables=st.dictionaries(names, st.text(max_size=40), max_size=4))
@PROPERTY_SETTINGS
def test_any_data_connection_variables_get_a_clean_answer(
    live_server: LiveServer, variables: dict[str, str]
) -> None:
    params = {"echo": {"env": list(variables)}}
    body = _body(live_server, params=params, data_connections_env_vars=variables)
    status, answer = _post(live_server, {"matchspec": ECHO}, body)
    _not_a_crash(status, answer)
    assert status in (200, 422), (variables, status, answer)
    if status == 200:  # every variable reached the workflow exactly
        assert answer["result"]["env"] == variables


def test_lone_surrogates_are_refused_cleanly(live_server: LiveServer) -> None:
    raw = (
        '{"params": {"echo": {}}, "execution_mode": "sequential", "mock_io": true, '
        f'"results_url": "{live_server.results_root}/s", '
        '"data_connections_env_vars": {"GOOD_NAME": "\\ud800"}}'
    )
    request = urllib.request.Request(
        f"{live_server.url}/?matchspec={ECHO}",
        data=raw.encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        assert error.code == 422
        detail = json.loads(error.read())["detail"]
        assert detail[0]["loc"][0] == "body"
    else:
        raise AssertionError("a lone surrogate must be refused")


async def test_lone_surrogates_in_pubsub_commands_are_errors(client: Any, tmp_path: Any) -> None:
    # Python's json accepts lone surrogates where pydantic's parser does not
    command = run_command(ECHO, {"echo": {}}, tmp_path / "r", data_connections_env_vars={})
    raw = json.dumps(command).replace(
        '"data_connections_env_vars": {}', '"data_connections_env_vars": {"A_NAME": "\\ud800"}'
    )
    response = await client.post("/run-from-pubsub", json=push_body(raw.encode()))
    body = await response.json()
    assert (response.status, body["status"]) == (200, "error")
    assert "A_NAME" in body["error"]
