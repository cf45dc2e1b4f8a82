"""Fixtures of the container suites: each rendered kustomization."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.container.manifests import K8S, KUSTOMIZATIONS, Rendered, render


@pytest.fixture(params=KUSTOMIZATIONS, ids=lambda path: path.relative_to(K8S).as_posix())
def rendered(request: pytest.FixtureRequest) -> Rendered:
    directory: Path = request.param
    return Rendered(directory.relative_to(K8S).as_posix(), render(directory))
