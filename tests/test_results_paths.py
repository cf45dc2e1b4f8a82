"""Where ``file://`` results may go: under the results roots once ``..`` and symbolic links are
resolved, never into /proc, /sys or /dev, and only under ``<cache>/results`` by default once
authentication is on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ClientFactory, SettingsFactory, post_run
from wtrunner.errors import RequestValidationError
from wtrunner.run_request import RunInput, build_run_request

ECHO = "wt-test-echo-workflow"


async def test_a_symbolic_link_out_of_the_roots_is_refused(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    root, outside = tmp_path / "results", tmp_path / "outside"
    (root / "inner").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "inner" / "up").symlink_to("../..")  # a relative link climbing out of the root
    (root / "inside").symlink_to(root / "inner")  # a link that stays inside is fine
    client = await make_client(results_roots=(str(root),))

    for url in (root / "link" / "r", f"file://{root}/inner/up/outside/r", root / "link"):
        status, body = await post_run(client, ECHO, {"echo": {}}, url)
        assert status == 422, url
        assert body["detail"][0]["loc"] == ["body", "results_url"]
        assert "results roots" in body["detail"][0]["msg"]
    assert list(outside.iterdir()) == [], "nothing was written through the link"

    status, body = await post_run(client, ECHO, {"echo": {}}, root / "inside" / "r")
    assert status == 200, body
    assert (root / "inner" / "r" / "result.json").exists()


@pytest.mark.parametrize("roots", [(), ("/",)], ids=["no roots", "root /"])
async def test_system_trees_are_never_results_directories(
    make_client: ClientFactory, tmp_path: Path, roots: tuple[str, ...]
) -> None:
    (tmp_path / "to-dev").symlink_to("/dev/shm")
    client = await make_client(results_roots=roots)
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    for url in ("/proc/self/cwd", "file:///sys/kernel/r", "/dev/shm/r",
                "/tmp/../proc/1", tmp_path / "to-dev" / "r"):  # fmt: skip
        status, body = await post_run(client, ECHO, {"echo": {}}, url)
        assert status == 422, url
        item = body["detail"][0]
        assert item["loc"] == ["body", "results_url"]
        assert "is never a results directory" in item["msg"], item
    if before:
        assert set(os.listdir("/dev/shm")) == before


def _request(results_url: str) -> RunInput:
    return RunInput(matchspec=ECHO, results_url=results_url)


def test_with_authentication_on_results_default_to_the_cache(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("")
    settings = make_settings(auth_tokens_file=tokens)
    assert settings.effective_results_roots == (str(settings.cache_dir / "results"),)
    assert settings.describe()["WTRUNNER_RESULTS_ROOTS"] == str(settings.cache_dir / "results")
    build_run_request(settings, _request(str(settings.cache_dir / "results" / "run-1")))
    with pytest.raises(RequestValidationError) as refused:
        build_run_request(settings, _request(str(tmp_path / "elsewhere")))
    assert refused.value.detail[0]["loc"] == ["results_url"]

    # configured roots win; without authentication, any absolute path stays allowed
    assert make_settings(auth_tokens_file=tokens, results_roots=("/data",)).effective_results_roots
    assert make_settings().effective_results_roots == ()
    build_run_request(make_settings(), _request(str(tmp_path / "elsewhere")))
