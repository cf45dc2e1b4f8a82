"""What wtrunner itself says the container must match: the variables Settings read, its routes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import pytest
from pydantic import AliasChoices

from wtrunner.api import health
from wtrunner.api.routes import OPERATIONS
from wtrunner.settings import SECRET_FIELDS, Settings, load_settings

GET_PATHS = frozenset(op.path for op in OPERATIONS if op.method == "GET")
LIVEZ = next(op.path for op in OPERATIONS if op.handler is health.livez)
READYZ = next(op.path for op in OPERATIONS if op.handler is health.readyz)

# Variables that look like wtrunner settings: a name with one of these prefixes, or one close to
# a name Settings reads (a typo of PORT or GOOGLE_CLOUD_PROJECT), must be one Settings reads.
SETTING_PREFIXES = ("WTRUNNER_", "ECOSCOPE_WORKFLOWS_", "WT_INVOKERS__")


def setting_names() -> frozenset[str]:
    """Every environment variable Settings reads: each field's alias choices (PORT included)."""
    names: set[str] = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for choice in choices:
            if isinstance(choice, str):
                names.add(choice)
    return frozenset(names)


def secret_setting_names() -> frozenset[str]:
    names: set[str] = set()
    for name in SECRET_FIELDS:
        alias = Settings.model_fields[name].validation_alias
        assert isinstance(alias, AliasChoices)
        names.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(names)


def unknown_setting_names(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that look like wtrunner settings but that Settings never reads.

    Settings ignores variables it does not know (``extra="ignore"``), so a typo in a manifest
    would otherwise be silently without effect. Unrelated variables (PATH, PYTHON*, LANG, ...)
    pass.
    """
    known = setting_names()
    unknown = []
    for name in names:
        upper = name.upper()  # pydantic-settings matches variable names case-insensitively
        if upper in known:
            continue
        if upper.startswith(SETTING_PREFIXES) or difflib.get_close_matches(
            upper, known, n=1, cutoff=0.8
        ):
            unknown.append(name)
    return unknown


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings wtrunner would load in a process that has exactly ``environment``'s settings."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        if name.upper() in setting_names():
            monkeypatch.setenv(name, value)
    return load_settings()
