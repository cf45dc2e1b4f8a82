"""MatchSpec -> installed workflow with py-rattler, against real packages in a real channel."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import rattler
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import REPO, SettingsFactory
from wtrunner.channel import build_channel
from wtrunner.environments import Environment, Environments, parse_matchspec
from wtrunner.errors import PackageNotFoundError, RequestValidationError, ServiceUnavailableError
from wtrunner.metrics import Metrics
from wtrunner.settings import Settings

VERSIONS = "wt-test-versions-workflow"
TRIVIAL = "wt-test-trivial-workflow"


async def _environments(settings: Settings) -> Environments:
    environments = Environments(settings, settings.channels)
    await environments.start()
    return environments


async def _resolve(environments: Environments, spec: str) -> Environment:
    return await environments.resolve(parse_matchspec(spec))


async def _run(executable: Path, *args: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        str(executable), *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    return stdout.decode()


async def test_version_constraints_pick_the_matching_package(
    make_settings: SettingsFactory,
) -> None:
    environments = await _environments(make_settings())
    newest = await _resolve(environments, f"{VERSIONS}>=2")
    older = await _resolve(environments, f"{VERSIONS}<2")
    assert (newest.version, older.version) == ("2.0.0", "1.0.0")
    assert newest.prefix != older.prefix
    assert newest.executable == newest.prefix / "bin" / VERSIONS
    assert newest.executable.is_file() and os.access(newest.executable, os.X_OK)


async def test_no_match_is_not_found_naming_spec_and_sources(
    make_settings: SettingsFactory, channel: Path
) -> None:
    environments = await _environments(make_settings())
    with pytest.raises(PackageNotFoundError) as info:
        await _resolve(environments, f"{VERSIONS}==3")
    assert f"{VERSIONS} ==3" in str(info.value)
    assert channel.as_uri() in str(info.value)
    assert not list(environments.envs_dir.iterdir())


@pytest.mark.parametrize("spec", ["", ">=1.0", "wt-*-workflow", "bad spec [[["])
def test_malformed_matchspec_is_a_client_error_naming_the_input(spec: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_matchspec(spec)
    item = info.value.detail[0]
    assert item["loc"] == ["matchspec"]  # a plain field: the front door places it
    assert item["input"] == (spec or None)


async def test_unreadable_channel_is_service_unavailable(make_settings: SettingsFactory) -> None:
    environments = await _environments(make_settings(channels=("file:///nonexistent/channel",)))
    with pytest.raises(ServiceUnavailableError, match="cannot read the channels"):
        await _resolve(environments, VERSIONS)


async def _baked_prefix(channel: Path, target: Path) -> Path:
    """A prefix with the versions workflow 1.0.0 installed, as an image would carry it."""
    records = await rattler.solve([channel.as_uri()], [f"{VERSIONS}==1.0.0"])
    await rattler.install(records, target, show_progress=False)
    return target


async def test_installed_prefix_is_used_when_it_matches_and_ignored_when_not(
    make_settings: SettingsFactory, channel: Path, tmp_path: Path
) -> None:
    installed = await _baked_prefix(channel, tmp_path / "baked-env")

    environments = await _environments(make_settings(prefixes=(str(installed),)))
    from_prefix = await _resolve(environments, f"{VERSIONS}==1.0.0")
    assert from_prefix.source == "prefix" and from_prefix.prefix == installed
    assert environments.stats.installs == 0
    newer = await _resolve(environments, f"{VERSIONS}>=2")
    assert newer.source == "channel" and newer.version == "2.0.0"
    assert environments.stats.installs == 1


async def test_installed_prefix_build_must_match(
    make_settings: SettingsFactory, channel: Path, tmp_path: Path
) -> None:
    installed = await _baked_prefix(channel, tmp_path / "baked-env")
    environments = await _environments(make_settings(prefixes=(str(installed),)))
    with pytest.raises(PackageNotFoundError):
        await _resolve(environments, f"{VERSIONS}==1.0.0=nosuchbuild")


async def test_concurrent_resolutions_install_once(make_settings: SettingsFactory) -> None:
    environments = await _environments(make_settings())
    resolved = await asyncio.gather(
        *(_resolve(environments, "wt-test-echo-workflow") for _ in range(20))
    )
    assert environments.stats.installs == 1
    assert len({env.prefix for env in resolved}) == 1


async def test_second_instance_on_the_same_cache_reuses_the_env(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings()
    first = await _environments(settings)
    env = await _resolve(first, "wt-test-echo-workflow")
    second = await _environments(settings)
    again = await _resolve(second, "wt-test-echo-workflow")
    assert again.prefix == env.prefix
    assert again.activation_env == env.activation_env
    assert (first.stats.installs, second.stats.installs) == (1, 0)


async def test_warm_resolution_does_not_solve(make_settings: SettingsFactory) -> None:
    environments = await _environments(make_settings())
    await _resolve(environments, "wt-test-echo-workflow")
    solves = environments.stats.solves
    for _ in range(5):
        await _resolve(environments, "wt-test-echo-workflow")
    assert environments.stats.solves == solves
    assert environments.stats.hits == 5


ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


async def test_concurrent_resolutions_are_each_labelled_by_what_they_did(
    make_settings: SettingsFactory,
    channel: Path,
    aiohttp_server: ServerFactory,
    spans: InMemorySpanExporter,
) -> None:
    """One resolution installs its environment while another, of a different spec, solves and
    finds its environment already installed: each is labelled by its own outcome.

    The session channel is served over HTTP so the test can order the two: the installing one
    holds its package download until the other is waiting for the channel index, and that one
    gets the index only once the install has finished.
    """
    index_open = asyncio.Event()
    index_open.set()
    index_held = asyncio.Event()  # the second resolution waits for the index
    downloading = asyncio.Event()  # the first resolution has solved and downloads its package

    async def serve(request: web.Request) -> web.StreamResponse:
        subdir, name = request.match_info["subdir"], request.match_info["name"]
        if name == "repodata.json" and not index_open.is_set():
            index_held.set()
            await asyncio.wait_for(index_open.wait(), timeout=60)
        if name.startswith(f"{VERSIONS}-2.0.0-"):
            downloading.set()
            await asyncio.wait_for(index_held.wait(), timeout=60)
        path = channel / subdir / name
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{subdir}/{name}", serve)
    server = await aiohttp_server(app)
    settings = make_settings(channels=(str(server.make_url("/")),))
    await _resolve(await _environments(settings), f"{VERSIONS}<2")  # 1.0.0 is installed
    spans.clear()

    metrics = Metrics()
    environments = Environments(settings, settings.channels, metrics)
    await environments.start()
    installing = asyncio.ensure_future(_resolve(environments, f"{VERSIONS}>=2"))
    await asyncio.wait_for(downloading.wait(), timeout=60)
    index_open.clear()
    reusing = asyncio.ensure_future(_resolve(environments, f"{VERSIONS}<2"))
    installed = await installing  # finishes only once `reusing` waits for the index
    index_open.set()
    reused = await reusing

    assert (installed.version, reused.version) == ("2.0.0", "1.0.0")
    assert environments.stats.installs == 1
    labels = {
        span.attributes["wtrunner.matchspec"]: span.attributes["wtrunner.resolution"]
        for span in spans.get_finished_spans()
        if span.name == "resolve-environment" and span.attributes
    }
    assert labels == {
        str(parse_matchspec(f"{VERSIONS}>=2")): "installed",
        str(parse_matchspec(f"{VERSIONS}<2")): "solved",
    }
    counted = {
        result: metrics.registry.get_sample_value(
            "wtrunner_environment_resolutions_total", {"result": result}
        )
        for result in ("installed", "solved")
    }
    assert counted == {"installed": 1.0, "solved": 1.0}


async def test_rebuilt_package_in_a_local_channel_is_used_at_once(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """Same version, new build string: the next resolution uses it, well within the solve cache
    time, and an unchanged channel is still not solved again."""
    source = tmp_path / "trivial"
    shutil.copytree(REPO / "tests" / "workflows" / "trivial", source)
    local = tmp_path / "local-channel"
    first = await build_channel([source], local)
    environments = await _environments(
        make_settings(channels=(str(local),), solve_cache_seconds=3600)
    )
    before = await _resolve(environments, TRIVIAL)
    assert first.built == (f"{TRIVIAL}-{before.version}-{before.build}.conda",)

    code = source / "trivial_workflow" / "cli.py"
    code.write_text(code.read_text() + "\n# rebuilt\n")
    second = await build_channel([source], local)
    assert second.removed == first.built

    after = await _resolve(environments, TRIVIAL)
    assert second.built == (f"{TRIVIAL}-{after.version}-{after.build}.conda",)
    assert (after.version, after.build) != (before.version, before.build)
    assert after.version == before.version and after.prefix != before.prefix
    installed = after.prefix / "share" / "wt-workflows" / TRIVIAL / "trivial_workflow" / "cli.py"
    assert installed.read_text().endswith("# rebuilt\n")

    solves = environments.stats.solves
    again = await _resolve(environments, TRIVIAL)
    assert again.prefix == after.prefix
    assert environments.stats.solves == solves


def _set_last_use(env: Environment, timestamp: float) -> None:
    """Make the use order explicit rather than depending on clock resolution."""
    os.utime(env.prefix / "conda-meta" / "wtrunner-environment.json", (timestamp, timestamp))


async def test_eviction_removes_the_least_recently_used_env_but_never_one_in_use(
    make_settings: SettingsFactory,
) -> None:
    environments = await _environments(make_settings(env_cache_max=2))
    oldest = await _resolve(environments, f"{VERSIONS}==1.0.0")
    middle = await _resolve(environments, f"{VERSIONS}==2.0.0")
    _set_last_use(oldest, 1_000)
    _set_last_use(middle, 2_000)

    newest = await _resolve(environments, "wt-test-echo-workflow")
    assert not oldest.prefix.exists()
    assert middle.prefix.exists() and newest.prefix.exists()

    # `middle` is now the least recently used, but a run holds it: the next install evicts
    # `newest` instead.
    with environments.lease(middle):
        _set_last_use(middle, 1_000)  # after the lease's own touch
        await _resolve(environments, "wt-test-list-workflow")
        assert middle.prefix.exists()
        assert not newest.prefix.exists()
    assert environments.stats.evictions == 2


async def test_size_bound_evicts_down_to_the_newest(make_settings: SettingsFactory) -> None:
    environments = await _environments(make_settings(env_cache_max_bytes=1))
    first = await _resolve(environments, f"{VERSIONS}==1.0.0")
    second = await _resolve(environments, f"{VERSIONS}==2.0.0")
    assert not first.prefix.exists()
    assert second.prefix.exists(), "the environment just installed is kept"


async def test_evicted_or_removed_env_is_reinstalled_on_next_resolution(
    make_settings: SettingsFactory,
) -> None:
    environments = await _environments(make_settings())
    env = await _resolve(environments, "wt-test-echo-workflow")
    shutil.rmtree(env.prefix)
    again = await _resolve(environments, "wt-test-echo-workflow")
    assert again.executable.exists()
    assert environments.stats.installs == 2


async def test_failed_install_leaves_nothing_behind(
    make_settings: SettingsFactory, channel: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken-channel"
    shutil.copytree(channel, broken)
    for package in (broken / "noarch").glob("wt-test-echo-workflow-*.conda"):
        package.write_bytes(b"this is not a conda package")
    environments = await _environments(make_settings(channels=(broken.as_uri(),)))
    with pytest.raises(ServiceUnavailableError, match="installing"):
        await _resolve(environments, "wt-test-echo-workflow")
    assert list(environments.envs_dir.iterdir()) == []


async def test_override_replaces_the_requested_spec(make_settings: SettingsFactory) -> None:
    spec = parse_matchspec("wt-example-tracks-workflow", override=f"{VERSIONS}<2")
    environments = await _environments(make_settings())
    env = await environments.resolve(spec)
    assert (env.name, env.version) == (VERSIONS, "1.0.0")
    # the override also stands in for a missing spec
    assert str(parse_matchspec(None, override=f"{VERSIONS}<2")) == str(spec)


async def test_activation_environment_is_captured_and_minimal(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WTRUNNER_TEST_SERVER_ONLY", "must-not-leak")
    environments = await _environments(make_settings())
    env = await _resolve(environments, "wt-test-echo-workflow")
    activation = dict(env.activation_env)
    assert activation["WT_TEST_ACTIVATED"] == "yes"
    assert activation["WT_TEST_DATA_DIR"] == f"{env.prefix}/share/wt-test-data"
    assert activation["CONDA_PREFIX"] == str(env.prefix)
    assert activation["PATH"].split(":")[0] == str(env.prefix / "bin")
    assert "WTRUNNER_TEST_SERVER_ONLY" not in activation

    # the workflow starts with exactly that environment (no shell) and it works
    output = await _run(env.executable, "get", "params", env=activation)
    assert '"echo"' in output
