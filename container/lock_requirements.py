"""Write container/requirements.lock: every Python package the image installs, pinned, with hashes.

Run it after changing a dependency in setup.cfg (``install_requires``, the ``gcp`` extra) or the
build requirements in pyproject.toml, and commit the result::

    pip install uv
    python3 container/lock_requirements.py

The image installs the lock with ``pip install --require-hashes --no-deps``, then wtrunner itself
with ``--no-deps --no-build-isolation`` (its build requirements are in the lock too), so a build
installs exactly these files or fails. uv resolves for the image's Python (PYTHON_VERSION) on
Linux. The lock's header records a digest of the dependency sections it was made from;
tests/container/test_lock.py fails when setup.cfg or pyproject.toml changed them since.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (the tests import this module there too): pytest brings tomli
    import tomli as tomllib

CONTAINER = Path(__file__).resolve().parent
REPO = CONTAINER.parent
LOCK = CONTAINER / "requirements.lock"
# The Python of the image's base (python:3.11-slim-bookworm in container/Dockerfile).
PYTHON_VERSION = "3.11"
EXTRAS = ("gcp",)
COMMAND = "python3 container/lock_requirements.py"
DIGEST_PREFIX = "# dependencies-sha256: "
PYTHON_PREFIX = "# python-version: "
INPUT_NAME = "wtrunner-dependencies.in"


def dependency_sections(repo: Path = REPO) -> dict[str, list[str]]:
    """What the image needs, as written in setup.cfg and pyproject.toml."""
    setup = configparser.ConfigParser()
    setup.read(repo / "setup.cfg")
    sections = {"install_requires": _lines(setup.get("options", "install_requires"))}
    for extra in EXTRAS:
        sections[f"extras_require.{extra}"] = _lines(setup.get("options.extras_require", extra))
    with (repo / "pyproject.toml").open("rb") as file:
        sections["build-system.requires"] = list(tomllib.load(file)["build-system"]["requires"])
    return sections


def dependency_digest(repo: Path = REPO) -> str:
    """A digest of the dependency sections and the target Python: what the lock was made from."""
    content = {"python": PYTHON_VERSION, **dependency_sections(repo)}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def main() -> int:
    """Resolve with uv and write the lock with its header."""
    uv = shutil.which("uv")
    if uv is None:
        print("uv is not on PATH: pip install uv", file=sys.stderr)
        return 2
    requirements = [req for reqs in dependency_sections().values() for req in reqs]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, INPUT_NAME).write_text("\n".join(requirements) + "\n")
        resolved = subprocess.run(
            [
                uv, "pip", "compile", INPUT_NAME, "--generate-hashes", "--no-header",
                "--python-version", PYTHON_VERSION, "--python-platform", "linux",
            ],
            cwd=tmp, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if resolved.returncode != 0:
        print(resolved.stderr, file=sys.stderr)
        return 1
    header = [
        "# Every Python package of the wtrunner image, pinned and hashed (pip --require-hashes).",
        f"# Generated from setup.cfg (install_requires, extras: {', '.join(EXTRAS)}) and the",
        f"# build requirements of pyproject.toml by `{COMMAND}`; do not edit.",
        f"{PYTHON_PREFIX}{PYTHON_VERSION}",
        f"{DIGEST_PREFIX}{dependency_digest()}",
    ]
    LOCK.write_text("\n".join(header) + "\n" + resolved.stdout)
    print(f"wrote {LOCK.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
