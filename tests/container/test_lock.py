"""The reproducible image: container/requirements.lock pins every Python package with hashes,
is in sync with setup.cfg and pyproject.toml, and is what the Dockerfile installs; the base image
can be pinned by digest with container/update-base-image."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.container.dockerfile import CONTAINER, DOCKERFILE, STAGES, copies
from tests.helpers import REPO

LOCK = CONTAINER / "requirements.lock"
UPDATE_BASE_IMAGE = CONTAINER / "update-base-image"


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lock_requirements", CONTAINER / "lock_requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCKING = _lock_script()
RELOCK = f"re-lock with `{LOCKING.COMMAND}` (pip install uv) and commit container/requirements.lock"


def _header(prefix: str) -> str:
    for line in LOCK.read_text().splitlines():
        if line.startswith(prefix):
            return line.removeprefix(prefix).strip()
    raise AssertionError(f"the lock has no '{prefix.strip()}' line")


def _pins() -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it has."""
    pins: dict[str, tuple[Version, int]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", words[0])
        assert match, f"not pinned with ==: {line[:80]}"
        hashes = [word for word in words[1:] if word.startswith("--hash=sha256:")]
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in hashes), words[0]
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} is locked twice"
        pins[name] = (Version(match.group(2)), len(hashes))
    return pins


def test_the_lock_was_made_from_the_current_dependencies() -> None:
    assert _header(LOCKING.DIGEST_PREFIX) == LOCKING.dependency_digest(), (
        f"setup.cfg or pyproject.toml changed the image's dependencies since the lock was made: "
        f"{RELOCK}"
    )


def test_every_locked_package_is_pinned_with_hashes() -> None:
    pins = _pins()
    assert len(pins) > 20
    for name, (_, hashes) in pins.items():
        assert hashes >= 1, f"{name} has no hash: pip --require-hashes would refuse the lock"


def test_every_direct_requirement_is_locked_at_a_version_it_allows() -> None:
    pins = _pins()
    environment = {"python_version": _header(LOCKING.PYTHON_PREFIX), "sys_platform": "linux"}
    for section, requirements in LOCKING.dependency_sections().items():
        for line in requirements:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{section}: {requirement.name} is not in the lock: {RELOCK}"
            version = pins[name][0]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{section}: {line} does not allow the locked {version}: {RELOCK}"
            )
            for extra in requirement.extras:  # e.g. SQLAlchemy[asyncio] needs greenlet
                for needed in _extra_requirements(requirement.name, extra, environment):
                    assert canonicalize_name(needed) in pins, f"{line} needs {needed}: {RELOCK}"


def _extra_requirements(project: str, extra: str, environment: dict[str, str]) -> list[str]:
    """What ``project[extra]`` adds, as the installed distribution declares it."""
    needed = []
    for line in importlib.metadata.requires(project) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None:
            continue  # an unconditional dependency, not the extra's
        if marker.evaluate({**environment, "extra": extra}) and not marker.evaluate(
            {**environment, "extra": ""}
        ):
            needed.append(requirement.name)
    return needed


def test_extras_of_direct_requirements_are_followed() -> None:
    environment = {"python_version": "3.11", "sys_platform": "linux"}
    assert "greenlet" in _extra_requirements("SQLAlchemy", "asyncio", environment)


def test_the_digest_follows_the_dependency_sections(tmp_path: Path) -> None:
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    setup = (REPO / "setup.cfg").read_text()
    (tmp_path / "setup.cfg").write_text(setup)
    same = LOCKING.dependency_digest(tmp_path)
    assert same == LOCKING.dependency_digest()
    # a new runtime dependency, a changed bound, a new gcp dependency: each needs a new lock
    changes = [
        setup.replace("install_requires =\n", "install_requires =\n    httpx>=0.27\n"),
        setup.replace("aiohttp>=3.11", "aiohttp>=3.12"),
        setup.replace("gcp =\n", "gcp =\n    google-cloud-storage>=2\n"),
    ]
    for changed in changes:
        assert changed != setup
        (tmp_path / "setup.cfg").write_text(changed)
        assert LOCKING.dependency_digest(tmp_path) != same
    # the test extra is not in the image: changing it needs no new lock
    (tmp_path / "setup.cfg").write_text(setup.replace("test =\n", "test =\n    coverage\n"))
    assert LOCKING.dependency_digest(tmp_path) == same


def test_the_lock_targets_the_python_of_the_base_image() -> None:
    default = next(
        line.split("=", 1)[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("ARG PYTHON_IMAGE=")
    )
    match = re.fullmatch(r"python:(\d+\.\d+)[^@]*(@sha256:[0-9a-f]{64})?", default)
    assert match, f"the base image must be python:X.Y-... (optionally @sha256:...): {default}"
    assert match.group(1) == _header(LOCKING.PYTHON_PREFIX) == LOCKING.PYTHON_VERSION


def test_the_image_installs_exactly_the_lock() -> None:
    installs = [
        shlex.split(ins.args)
        for stage in STAGES
        for ins in stage.all("RUN")
        if "pip install" in ins.args
    ]
    assert len(installs) == 2, installs
    locked, project = installs
    assert "--require-hashes" in locked and "--no-deps" in locked
    lock_in_image = locked[locked.index("-r") + 1]
    copied = {
        dest: sources
        for stage in STAGES
        for from_stage, sources, dest in copies(stage)
        if from_stage is None
    }
    assert copied[lock_in_image] == ["container/requirements.lock"]
    # the project itself adds nothing: no dependencies, no build requirements fetched
    assert "--no-deps" in project and "--no-build-isolation" in project
    assert not any(word.endswith("]") for word in project), "extras would pull unlocked packages"


def _run_update(dockerfile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(UPDATE_BASE_IMAGE), "--dockerfile", str(dockerfile), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_update_base_image_pins_a_digest_and_keeps_the_tag(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.read_text())
    original = DOCKERFILE.read_text()
    tag = re.search(r"^ARG PYTHON_IMAGE=([^@\n]+)", original, re.M)
    assert tag
    for digest in ("sha256:" + "a" * 64, "sha256:" + "b" * 64):  # a second run replaces it
        done = _run_update(dockerfile, digest)
        assert done.returncode == 0, done.stderr
        text = dockerfile.read_text()
        assert f"ARG PYTHON_IMAGE={tag.group(1)}@{digest}\n" in text
        # nothing else changed
        assert re.sub(r"^ARG PYTHON_IMAGE=.*$", "", text, flags=re.M) == re.sub(
            r"^ARG PYTHON_IMAGE=.*$", "", original, flags=re.M
        )
    refused = _run_update(dockerfile, "sha256:not-a-digest")
    assert refused.returncode == 1 and "not a sha256 digest" in refused.stderr
    assert "b" * 64 in dockerfile.read_text()


@pytest.mark.parametrize("reference", ["python", "python@sha256:" + "c" * 64])
def test_update_base_image_needs_a_tag(tmp_path: Path, reference: str) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"ARG PYTHON_IMAGE={reference}\nFROM ${{PYTHON_IMAGE}}\n")
    done = _run_update(dockerfile, "sha256:" + "d" * 64)
    assert done.returncode == 1 and "has no tag" in done.stderr
