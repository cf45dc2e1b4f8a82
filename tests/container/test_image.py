"""container/Dockerfile: the image runs ``wtrunner serve`` with valid settings, as a non-root user,
under an init, with a health check on /livez and its channel outside the cache volume."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.container.dockerfile import (
    FINAL,
    IMAGE_ENV,
    STAGES,
    copies,
    exec_form,
    healthcheck_command,
    image_user,
    parse_dockerfile,
    stage_env,
)
from tests.container.known import GET_PATHS, LIVEZ, settings_from, unknown_setting_names
from wtrunner.settings import Settings, load_settings


def test_the_parser_reads_continued_lines_stages_and_both_env_forms() -> None:
    stages = parse_dockerfile(
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS builder\n"
        "# a comment\n"
        "ENV A=1 \\\n"
        "    # a comment inside\n"
        '    B="two words"\n'
        "FROM builder\n"
        "ENV C three words\n"
        'CMD ["serve"]\n'
    )
    assert [(stage.base, stage.name) for stage in stages] == [
        ("${BASE}", "builder"),
        ("builder", None),
    ]
    assert stage_env(stages, 1) == {"A": "1", "B": "two words", "C": "three words"}
    assert exec_form(stages[1].last("CMD").args) == ["serve"]
    with pytest.raises(AssertionError, match="exec form"):
        exec_form("wtrunner serve")


def test_image_env_names_only_settings_wtrunner_reads() -> None:
    for index, stage in enumerate(STAGES):
        names = stage_env(STAGES, index)
        assert unknown_setting_names(names) == [], f"stage FROM {stage.base}"
    assert IMAGE_ENV, "the final stage sets no environment"


def test_image_settings_are_valid_and_listen_on_every_interface(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert IMAGE_ENV.get("WTRUNNER_HOST") == "0.0.0.0"
    # WTRUNNER_PORT would win over PORT: the image leaves it unset, so `docker run -e PORT=...`
    # (or a platform that sets PORT) moves the server.
    assert "WTRUNNER_PORT" not in IMAGE_ENV and "PORT" not in IMAGE_ENV
    settings = settings_from(IMAGE_ENV, monkeypatch)
    assert settings.host == "0.0.0.0"
    default_port = Settings.model_fields["port"].default
    assert settings.port == default_port
    exposed = {int(word.split("/")[0]) for ins in FINAL.all("EXPOSE") for word in ins.args.split()}
    assert exposed == {default_port}
    # The root filesystem may be read-only: Python must not try to write bytecode.
    assert IMAGE_ENV.get("PYTHONDONTWRITEBYTECODE") == "1"
    monkeypatch.setenv("PORT", "9000")
    assert load_settings().port == 9000


def test_image_starts_wtrunner_serve_in_exec_form_under_an_init() -> None:
    entrypoint = exec_form(FINAL.last("ENTRYPOINT").args)
    command = exec_form(FINAL.last("CMD").args)
    argv = entrypoint + command
    # tini is PID 1 and hands SIGTERM to wtrunner itself (no shell in between).
    assert Path(argv[0]).name == "tini" and argv[1] == "--", argv
    assert argv[2:] == ["wtrunner", "serve"]
    assert any(re.search(r"\btini\b", ins.args) for ins in FINAL.all("RUN")), "tini not installed"


def test_image_runs_as_a_numeric_non_root_user() -> None:
    user = image_user()
    # Numeric: the kubelet can only verify runAsNonRoot against a numeric image user.
    assert user.isdigit() and int(user) != 0, user


def test_image_healthcheck_probes_livez() -> None:
    command = healthcheck_command(FINAL)
    assert LIVEZ in command and LIVEZ in GET_PATHS
    assert command[0] == "python"
    script = command[1]
    sources = {dest: sources for _, sources, dest in copies(FINAL)}
    assert sources.get(script) == ["container/healthcheck.py"], "the script is not copied"


def test_image_carries_its_channel_outside_the_cache_volume() -> None:
    cache_dir = IMAGE_ENV["WTRUNNER_CACHE_DIR"]
    volumes = [path for ins in FINAL.all("VOLUME") for path in exec_form(ins.args)]
    assert volumes == [cache_dir]
    channels = IMAGE_ENV["WTRUNNER_CHANNELS"].split(",")
    assert len(channels) == 1 and channels[0].startswith("file:///")
    channel = channels[0].removeprefix("file://")
    assert not channel.startswith(cache_dir.rstrip("/") + "/")

    # Built at image build time, by `wtrunner channel build ... --output <that dir>`, in a stage
    # whose virtual environment the final stage copies to the same path: the launchers in the
    # channel name that environment's interpreter in their "#!" line.
    builds = [
        (index, shlex.split(ins.args))
        for index, stage in enumerate(STAGES)
        for ins in stage.all("RUN")
        if "channel build" in ins.args
    ]
    assert len(builds) == 1
    index, words = builds[0]
    assert words[words.index("--output") + 1] == channel
    wtrunner_bin = Path(words[0])
    assert wtrunner_bin.name == "wtrunner" and wtrunner_bin.is_absolute()
    venv = str(wtrunner_bin.parent.parent)
    assert IMAGE_ENV["PATH"].split(":")[0] == f"{venv}/bin"
    if index != len(STAGES) - 1:
        builder = STAGES[index]
        assert builder.base == FINAL.base, "builder and final stage need the same base image"
        assert any(f"venv {venv}" in ins.args for ins in builder.all("RUN"))
        carried = [
            source
            for from_stage, sources, dest in copies(FINAL)
            if from_stage == builder.name
            for source in sources
            if source == dest
        ]
        for path in (venv, channel):
            assert any(path == c or path.startswith(c.rstrip("/") + "/") for c in carried), path
