"""container/: the image and the Kubernetes manifests agree with wtrunner's settings and routes.

Docker cannot build or run images on these machines, so these tests read what can be read:
``container/Dockerfile`` (a small parser below), its ignore file, and the objects that
``kubectl kustomize`` renders from every kustomization under ``container/k8s`` (the base and each
overlay, found at run time). Names and values are checked against wtrunner itself: the
``Settings`` class (every variable it reads) and the route table ``OPERATIONS``. The image's
health check script runs for real against ``wtrunner serve``. The linters (hadolint, yamllint,
kubernetes-validate --strict) run in the tox env ``container`` (``container/check``).
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from tests.processes import free_port, wait_until_answering
from wtrunner.api import health
from wtrunner.api.routes import OPERATIONS
from wtrunner.settings import SECRET_FIELDS, Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
CONTAINER = REPO / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
DOCKERIGNORE = CONTAINER / "Dockerfile.dockerignore"
K8S = CONTAINER / "k8s"
KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))

GET_PATHS = frozenset(op.path for op in OPERATIONS if op.method == "GET")
LIVEZ = next(op.path for op in OPERATIONS if op.handler is health.livez)
READYZ = next(op.path for op in OPERATIONS if op.handler is health.readyz)

# Variables that look like wtrunner settings: a name with one of these prefixes, or one close to
# a name Settings reads (a typo of PORT or GOOGLE_CLOUD_PROJECT), must be one Settings reads.
SETTING_PREFIXES = ("WTRUNNER_", "ECOSCOPE_WORKFLOWS_", "WT_INVOKERS__")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY", re.I)
SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY|\"private_key\"|AIza[0-9A-Za-z_-]{30,}|ya29\.[0-9A-Za-z_-]"
    r"|AKIA[0-9A-Z]{16}|gh[pousr]_[0-9A-Za-z]{30,}|xox[abpr]-[0-9A-Za-z-]{10,}"
)


# --- What wtrunner's Settings read ------------------------------------------------------------


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


# --- container/Dockerfile -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [ins for ins in self.instructions if ins.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by build stage; continued lines joined, comments dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not buffer and not stripped):
            continue  # comments (also inside a continued instruction) and blank lines
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(part for part in buffer if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [word for word in ins.args.split() if not word.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif ins.keyword == "ARG" and not stages:
            continue  # global ARGs (the base image)
        else:
            assert stages, f"line {ins.line}: {ins.keyword} before FROM"
            stages[-1].instructions.append(ins)
    return stages


def env_pairs(args: str) -> dict[str, str]:
    """``ENV A=1 B="two words"`` (or the legacy ``ENV A value``) as a dict."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(token.split("=", 1) for token in tokens)


def stage_env(stages: list[Stage], index: int) -> dict[str, str]:
    """The ENV a stage ends with, including a parent stage's (``FROM builder``)."""
    stage = stages[index]
    env: dict[str, str] = {}
    for parent_index, parent in enumerate(stages[:index]):
        if parent.name == stage.base:
            env.update(stage_env(stages, parent_index))
    for ins in stage.all("ENV"):
        env.update(env_pairs(ins.args))
    return env


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        value = None
    assert isinstance(value, list) and value, f"not exec form (a JSON array): {args}"
    assert all(isinstance(word, str) for word in value), args
    return value


def healthcheck_command(stage: Stage) -> list[str]:
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", stage.last("HEALTHCHECK").args, re.S)
    assert match, "HEALTHCHECK must be HEALTHCHECK [OPTIONS] CMD [...]"
    return exec_form(match.group(2))


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """``COPY`` instructions as (``--from`` stage or None, sources, destination)."""
    found = []
    for ins in stage.all("COPY"):
        words = shlex.split(ins.args)
        options = [word for word in words if word.startswith("--")]
        paths = [word for word in words if not word.startswith("--")]
        source_stage = next(
            (option.split("=", 1)[1] for option in options if option.startswith("--from=")), None
        )
        found.append((source_stage, paths[:-1], paths[-1]))
    return found


STAGES = parse_dockerfile(DOCKERFILE.read_text())
FINAL = STAGES[-1]
IMAGE_ENV = stage_env(STAGES, len(STAGES) - 1)


def image_user() -> str:
    return FINAL.last("USER").args.split(":")[0]


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


# --- container/Dockerfile.dockerignore ----------------------------------------------------------


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def context_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    excluded = False
    for negated, regex in _ignore_patterns():
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def _files(source: Path) -> Iterator[str]:
    if source.is_file():
        yield source.relative_to(REPO).as_posix()
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(REPO).as_posix()


def test_build_context_holds_what_the_dockerfile_copies_and_no_more() -> None:
    copied = [
        source
        for stage in STAGES
        for from_stage, sources, _ in copies(stage)
        if from_stage is None
        for source in sources
    ]
    assert copied
    for source in copied:
        files = list(_files(REPO / source))
        assert files, f"COPY {source}: nothing there"
        kept_out = [path for path in files if context_excludes(path)]
        assert kept_out == [], f"COPY {source} needs files the ignore file leaves out"
    for path in [
        ".git/HEAD",
        ".venv-tox/bin/python",
        ".tox/py311/bin/python",
        "wtrunner/__pycache__/cli.cpython-311.pyc",
        "examples/tracks/tracks_workflow/__pycache__/cli.cpython-311.pyc",
        "tests/test_container.py",
        "container/k8s/base/kustomization.yaml",
        "bench/results.json",
    ]:
        assert context_excludes(path), path


# --- container/k8s: what kubectl kustomize renders ----------------------------------------------


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        reason = "kubectl is not on PATH: it renders container/k8s (kubectl kustomize)"
        if os.environ.get("WTRUNNER_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (WTRUNNER_REQUIRE_EMULATORS is set)")
        pytest.skip(reason)
    return kubectl


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@dataclass(frozen=True)
class Rendered:
    """The objects of one kustomization, and the wtrunner pod they describe."""

    name: str
    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"{self.name}: {len(found)} {kind} objects"
        return found[0]

    @property
    def pod(self) -> dict[str, Any]:
        return self.one("Deployment")["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert len(containers) == 1
        return containers[0]

    def configmaps(self) -> dict[str, dict[str, str]]:
        return {cm["metadata"]["name"]: cm.get("data", {}) for cm in self.of_kind("ConfigMap")}

    def environment(self) -> dict[str, str]:
        """What the wtrunner process sees: the image's ENV, then envFrom, then env."""
        environment = dict(IMAGE_ENV)
        configmaps = self.configmaps()
        for source in self.container.get("envFrom", []):
            reference = source.get("configMapRef")
            assert reference, f"{self.name}: envFrom must name ConfigMaps only: {source}"
            assert reference["name"] in configmaps, f"{self.name}: no ConfigMap {reference}"
            prefix = source.get("prefix", "")
            environment.update({prefix + k: v for k, v in configmaps[reference["name"]].items()})
        for item in self.container.get("env", []):
            environment[item["name"]] = item.get("value", "<valueFrom>")
        return environment

    def port_number(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        named = {p["name"]: p["containerPort"] for p in self.container["ports"] if "name" in p}
        assert port in named, f"{self.name}: no container port named {port}"
        return int(named[port])


@pytest.fixture(params=KUSTOMIZATIONS, ids=lambda path: path.relative_to(K8S).as_posix())
def rendered(request: pytest.FixtureRequest) -> Rendered:
    directory: Path = request.param
    return Rendered(directory.relative_to(K8S).as_posix(), _render(directory))


def test_the_base_and_the_pubsub_overlay_are_there() -> None:
    names = {path.relative_to(K8S).as_posix() for path in KUSTOMIZATIONS}
    assert {"base", "overlays/pubsub-consumer"} <= names


def test_manifests_name_only_settings_wtrunner_reads(rendered: Rendered) -> None:
    for name, data in rendered.configmaps().items():
        assert unknown_setting_names(data) == [], f"{rendered.name}: ConfigMap {name}"
    env_names = [item["name"] for item in rendered.container.get("env", [])]
    assert unknown_setting_names(env_names) == [], f"{rendered.name}: container env"


def test_the_pod_environment_is_valid_settings_listening_on_the_container_port(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = rendered.environment()
    assert environment.get("WTRUNNER_HOST") == "0.0.0.0"
    try:
        settings = settings_from(environment, monkeypatch)
    except SettingsError as exc:
        pytest.fail(f"{rendered.name}: wtrunner would not start: {exc}")
    assert settings.host == "0.0.0.0"
    assert [p["containerPort"] for p in rendered.container["ports"]] == [settings.port]
    # The image has no examples/ to fall back on: the pod must name a channel (or prefixes).
    assert settings.channels or settings.prefixes
    assert environment.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_probes_use_the_apps_routes_on_its_port(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    container = rendered.container
    assert container["readinessProbe"]["httpGet"]["path"] == READYZ  # 503 once shutdown begins
    assert container["livenessProbe"]["httpGet"]["path"] == LIVEZ  # stays 200 while draining
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind not in container:
            continue
        get = container[kind]["httpGet"]
        assert get["path"] in GET_PATHS, f"{kind}: {get['path']} is not a GET route"
        assert rendered.port_number(get["port"]) == settings.port, kind
        assert get.get("scheme", "HTTP") == "HTTP"
    service = rendered.one("Service")
    for port in service["spec"]["ports"]:
        assert rendered.port_number(port["targetPort"]) == settings.port


def test_service_links_are_off(rendered: Rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rendered.pod.get("enableServiceLinks") is False
    # Why: Kubernetes would give every pod <SERVICE>_PORT=tcp://IP:PORT for each Service, and
    # for the Service named wtrunner that is WTRUNNER_PORT, which wtrunner cannot use.
    linked = {
        svc["metadata"]["name"].upper().replace("-", "_") + "_PORT"
        for svc in rendered.of_kind("Service")
    }
    assert "WTRUNNER_PORT" in linked
    monkeypatch.setenv("WTRUNNER_PORT", "tcp://10.0.0.1:80")
    with pytest.raises(SettingsError, match="WTRUNNER_PORT"):
        load_settings()


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert Path(command[0]).name == "sleep" and len(command) == 2, command
    return float(command[1])


def test_grace_period_covers_the_whole_shutdown(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    pre_stop = _pre_stop_seconds(rendered.container)
    assert pre_stop >= 5, "endpoints need a moment to drop the pod before SIGTERM"
    drain = settings.pubsub_drain_seconds if settings.pubsub_subscription else 0.0
    needed = pre_stop + settings.shutdown_timeout + drain + settings.kill_grace_seconds
    grace = rendered.pod["terminationGracePeriodSeconds"]
    assert grace > needed, f"{rendered.name}: {grace}s grace < {needed}s of shutdown"


def test_pod_is_locked_down_and_writes_only_to_volumes(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod, container = rendered.pod, rendered.container
    pod_context = pod.get("securityContext", {})
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert "ALL" in context["capabilities"]["drop"]
    assert not context.get("capabilities", {}).get("add")
    assert context.get("privileged", False) is False
    assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
    assert context.get("runAsUser", pod_context.get("runAsUser")) == int(image_user())
    assert pod.get("automountServiceAccountToken") is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID")

    # Read-only root: the cache dir, /tmp and HOME are emptyDir volumes.
    environment = rendered.environment()
    settings = settings_from(environment, monkeypatch)
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    mounted = {
        mount["mountPath"].rstrip("/"): mount["name"]
        for mount in container["volumeMounts"]
        if not mount.get("readOnly")
    }
    for path in (str(settings.cache_dir), "/tmp", environment["HOME"]):
        assert mounted.get(path) in empty_dirs, f"{rendered.name}: {path} is not writable"
    # The environment cache must fit its volume.
    cache_volume = next(v for v in pod["volumes"] if v["name"] == mounted[str(settings.cache_dir)])
    limit = _quantity_bytes(cache_volume["emptyDir"]["sizeLimit"])
    assert settings.env_cache_max_bytes < limit


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6}
    units.update({"G": 10**9, "T": 10**12})
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity)
    assert match and match.group(2) in {"", *units}, quantity
    return int(match.group(1)) * units.get(match.group(2), 1)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_manifests_and_image_hold_no_secrets(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    for text in _strings(list(rendered.docs)):
        assert not SECRET_VALUE.search(text), f"{rendered.name}: secret-looking value {text!r}"
    literals = dict(IMAGE_ENV)
    for data in rendered.configmaps().values():
        literals.update(data)
    literals.update(
        {
            item["name"]: item["value"]
            for item in rendered.container.get("env", [])
            if "value" in item
        }
    )
    for name, value in literals.items():
        secret = SECRET_NAME.search(name) or name.upper() in secret_setting_names()
        assert not (secret and value), f"{rendered.name}: {name} holds a literal: use a Secret"
        assert not SECRET_VALUE.search(value), name


def test_objects_refer_to_each_other(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = rendered.one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = rendered.one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2
    # The autoscaler owns the replica count: a replicas field would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    account = rendered.one("ServiceAccount")
    assert rendered.pod["serviceAccountName"] == account["metadata"]["name"]
    assert "iam.gke.io/gcp-service-account" in account["metadata"]["annotations"]


def test_only_the_pubsub_overlay_turns_the_consumer_on(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    if rendered.name == "overlays/pubsub-consumer":
        assert re.fullmatch(r"projects/[^/]+/subscriptions/[^/]+", settings.pubsub_subscription)
        hpa = rendered.one("HorizontalPodAutoscaler")
        assert hpa["spec"]["minReplicas"] >= 3
    elif rendered.name == "base":
        assert settings.pubsub_subscription == ""


# --- The image's health check script, run for real ----------------------------------------------


def _image_path_to_repo(path: str) -> Path:
    for from_stage, sources, dest in copies(FINAL):
        if from_stage is None and dest == path and len(sources) == 1:
            return REPO / sources[0]
    raise AssertionError(f"{path} is not copied from the build context")


def _healthcheck(
    port: int, path: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the image's HEALTHCHECK command, with this interpreter, on the image's environment."""
    command = healthcheck_command(FINAL)
    argv = [sys.executable, str(_image_path_to_repo(command[1])), *command[2:]]
    if path is not None:
        argv[2:] = [path]
    environment = {
        **{k: v for k, v in IMAGE_ENV.items() if k not in {"PATH", "HOME"}},
        "PATH": os.environ["PATH"],
        "PORT": str(port),
        **env,
    }
    return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=30)


def test_healthcheck_script_checks_the_port_the_server_listens_on(
    tmp_path: Path, channel: Path
) -> None:
    port = free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        # The image's settings, but on loopback only and with this test's cache and channel.
        "WTRUNNER_HOST": "127.0.0.1",
        "PORT": str(port),
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "WTRUNNER_CHANNELS": channel.as_uri(),
        "WTRUNNER_SHUTDOWN_TIMEOUT": "5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "wtrunner", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}{LIVEZ}", server)
        # A proxy in the environment must not catch the request to localhost.
        answered = _healthcheck(
            port, HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9"
        )
        assert answered.returncode == 0, answered.stderr
        assert _healthcheck(port, WTRUNNER_PORT=str(port), PORT="1").returncode == 0
        missing = _healthcheck(port, "/no-such-route")
        assert missing.returncode == 1 and "404" in missing.stderr
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
        assert server.stderr is not None
        server.stderr.close()
    stopped = _healthcheck(port)
    assert stopped.returncode == 1 and str(port) in stopped.stderr
    invalid = _healthcheck(port, PORT="not-a-port")
    assert invalid.returncode == 1 and "PORT" in invalid.stderr
