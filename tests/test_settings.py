"""Settings: names, defaults, lists, PORT, and start-up errors that name the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wtrunner.settings import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.cache_dir == tmp_path / "wtrunner"
    assert settings.max_body_bytes == 16 * 1024 * 1024
    assert settings.results_env_var == "WT_RESULTS"
    assert settings.channels == ()
    assert "WT_*" in settings.child_env_passthrough


def test_port_honours_plain_port_but_wtrunner_port_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    assert load_settings().port == 9000
    monkeypatch.setenv("WTRUNNER_PORT", "9100")
    assert load_settings().port == 9100


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WTRUNNER_CHANNELS", "file:///a/channel, https://example.org/c ,,")
    monkeypatch.setenv("WTRUNNER_RESULTS_ROOTS", "/data/results")
    settings = load_settings()
    assert settings.channels == ("file:///a/channel", "https://example.org/c")
    assert settings.results_roots == ("/data/results",)


def test_compatible_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOSCOPE_WORKFLOWS_MATCHSPEC_OVERRIDE", "wt-x-workflow==1.0")
    monkeypatch.setenv("WT_INVOKERS__RESULTS_ENV_VAR", "MY_RESULTS")
    monkeypatch.setenv("ECOSCOPE_WORKFLOWS_OTEL_EXPORTER", "console")
    monkeypatch.setenv("ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_DST", "stdout")
    settings = load_settings()
    assert settings.matchspec_override == "wt-x-workflow==1.0"
    assert settings.results_env_var == "MY_RESULTS"
    assert settings.otel_exporter == "console"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WTRUNNER_PORT", "eighty"),
        ("WTRUNNER_MAX_CONCURRENT_RUNS", "0"),
        ("WTRUNNER_LOG_FORMAT", "xml"),
        ("WTRUNNER_KEEP_RUN_DIRS", "perhaps"),
        ("ECOSCOPE_WORKFLOWS_OTEL_EXPORTER", "jaeger"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_secret_settings_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WTRUNNER_OBJECT_STORE_OPTIONS", '{"gs": "token-canary-123"')
    with pytest.raises(SettingsError, match="WTRUNNER_OBJECT_STORE_OPTIONS") as info:
        load_settings()
    assert "token-canary-123" not in str(info.value)


def test_console_exporter_to_file_needs_a_target_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOSCOPE_WORKFLOWS_OTEL_EXPORTER", "console")
    with pytest.raises(
        SettingsError, match="ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR"
    ):
        load_settings()


def _wtrunner(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wtrunner", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_settings_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "WTRUNNER_PORT": "8123",
        "WTRUNNER_OBJECT_STORE_OPTIONS": json.dumps({"gs": {"bearer_token": "tok-canary-9"}}),
    }
    done = _wtrunner("settings", env=env)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["WTRUNNER_PORT"] == 8123
    assert printed["WTRUNNER_OBJECT_STORE_OPTIONS"] == "**********"
    assert "tok-canary-9" not in done.stdout


def test_cli_stops_on_invalid_settings_with_a_sentence(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WTRUNNER_PORT": "-5"}
    done = _wtrunner("serve", env=env)
    assert done.returncode == 2
    assert "WTRUNNER_PORT" in done.stderr
    assert "Traceback" not in done.stderr
