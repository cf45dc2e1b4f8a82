"""container/Dockerfile.dockerignore: the build context holds what the Dockerfile copies, and no
more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.container.dockerfile import STAGES, context_excludes, copies
from tests.helpers import REPO


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
        "tests/container/test_build_context.py",
        "container/k8s/base/kustomization.yaml",
        "bench/results.json",
    ]:
        assert context_excludes(path), path
