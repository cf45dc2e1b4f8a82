"""The layer rule: no module under ``wtrunner/`` imports a module of a higher layer.

Front doors translate; the run core does not know them. The layers, lowest first,
are listed below; a module may import its own layer and any lower one. The check reads the
import statements of every module (including those inside functions), so a lazy import counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import wtrunner

PACKAGE = Path(wtrunner.__file__).parent

# Lowest first. A name is a module or a subpackage (everything under it).
LAYERS: list[tuple[str, set[str]]] = [
    ("leaves", {"version", "errors", "contract", "invoker_names", "text", "backoff",
                "singleflight", "readiness", "run_states", "ratelimit", "scopes", "reserved_env",
                "proctree", "handoff"}),
    ("configuration", {"settings", "logs", "gcp"}),
    ("services", {"tracing", "metrics", "looplag", "schemas", "processes", "workdirs", "results",
                  "channel", "environments", "runstore", "runlogs", "auth", "cgroups",
                  "catalogue"}),
    ("run requests", {"run_request", "workflow_commands"}),
    ("back ends", {"invokers"}),
    ("workflow metadata", {"metadata"}),
    ("remote job tracking", {"job_tracking"}),
    ("run path", {"runs"}),
    ("Pub/Sub front door", {"pubsub"}),
    ("application state", {"keys"}),
    ("HTTP front door and cleanup contexts", {"api", "contexts"}),
    ("application", {"app"}),
    ("programs", {"server", "oneshot", "cli", "testing", "__main__", "__init__",
                  "workflow_kit", "client", "runs_cli"}),
]  # fmt: skip


def _layer_of(module: str) -> int:
    top = module.split(".")[0]
    for index, (_, names) in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"wtrunner.{module} is in no layer: add it to LAYERS")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """The wtrunner modules ``path`` imports, as names relative to the package."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        package_parts = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wtrunner."):
                    found.add(alias.name.removeprefix("wtrunner."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("wtrunner"):
                target = node.module.removeprefix("wtrunner").lstrip(".")
            else:
                continue
            if target:
                found.add(target)
            else:  # ``from . import x``: x is a module of the package, or a name in __init__
                for alias in node.names:
                    exists = (PACKAGE / alias.name).is_dir() or (
                        PACKAGE / f"{alias.name}.py"
                    ).exists()
                    found.add(alias.name if exists else "__init__")
    return found


def test_every_module_imports_only_its_own_layer_or_lower() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        layer = _layer_of(module)
        for imported in sorted(_imports(path, module)):
            if _layer_of(imported) > layer:
                violations.append(
                    f"wtrunner.{module} ({LAYERS[layer][0]}) imports wtrunner.{imported} "
                    f"({LAYERS[_layer_of(imported)][0]})"
                )
    assert violations == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The check itself: a lower module importing a higher one is found."""
    source = tmp_path / "results.py"
    source.write_text("from .api.models import ErrorResponse\n")
    imported = _imports(source, "results")
    assert imported == {"api.models"}
    assert _layer_of("api.models") > _layer_of("results")
