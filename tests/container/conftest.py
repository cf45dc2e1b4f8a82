"""Fixtures of the container suites: each rendered kustomization, and each component on the base."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.container.manifests import (
    COMPONENTS,
    K8S,
    KUSTOMIZATIONS,
    Rendered,
    render,
    render_on_base,
)


@pytest.fixture(params=KUSTOMIZATIONS, ids=lambda path: path.relative_to(K8S).as_posix())
def rendered(request: pytest.FixtureRequest) -> Rendered:
    directory: Path = request.param
    return Rendered(directory.relative_to(K8S).as_posix(), render(directory))


@pytest.fixture(params=COMPONENTS, ids=lambda path: path.relative_to(K8S).as_posix())
def component(request: pytest.FixtureRequest) -> Rendered:
    """The base with one component (what an overlay that opts into it renders)."""
    directory: Path = request.param
    return Rendered(f"base + {directory.relative_to(K8S).as_posix()}", render_on_base(directory))
