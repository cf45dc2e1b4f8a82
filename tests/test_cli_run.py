"""`wtrunner run`: one run from the command line through the same run path."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _wtrunner_run(channel: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "WTRUNNER_CHANNELS": channel.as_uri(),
    }
    return subprocess.run(
        [sys.executable, "-m", "wtrunner", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_prints_the_result_and_exits_0(channel: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("workflow_details:\n  name: From the CLI\nget_fixes: {}\n")
    done = _wtrunner_run(
        channel,
        tmp_path,
        "wt-example-tracks-workflow>=1",
        "--params",
        str(params),
        "--results-url",
        str(tmp_path / "results"),
        "--mock-io",
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["result"]["workflow"] == "From the CLI"
    assert (tmp_path / "results" / "result.json").exists()


def test_failures_exit_1_with_the_error(channel: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text("{}")
    crashed = _wtrunner_run(
        channel,
        tmp_path,
        "wt-test-crash-workflow",
        "--params",
        str(params),
        "--results-url",
        str(tmp_path / "r"),
    )
    assert crashed.returncode == 1
    assert json.loads(crashed.stdout)["error"].startswith("The workflow exited with code 3")

    timed_out = _wtrunner_run(
        channel,
        tmp_path,
        "wt-test-slow-workflow",
        "--params",
        str(tmp_path / "slow.json"),
        "--results-url",
        str(tmp_path / "r"),
        "--timeout",
        "0.5",
    )
    assert timed_out.returncode == 1  # params file missing: a clear error, not a traceback
    assert "cannot read params" in json.loads(timed_out.stdout)["detail"]

    missing = _wtrunner_run(
        channel, tmp_path, "wt-nothing", "--params", str(params), "--results-url", "/tmp/x"
    )
    assert missing.returncode == 1
    assert "no package matches" in json.loads(missing.stdout)["detail"]
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_exit_status_is_never_a_crash_after_the_work_is_done(channel: Path, tmp_path: Path) -> None:
    # py-rattler's tokio threads can crash a finalizing interpreter (-11/-6) right after a
    # solve; the command must exit with its own status every time, even on a busy machine.
    params = tmp_path / "params.json"
    params.write_text("{}")

    def one(index: int) -> int:
        return _wtrunner_run(
            channel, tmp_path / str(index), "wt-nothing", "--params", str(params),
            "--results-url", str(tmp_path / "r"),
        ).returncode  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(one, range(40)))
    assert codes == [1] * 40
