"""Build a local conda channel of ``noarch: generic`` packages from workflow source directories.

A workflow source directory holds ``workflow.yaml`` and the code it names::

    name: wt-example-tracks-workflow      # the package name and the executable bin/<name>
    version: 1.0.0
    build_number: 0                       # optional, default 0
    entry_point: tracks_workflow.cli:main # module:function that bin/<name> runs
    depends: []                           # optional conda dependencies (MatchSpecs)
    summary: One line about it            # optional: info/about.json's summary (the catalogue)
    activation_env: {}                    # optional variables set on activation; values may
                                          # use other variables, e.g. "$CONDA_PREFIX/share"

Everything else in the directory (except caches) is copied to ``share/wt-workflows/<name>/``
in the package and put first on ``sys.path`` by the launcher ``bin/<name>``. The launcher runs
on the interpreter that builds the channel, so workflow code may import what wtrunner depends on.

The build string is ``h<digest>_<build_number>``, where the digest covers the sources, the
interpreter and this builder's format: re-running with unchanged sources finds the package
already there and builds nothing; a changed source replaces the old build of that version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import yaml

BUILDER_FORMAT = "1"
SKIPPED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".git", ".DS_Store"})
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z_.+!]+$")
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Linux reads at most this many bytes of a "#!" line (older kernels: 127).
_SHEBANG_LIMIT = 127


class ChannelBuildError(Exception):
    """A workflow source directory cannot be packed (its message names the file and field)."""


@dataclass(frozen=True)
class WorkflowSource:
    """A parsed ``workflow.yaml`` and the directory it describes."""

    directory: Path
    name: str
    version: str
    build_number: int
    entry_point: str
    depends: tuple[str, ...] = ()
    activation_env: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @classmethod
    def load(cls, directory: Path) -> WorkflowSource:
        """Read and check ``directory/workflow.yaml``."""
        path = directory / "workflow.yaml"
        try:
            meta = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ChannelBuildError(f"{directory}: no workflow.yaml") from None
        except yaml.YAMLError as exc:
            raise ChannelBuildError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(meta, dict):
            raise ChannelBuildError(f"{path}: must be a mapping")

        def text(key: str, pattern: re.Pattern[str]) -> str:
            value = meta.get(key)
            if not isinstance(value, (str, int, float)) or not pattern.match(str(value)):
                raise ChannelBuildError(f"{path}: '{key}' is missing or invalid ({value!r})")
            return str(value)

        build_number = meta.get("build_number", 0)
        if not isinstance(build_number, int) or build_number < 0:
            raise ChannelBuildError(f"{path}: 'build_number' must be a non-negative integer")
        depends = meta.get("depends") or []
        summary = meta.get("summary") or ""
        if not isinstance(summary, str) or "\n" in summary.strip():
            raise ChannelBuildError(f"{path}: 'summary' must be one line of text")
        activation_env = meta.get("activation_env") or {}
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise ChannelBuildError(f"{path}: 'depends' must be a list of MatchSpecs")
        if not isinstance(activation_env, dict) or not all(
            isinstance(k, str) and _ENV_NAME.match(k) for k in activation_env
        ):
            raise ChannelBuildError(f"{path}: 'activation_env' must map variable names to values")
        return cls(
            directory=directory,
            name=text("name", _NAME),
            version=text("version", _VERSION),
            build_number=build_number,
            entry_point=text("entry_point", _ENTRY_POINT),
            depends=tuple(depends),
            activation_env={k: str(v) for k, v in activation_env.items()},
            summary=summary.strip(),
        )

    def files(self) -> list[Path]:
        """The source files to pack, relative to the directory, in a stable order."""
        found = []
        for root, dirs, names in os.walk(self.directory):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_NAMES)
            for name in sorted(names):
                if name in SKIPPED_NAMES or name.endswith((".pyc", ".pyo")):
                    continue
                found.append((Path(root) / name).relative_to(self.directory))
        return found

    def digest(self, interpreter: str) -> str:
        """A hash of everything that ends up in the package."""
        sha = hashlib.sha256(f"{BUILDER_FORMAT}\0{interpreter}\0".encode())
        for relative in self.files():
            full = self.directory / relative
            sha.update(f"{relative.as_posix()}\0{full.stat().st_mode & 0o111}\0".encode())
            sha.update(full.read_bytes())
            sha.update(b"\0")
        return sha.hexdigest()

    def build_string(self, interpreter: str) -> str:
        """``h<first 10 hex of the digest>_<build number>``."""
        return f"h{self.digest(interpreter)[:10]}_{self.build_number}"


@dataclass(frozen=True)
class BuildReport:
    """What one ``build_channel`` call did."""

    built: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]


def find_sources(paths: Iterable[Path]) -> list[Path]:
    """Workflow source dirs among ``paths``: each path is one, or a directory of them."""
    found = []
    for path in paths:
        if (path / "workflow.yaml").is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                sorted(child for child in path.iterdir() if (child / "workflow.yaml").is_file())
            )
        else:
            raise ChannelBuildError(f"{path}: not a directory")
    if not found:
        raise ChannelBuildError("no workflow sources (directories with workflow.yaml) found")
    return found


async def build_channel(
    sources: Sequence[Path], output: Path, *, interpreter: str | None = None
) -> BuildReport:
    """Pack every source into ``output/noarch`` and index the channel with ``rattler.index``."""
    from rattler.index import index_fs

    interpreter = interpreter or sys.executable
    workflows = [WorkflowSource.load(path) for path in find_sources(sources)]
    _check_unique(workflows)
    noarch = output / "noarch"
    noarch.mkdir(parents=True, exist_ok=True)

    built, unchanged, removed = [], [], []
    for workflow in workflows:
        build = workflow.build_string(interpreter)
        filename = f"{workflow.name}-{workflow.version}-{build}.conda"
        if (noarch / filename).exists():
            unchanged.append(filename)
            continue
        stale_prefix = f"{workflow.name}-{workflow.version}-h"
        stale_suffix = f"_{workflow.build_number}.conda"
        for old in noarch.glob(f"{stale_prefix}*{stale_suffix}"):
            old.unlink()
            removed.append(old.name)
        await anyio.to_thread.run_sync(_pack, workflow, interpreter, build, noarch / filename)
        built.append(filename)

    if built or removed or not (noarch / "repodata.json").exists():
        await index_fs(output, force=True, write_zst=False, write_shards=False)
    return BuildReport(tuple(built), tuple(unchanged), tuple(removed))


def _check_unique(workflows: list[WorkflowSource]) -> None:
    seen: dict[tuple[str, str, int], Path] = {}
    for workflow in workflows:
        key = (workflow.name, workflow.version, workflow.build_number)
        if key in seen:
            raise ChannelBuildError(
                f"{workflow.directory} and {seen[key]} are both {key[0]} {key[1]} build {key[2]}"
            )
        seen[key] = workflow.directory


def _launcher(workflow: WorkflowSource, interpreter: str) -> str:
    module, function = workflow.entry_point.split(":")
    shebang = f"#!{interpreter}"
    if len(shebang) > _SHEBANG_LIMIT or " " in interpreter:
        # Too long (or unquotable) for the kernel: let sh exec the interpreter on this file.
        shebang = f"#!/bin/sh\n'''exec' '{interpreter}' \"$0\" \"$@\"\n' '''"
    return (
        f"{shebang}\n"
        f"# Launcher of {workflow.name} {workflow.version}, written by `wtrunner channel build`.\n"
        "import os\n"
        "import sys\n\n"
        "_prefix = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n"
        f"sys.path.insert(0, os.path.join(_prefix, 'share', 'wt-workflows', {workflow.name!r}))\n"
        f"from {module} import {function}\n\n"
        f"sys.exit({function}())\n"
    )


def _activation_script(workflow: WorkflowSource) -> str:
    lines = [f"# Set by the {workflow.name} package on activation.\n"]
    lines += [
        f"export {name}={_sh_quote(value)}\n" for name, value in workflow.activation_env.items()
    ]
    return "".join(lines)


def _sh_quote(value: str) -> str:
    # Double quotes: values may refer to other variables, e.g. "$CONDA_PREFIX/share/proj".
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return f'"{escaped}"'


def _pack(workflow: WorkflowSource, interpreter: str, build: str, target: Path) -> None:
    from conda_package_handling import api

    with tempfile.TemporaryDirectory(prefix="wtrunner-build-") as staging_dir:
        staging = Path(staging_dir)
        files: list[str] = []

        def add(relative: str, content: bytes, executable: bool = False) -> None:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o755 if executable else 0o644)
            files.append(relative)

        add(f"bin/{workflow.name}", _launcher(workflow, interpreter).encode(), executable=True)
        share = f"share/wt-workflows/{workflow.name}"
        for relative in workflow.files():
            source = workflow.directory / relative
            executable = bool(source.stat().st_mode & 0o111)
            add(f"{share}/{relative.as_posix()}", source.read_bytes(), executable)
        if workflow.activation_env:
            script = _activation_script(workflow).encode()
            add(f"etc/conda/activate.d/{workflow.name}.sh", script)

        _write_info(staging, workflow, build, files)
        api.create(str(staging), None, target.name, out_folder=str(target.parent))


def _write_info(staging: Path, workflow: WorkflowSource, build: str, files: list[str]) -> None:
    info = staging / "info"
    info.mkdir()
    index: dict[str, Any] = {
        "name": workflow.name,
        "version": workflow.version,
        "build": build,
        "build_number": workflow.build_number,
        "depends": list(workflow.depends),
        "noarch": "generic",
        "subdir": "noarch",
        "platform": None,
        "arch": None,
        "timestamp": int(time.time() * 1000),
        "license": "BSD-3-Clause",
    }
    paths = [
        {
            "_path": relative,
            "path_type": "hardlink",
            "sha256": hashlib.sha256((staging / relative).read_bytes()).hexdigest(),
            "size_in_bytes": (staging / relative).stat().st_size,
        }
        for relative in files
    ]
    (info / "index.json").write_text(json.dumps(index, indent=2))
    (info / "files").write_text("".join(f"{relative}\n" for relative in files))
    (info / "paths.json").write_text(json.dumps({"paths_version": 1, "paths": paths}, indent=2))
    summary = workflow.summary or f"wtrunner workflow {workflow.name}"
    (info / "about.json").write_text(json.dumps({"summary": summary}))


def examples_dir() -> Path | None:
    """The example workflow sources of a source checkout (``examples/``), if present."""
    candidate = Path(__file__).resolve().parents[1] / "examples"
    return candidate if candidate.is_dir() else None
