"""The cross-check every container test relies on: which variable names Settings read."""

from __future__ import annotations

import pytest

from tests.container.known import setting_names, unknown_setting_names
from wtrunner.settings import Settings


def test_setting_names_come_from_the_settings_class() -> None:
    names = setting_names()
    # Primary names, the PORT fallback and the compatible names all count.
    assert {"WTRUNNER_HOST", "WTRUNNER_PORT", "PORT", "WTRUNNER_CACHE_DIR"} <= names
    assert {"GOOGLE_CLOUD_PROJECT", "WT_INVOKERS__RESULTS_ENV_VAR"} <= names
    assert "ECOSCOPE_WORKFLOWS_MATCHSPEC_OVERRIDE" in names
    for field_name in Settings.model_fields:
        assert Settings().env_var_name(field_name) in names


@pytest.mark.parametrize(
    "typo",
    [
        "WTRUNNER_PROT",
        "WTRUNNER_HOSTNAME",
        "WTRUNNER_PUBSUB_SUBSCRIPTON",
        "WTRUNNER_CHANNEL",
        "ECOSCOPE_WORKFLOWS_MATCHSPEC_OVERIDE",
        "WT_INVOKERS__RESULT_ENV_VAR",
        "GOOGLE_CLOUD_PROJET",
        "CLOUD_RUN_REGOIN",
        "BATCH_SERVICE_ACOUNT",
        "wtrunner_typo",
    ],
)
def test_the_cross_check_flags_names_settings_do_not_read(typo: str) -> None:
    assert unknown_setting_names([typo]) == [typo]


def test_the_cross_check_lets_known_and_unrelated_names_pass() -> None:
    unrelated = [
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "TZ",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PIP_NO_CACHE_DIR",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "PUBSUB_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "WT_RESULTS",
    ]
    assert unknown_setting_names([*unrelated, *setting_names(), "wtrunner_port"]) == []
