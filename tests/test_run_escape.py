"""No escape from a run: a workflow that leaves its process group and session (``setsid`` and a
double fork) is still ended at timeout, at cancel and after it finished; per-run limits apply.

Each test runs with the run's cgroup leaf (where this machine lets the server make one) and
without (process group, subreaper and /proc only).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Client, ClientFactory, until
from tests.processes import call_json, kill_server, start_server, stop_server, wait_until
from wtrunner.cgroups import RunLimits
from wtrunner.keys import RUNS
from wtrunner.processes import RUN_ID_VARIABLE
from wtrunner.proctree import marker_value, process_table, read_stat
from wtrunner.run_request import CANCELLED_MESSAGE, TIMEOUT_MESSAGE
from wtrunner.settings import SettingsError, load_settings

ESCAPE = "wt-test-escape-workflow"
GIB = 1024**3


def _cgroups(client: Client) -> Any:
    return client.app[RUNS].context.reaper.cgroups


@pytest.fixture(params=["cgroup", "proc"])
async def escape_client(request: pytest.FixtureRequest, make_client: ClientFactory) -> Client:
    """The app with a short grace period, its runs tracked with cgroups or without."""
    cgroups = "auto" if request.param == "cgroup" else "off"
    client = await make_client(kill_grace_seconds=0.5, run_cgroups=cgroups)
    if request.param == "cgroup" and _cgroups(client) is None:
        pytest.skip("the server may not make cgroups on this machine")
    return client


async def _escaped_pid(pid_file: Path) -> int:
    text = await until(lambda: pid_file.exists() and pid_file.read_text(), 60, f"{pid_file}")
    return int(text)


def _run_processes(run_id: str) -> list[int]:
    """Every process of the machine that carries the run's marker."""
    return [
        pid
        for pid in process_table()
        if marker_value(pid, RUN_ID_VARIABLE) == run_id and pid != os.getpid()
    ]


async def _assert_left_its_session(escaped: int) -> None:
    stat = read_stat(escaped)
    assert stat is not None, "the escaped process runs"
    # in the session (and group) its parent made with setsid, away from the workflow's
    assert stat.pgid == stat.sid != os.getsid(0)
    # its parent exits right after the fork: the server adopts it as subreaper
    await until(
        lambda: getattr(read_stat(escaped), "ppid", None) == os.getpid(),
        30,
        "the server to adopt the escaped process",
    )


def _assert_nothing_left(client: Client, escaped: int, run_id: str) -> None:
    # not running, not a zombie: gone from /proc
    assert not Path(f"/proc/{escaped}").exists(), f"escaped process {escaped} is left"
    assert _run_processes(run_id) == []
    cgroups = _cgroups(client)
    if cgroups is not None:
        assert not (cgroups.path / f"run-{run_id}").exists(), "the run's cgroup is removed"


async def _post(client: Client, params: dict[str, Any], results: Path, **query: str) -> Any:
    body = {"params": params, "execution_mode": "sequential", "mock_io": True,
            "results_url": str(results)}  # fmt: skip
    return await client.post("/", params={"matchspec": ESCAPE, **query}, json=body)


async def test_a_setsid_double_fork_is_ended_at_timeout(
    escape_client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "escaped.pid"
    params = {"escape": {"pid_file": str(pid_file), "then": "sleep", "seconds": 600}}
    posting = asyncio.create_task(_post(escape_client, params, tmp_path / "r", timeout="3"))
    escaped = await _escaped_pid(pid_file)
    await _assert_left_its_session(escaped)

    response = await posting
    body = await response.json()
    assert (response.status, body["error"]) == (500, TIMEOUT_MESSAGE)
    # ended before the answer: the escaped process ignored SIGTERM, so it was SIGKILLed
    _assert_nothing_left(escape_client, escaped, response.headers["X-Run-ID"])


async def test_a_setsid_double_fork_is_ended_at_cancel(
    escape_client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "escaped.pid"
    params = {"escape": {"pid_file": str(pid_file), "then": "sleep", "seconds": 600}}
    response = await escape_client.post(
        "/runs",
        params={"matchspec": ESCAPE},
        json={"params": params, "execution_mode": "sequential", "mock_io": True,
              "results_url": str(tmp_path / "r")},
    )  # fmt: skip
    assert response.status == 202
    run_id = (await response.json())["id"]
    escaped = await _escaped_pid(pid_file)
    await _assert_left_its_session(escaped)

    assert (await escape_client.post(f"/runs/{run_id}/cancel")).status == 202
    done = await (await escape_client.get(f"/runs/{run_id}", params={"wait": "30"})).json()
    assert done["state"] == "cancelled"
    assert done["outcome"]["error"] == CANCELLED_MESSAGE
    _assert_nothing_left(escape_client, escaped, run_id)


async def test_what_a_finished_workflow_left_outside_its_group_is_ended(
    escape_client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "escaped.pid"
    params = {"escape": {"pid_file": str(pid_file), "then": "exit"}}
    response = await _post(escape_client, params, tmp_path / "r")
    assert response.status == 200, await response.text()
    escaped = int(pid_file.read_text())
    run_id = response.headers["X-Run-ID"]
    # in the background: SIGTERM is ignored, SIGKILL follows the grace period, then the reap
    await until(lambda: not Path(f"/proc/{escaped}").exists(), 30, "the escaped process ended")
    await until(lambda: not _run_processes(run_id), 30, "nothing of the run left")
    cgroups = _cgroups(escape_client)
    if cgroups is not None:
        leaf = cgroups.path / f"run-{run_id}"
        await until(lambda: not leaf.exists(), 30, "the run's cgroup removed")


async def test_a_cgroup_ends_an_escaped_process_that_cleared_its_environment(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(kill_grace_seconds=0.5)
    if _cgroups(client) is None:
        pytest.skip("the server may not make cgroups on this machine")
    pid_file = tmp_path / "escaped.pid"
    params = {"escape": {"pid_file": str(pid_file), "clear_env": True, "then": "sleep"}}
    posting = asyncio.create_task(_post(client, params, tmp_path / "r", timeout="3"))
    escaped = await _escaped_pid(pid_file)
    # the marker is gone with the environment: only the cgroup knows it is the run's
    await until(
        lambda: (read_stat(escaped) is not None and Path(f"/proc/{escaped}/environ").exists()
                 and Path(f"/proc/{escaped}/environ").read_bytes() == b""),
        30, "the escaped process to drop its environment",
    )  # fmt: skip
    response = await posting
    assert response.status == 500
    _assert_nothing_left(client, escaped, response.headers["X-Run-ID"])


async def test_each_run_is_in_a_cgroup_of_its_own(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client()
    cgroups = _cgroups(client)
    if cgroups is None:
        pytest.skip("the server may not make cgroups on this machine")
    params = {"escape": {"report_cgroup": True}}
    response = await _post(client, params, tmp_path / "r")
    body = await response.json()
    assert response.status == 200, body
    run_id = response.headers["X-Run-ID"]
    assert body["result"]["cgroup"].endswith(f"/{cgroups.path.name}/run-{run_id}")
    leaf = cgroups.path / f"run-{run_id}"
    await until(lambda: not leaf.exists(), 10, "the leaf removed once the run ended")


async def test_run_limits_without_cgroups_are_rlimits(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(run_cgroups="off", run_memory_max="1GiB", run_pids_max=1000)
    params = {"escape": {"report_limits": True, "allocate_mb": 2048}}
    response = await _post(client, params, tmp_path / "r")
    body = await response.json()
    assert response.status == 200, body
    limits = body["result"]["limits"]
    assert limits["as"] == [GIB, GIB]
    assert limits["nproc"] == [1000, 1000]
    assert body["result"]["allocated"] is False, "2 GiB do not fit in a 1 GiB address space"

    unlimited = await make_client(run_cgroups="off")
    response = await _post(unlimited, {"escape": {"allocate_mb": 64}}, tmp_path / "u")
    assert (await response.json())["result"]["allocated"] is True


async def test_run_limits_in_a_cgroup(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(run_memory_max="1GiB", run_pids_max=64)
    cgroups = _cgroups(client)
    if cgroups is None or not {"memory", "pids"} <= cgroups.enforced:
        pytest.skip("no cgroup with the memory and pids controllers on this machine")
    pid_file = tmp_path / "escaped.pid"
    params = {"escape": {"pid_file": str(pid_file), "then": "sleep", "seconds": 600}}
    posting = asyncio.create_task(_post(client, params, tmp_path / "r", timeout="3"))
    escaped = await _escaped_pid(pid_file)
    [leaf] = [path for path in cgroups.path.iterdir() if path.name.startswith("run-")]
    assert (leaf / "memory.max").read_text().strip() == str(GIB)
    assert (leaf / "pids.max").read_text().strip() == "64"
    # the limits are the cgroup's, not rlimits of the processes
    limits = Path(f"/proc/{escaped}/limits").read_text().splitlines()
    assert "unlimited" in next(line for line in limits if line.startswith("Max address space"))
    response = await posting
    assert response.status == 500


async def test_workflows_run_nicer_than_the_server(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """They yield the CPU to the server (its probes, its other runs) when both want it."""
    own = os.getpriority(os.PRIO_PROCESS, 0)
    for nice, expected in ((7, max(7, own)), (0, own)):
        # a memory limit makes the workflow report once its limits are all in place
        client = await make_client(run_cgroups="off", run_memory_max="4GiB", run_nice=nice)
        response = await _post(client, {"escape": {"report_limits": True}}, tmp_path / str(nice))
        body = await response.json()
        assert response.status == 200, body
        limits = body["result"]["limits"]
        assert limits["nice"] == expected
        if limits["autogroup_nice"] is not None and os.geteuid() == 0:
            # a kernel with autogroups: the run's session yields as a whole (the kernel takes
            # a change at any time only from a server that may administer the system)
            assert limits["autogroup_nice"] == (expected if nice else 0)


def test_limits_are_read_with_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WTRUNNER_RUN_MEMORY_MAX", "512MiB")
    monkeypatch.setenv("WTRUNNER_RUN_PIDS_MAX", "")
    assert RunLimits.of(load_settings()) == RunLimits(
        memory_max=512 * 1024**2, pids_max=None, nice=10
    )
    monkeypatch.setenv("WTRUNNER_RUN_PIDS_MAX", "0")
    with pytest.raises(SettingsError, match="WTRUNNER_RUN_PIDS_MAX"):
        load_settings()


@pytest.mark.parametrize("cgroups", ["auto", "off"])
def test_what_escaped_a_server_killed_mid_run_is_ended_at_its_restart(
    tmp_path: Path, channel: Path, cgroups: str
) -> None:
    def alive(pid: int) -> bool:
        stat = read_stat(pid)
        if stat is not None and stat.dead and stat.ppid == os.getpid():
            os.waitpid(pid, os.WNOHANG)  # this test process adopted it (it is a subreaper)
        return stat is not None and not stat.dead

    settings = {"WTRUNNER_CHANNELS": channel.as_uri(), "WTRUNNER_REPLICA_ID": "replica-e",
                "WTRUNNER_RUN_CGROUPS": cgroups}  # fmt: skip
    server, url = start_server(tmp_path, stderr=subprocess.DEVNULL, **settings)
    pid_file = tmp_path / "escaped.pid"
    try:
        call_json(
            f"{url}/runs?matchspec={ESCAPE}",
            {"params": {"escape": {"pid_file": str(pid_file), "then": "sleep"}},
             "results_url": str(tmp_path / "r"), "execution_mode": "sequential",
             "mock_io": True},
        )  # fmt: skip
        wait_until(pid_file.exists, 60, "the workflow did not escape")
        escaped = int(pid_file.read_text())
    finally:
        kill_server(server)
    assert alive(escaped), "the escaped process outlives its server"

    again, url = start_server(tmp_path, stderr=subprocess.DEVNULL, **settings)
    try:
        wait_until(lambda: not alive(escaped), 10, "the escaped process survived the restart")
    finally:
        stop_server(again)
