"""The invoker lifecycle and the registry, with the real local back end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.helpers import SettingsFactory
from wtrunner.environments import Environments, parse_matchspec
from wtrunner.invoker_names import INVOKER_NAMES
from wtrunner.invokers import (
    InvokerContext,
    InvokerState,
    InvokerStateError,
    WorkflowStartError,
    invoker_class,
)
from wtrunner.invokers.local import LocalSubprocessInvoker
from wtrunner.processes import GroupReaper
from wtrunner.run_request import RunRequest


async def _invoker(
    make_settings: SettingsFactory, tmp_path: Path, spec: str, params: dict[str, object]
) -> LocalSubprocessInvoker:
    settings = make_settings(kill_grace_seconds=0.2)
    environments = Environments(settings, settings.channels)
    await environments.start()
    request = RunRequest(
        spec=parse_matchspec(spec),
        invoker_type="AsyncLocalSubprocessInvoker",
        workflow_run_id="run-1",
        params=params,
        execution_mode="sequential",
        mock_io=True,
        results_url=(tmp_path / "results").as_uri(),
    )
    context = InvokerContext(settings, environments, GroupReaper(0.2))
    (tmp_path / "results").mkdir(exist_ok=True)  # the run path makes it before a run
    return LocalSubprocessInvoker(context, request)


def test_registry_maps_the_spec_names() -> None:
    assert invoker_class("BlockingLocalSubprocessInvoker") is LocalSubprocessInvoker
    assert invoker_class("AsyncLocalSubprocessInvoker") is LocalSubprocessInvoker
    assert {"BlockingLocalSubprocessInvoker", "AsyncLocalSubprocessInvoker"} <= set(INVOKER_NAMES)
    for name in INVOKER_NAMES:
        assert invoker_class(name).__name__.endswith("Invoker")


async def test_lifecycle_idle_running_idle(make_settings: SettingsFactory, tmp_path: Path) -> None:
    invoker = await _invoker(make_settings, tmp_path, "wt-test-echo-workflow", {"echo": {}})
    assert invoker.is_waitable()
    assert not await invoker.is_installed()
    await invoker.install()
    assert await invoker.is_installed()
    assert invoker.state is InvokerState.IDLE

    with pytest.raises(InvokerStateError):
        await invoker.wait()  # nothing to wait for

    await invoker.run()
    assert invoker.state is InvokerState.RUNNING
    with pytest.raises(InvokerStateError):
        await invoker.run()  # already running
    completion = await invoker.wait()
    assert (completion.exit_code, completion.timed_out) == (0, False)
    assert invoker.state is InvokerState.IDLE
    assert (tmp_path / "results" / "result.json").exists()

    # the same invoker can run again
    await invoker.run()
    assert (await invoker.wait()).exit_code == 0


async def test_state_is_reset_when_starting_fails(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    invoker = await _invoker(make_settings, tmp_path, "wt-test-echo-workflow", {"echo": {}})
    with pytest.raises(RuntimeError, match="install"):
        await invoker.run()  # not installed: pre_run refuses
    assert invoker.state is InvokerState.IDLE

    await invoker.install()
    assert invoker.environment is not None
    invoker.environment.executable.rename(invoker.environment.executable.with_suffix(".gone"))
    with pytest.raises(WorkflowStartError, match="could not be started"):
        await invoker.run()
    assert invoker.state is InvokerState.IDLE
    await invoker.context.reaper.close()  # the work dir is removed in the background
    assert list((invoker.context.settings.cache_dir / "work").iterdir()) == []


async def test_timeout_is_reported_and_state_reset(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    invoker = await _invoker(
        make_settings, tmp_path, "wt-test-slow-workflow", {"sleep": {"seconds": 30}}
    )
    invoker.request = dataclasses.replace(invoker.request, timeout=0.3)
    await invoker.install()
    await invoker.run()
    completion = await invoker.wait()
    assert completion.timed_out and completion.exit_code is not None
    assert invoker.state is InvokerState.IDLE


async def test_check_output_runs_metadata_commands(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    invoker = await _invoker(make_settings, tmp_path, "wt-test-echo-workflow", {})
    await invoker.install()
    output = await invoker.check_output(["get", "data-connection-property-names"])
    assert output.strip() == b'{"EchoConnection": ["echo"]}'
    converted = await invoker.check_output(
        ["convert", "--from", "params", "--to", "formdata"], stdin=b'{"echo": {"message": "m"}}'
    )
    assert b'"Echo": {"echo": {"message": "m"}}' in converted
