"""Settings frictions: CLOUD_RUN_REGION's default, local channels checked at start-up, and
what `wtrunner settings` shows for an empty WTRUNNER_CHANNELS."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port, start_server
from wtrunner.cli import wtrunner_command
from wtrunner.invokers.batch import project_and_region
from wtrunner.settings import (
    SettingsError,
    check_local_channels,
    load_settings,
)


def test_region_defaults_to_us_central1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUD_RUN_REGION", raising=False)
    settings = load_settings()
    assert settings.cloud_run_region == "us-central1"
    assert settings.cloud_run_region_defaulted
    monkeypatch.setenv("CLOUD_RUN_REGION", "  ")
    assert load_settings().cloud_run_region == "us-central1"
    monkeypatch.setenv("CLOUD_RUN_REGION", "europe-west1")
    settings = load_settings()
    assert settings.cloud_run_region == "europe-west1"
    assert not settings.cloud_run_region_defaulted


def test_cloud_batch_needs_only_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUD_RUN_REGION", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    assert project_and_region(load_settings()) == ("demo-project", "us-central1")


def _channel_error(entry: str) -> str:
    with pytest.raises(SettingsError) as info:
        check_local_channels([entry])
    return str(info.value)


def test_a_missing_local_channel_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-channel"
    for entry in (str(missing), missing.as_uri()):
        message = _channel_error(entry)
        assert message.startswith("WTRUNNER_CHANNELS: ")
        assert entry in message and "does not exist" in message


def test_a_directory_without_repodata_is_not_a_channel(tmp_path: Path) -> None:
    (tmp_path / "noarch").mkdir()
    (tmp_path / "noarch" / "pkg.conda").write_bytes(b"")
    message = _channel_error(tmp_path.as_uri())
    assert tmp_path.as_uri() in message and "not a conda channel" in message
    assert "wtrunner channel build" in message
    afile = tmp_path / "channel.txt"
    afile.write_text("")
    assert "not a directory" in _channel_error(str(afile))


def test_relative_channel_paths_are_relative_to_the_current_directory(
    channel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here").symlink_to(channel)
    monkeypatch.chdir(tmp_path)
    check_local_channels(["./here", str(channel), channel.as_uri()])
    message = _channel_error("./nowhere")
    assert "'./nowhere'" in message and str(tmp_path / "nowhere") in message


def test_remote_channels_are_not_checked() -> None:
    check_local_channels(["https://127.0.0.1:9/channel", "conda-forge", "s3://bucket/ch"])


def _wtrunner(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*wtrunner_command(), *args],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", ["missing", "not a channel"])
def test_serve_refuses_a_bad_local_channel(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "channel"
    if kind == "not a channel":
        (bad / "noarch").mkdir(parents=True)
    done = _wtrunner(
        tmp_path,
        "serve",
        "--port",
        str(free_port()),
        WTRUNNER_CACHE_DIR=str(tmp_path / "cache"),
        WTRUNNER_CHANNELS=f"{bad.as_uri()}",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("wtrunner: WTRUNNER_CHANNELS: ")
    assert bad.as_uri() in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing started


def test_run_refuses_a_bad_local_channel(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text("{}")
    done = _wtrunner(
        tmp_path,
        "run",
        "wt-example-tracks-workflow",
        "--params",
        str(params),
        "--results-url",
        str(tmp_path / "out"),
        WTRUNNER_CACHE_DIR=str(tmp_path / "cache"),
        WTRUNNER_CHANNELS=str(tmp_path / "nowhere"),
    )
    assert done.returncode == 2, done.stderr
    assert f"WTRUNNER_CHANNELS: the channel '{tmp_path / 'nowhere'}' does not exist" in done.stderr
    assert done.stdout == ""


def test_a_remote_channel_that_is_down_is_a_503_at_run_time(tmp_path: Path) -> None:
    down = f"https://127.0.0.1:{free_port()}/channel"
    process, url = start_server(tmp_path, WTRUNNER_CHANNELS=down, WTRUNNER_SHUTDOWN_TIMEOUT="1")
    try:
        body = {
            "params": {},
            "execution_mode": "sequential",
            "mock_io": True,
            "results_url": str(tmp_path / "results"),
        }
        request = urllib.request.Request(
            f"{url}/?matchspec=wt-example-tracks-workflow",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=60)
        assert info.value.code == 503
        assert "127.0.0.1" in info.value.read().decode()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_settings_shows_the_examples_channel_when_none_is_configured(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    done = _wtrunner(tmp_path, "settings", WTRUNNER_CACHE_DIR=str(cache))
    assert done.returncode == 0, done.stderr
    assert f'"WTRUNNER_CHANNELS": "{(cache / "examples-channel").as_uri()}"' in done.stdout
    configured = _wtrunner(
        tmp_path, "settings", WTRUNNER_CACHE_DIR=str(cache), WTRUNNER_CHANNELS="https://x.org/c"
    )
    assert '"WTRUNNER_CHANNELS": "https://x.org/c"' in configured.stdout
