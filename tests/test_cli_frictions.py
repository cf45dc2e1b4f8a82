"""The wtrunner command's small frictions: --version, help that points at the settings,
`run --channel` and relative results paths, and running from a folder with a `wtrunner/` dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wtrunner
from wtrunner.cli import wtrunner_command
from wtrunner.testing import Case, CaseRunner
from wtrunner.version import __version__

SAMPLE = {"workflow_details": {"name": "From here"}, "get_fixes": {}}


def _wtrunner(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wtrunner_command(), *args],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": str(cwd), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A workflow author's folder holding a `wtrunner/` directory that cannot be imported."""
    project = tmp_path / "project"
    (project / "wtrunner").mkdir(parents=True)
    (project / "wtrunner" / "__init__.py").write_text(
        "raise ImportError('this is not the wtrunner package')\n"
    )
    return project


def test_version_lives_in_its_own_module_and_the_command_prints_it(tmp_path: Path) -> None:
    assert wtrunner.__version__ == __version__
    done = _wtrunner("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wtrunner {__version__}"


def test_serve_help_points_at_the_settings(tmp_path: Path) -> None:
    done = _wtrunner("serve", "--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "`wtrunner settings`" in text
    assert "Configuration table of wtrunner's README" in text
    assert "WTRUNNER_PORT" in text


def test_run_with_channel_flags_and_a_relative_results_path(
    channel: Path, tmp_path: Path, project_dir: Path
) -> None:
    (project_dir / "my-channel").symlink_to(channel)
    empty = tmp_path / "empty-channel" / "noarch"  # a valid channel holding no package
    empty.mkdir(parents=True)
    (empty / "repodata.json").write_text(
        json.dumps({"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {}})
    )
    (project_dir / "params.yaml").write_text(json.dumps(SAMPLE))
    env = {
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        # what --channel replaces: a local channel that does not exist would stop the run
        "WTRUNNER_CHANNELS": str(tmp_path / "not-this-one"),
    }
    done = _wtrunner(
        "run", "wt-example-tracks-workflow",
        "--params", "params.yaml",
        "--results-url", "out/run-1",
        "--channel", empty.parent.as_uri(),  # repeatable
        "--channel", "my-channel",  # a relative path, even without ./
        "--mock-io",
        cwd=project_dir, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["workflow"] == "From here"
    written = json.loads((project_dir / "out" / "run-1" / "result.json").read_text())
    assert written["result"]["workflow"] == "From here"


def test_run_names_a_bad_channel_flag(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text("{}")
    done = _wtrunner(
        "run", "wt-x", "--params", str(params), "--results-url", "out", "--channel", "./nope",
        cwd=tmp_path, env={"WTRUNNER_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--channel: the channel './nope'" in done.stderr


@pytest.fixture
def fake_pubsub() -> Iterator[socket.socket]:
    """A listening socket standing in for a Pub/Sub emulator: a consumer would connect to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


def test_run_never_consumes_the_servers_subscription(
    channel: Path, tmp_path: Path, fake_pubsub: socket.socket
) -> None:
    (tmp_path / "params.json").write_text(json.dumps(SAMPLE))
    env = {
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "WTRUNNER_CHANNELS": channel.as_uri(),
        "WTRUNNER_PUBSUB_SUBSCRIPTION": "projects/demo/subscriptions/runs",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{fake_pubsub.getsockname()[1]}",
    }
    done = _wtrunner(
        "run", "wt-example-tracks-workflow", "--params", "params.json", "--results-url", "out",
        "--mock-io", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pulling" not in done.stderr
    with pytest.raises(BlockingIOError):
        fake_pubsub.accept()


async def test_case_runner_cli_mode_works_beside_a_wtrunner_directory(
    channel: Path, tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_dir)
    runner = CaseRunner(
        "wt-example-tracks-workflow", tmp_path / "work", channels=[channel.as_uri()], mode="cli"
    )
    async with runner:
        body = await runner.run(Case(name="sample data", params=SAMPLE))
    assert body["result"]["source"] == "sample data"


def test_wtrunner_command_is_the_installed_entry_point(project_dir: Path) -> None:
    command = wtrunner_command()
    assert command == [str(Path(sys.executable).parent / "wtrunner")]
    done = subprocess.run(
        [*command, "--version"], cwd=project_dir, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == f"wtrunner {__version__}", done.stderr


def test_without_a_console_script_the_command_still_ignores_the_current_directory(
    project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interpreter = sys.executable
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # no script there
    command = wtrunner_command()
    assert command[0] == sys.executable and "-m" not in command
    done = subprocess.run(
        [interpreter, *command[1:], "--version"],
        cwd=project_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == f"wtrunner {__version__}", done.stderr
