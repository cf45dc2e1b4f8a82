"""container/validate_custom_resources.py: what container/check does with custom resources.

The CRD below is a test fixture of a made-up API group (example.test): it exercises the
validator's reading of Kubernetes' schema extensions; it is not a stand-in for a real CRD.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.container.dockerfile import CONTAINER
from tests.container.manifests import COMPONENTS, K8S, KUSTOMIZATIONS, render, render_on_base

SCRIPT = CONTAINER / "validate_custom_resources.py"
# API groups of the objects kubernetes-validate knows (core is "").
BUILTIN_GROUPS = {"", "apps", "autoscaling", "policy", "batch", "networking.k8s.io"}


def _validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("validate_custom_resources", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


VALIDATOR = _validator()

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.test"},
    "spec": {
        "group": "example.test",
        "names": {"kind": "Widget", "plural": "widgets"},
        "scope": "Namespaced",
        "versions": [
            {"name": "v1alpha1", "served": False, "storage": False, "schema": {}},
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "note": {"type": "string", "nullable": True},
                                    "labels": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "template": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": True,
                                        "properties": {"spec": {"type": "object"}},
                                    },
                                    "parts": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {"name": {"type": "string"}},
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        ],
    },
}


def _widget(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "n", "labels": {"a": "b"}},
        "spec": {"size": 2, **spec},
    }


@pytest.fixture
def crds(tmp_path: Path) -> Path:
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump(WIDGET_CRD))
    entries = [
        {"apiVersion": "example.test/v1", "kind": "Widget", "file": "widgets.yaml",
         "release": "test 1.0", "license": "MIT", "source": "here"},
        {"apiVersion": "example.test/v1", "kind": "Gadget", "file": "gadgets.yaml",
         "release": "test 1.0", "license": "MIT", "source": "nowhere"},
    ]  # fmt: skip
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(entries))
    return tmp_path


def _errors(crds: Path, *objects: dict[str, Any]) -> list[str]:
    sources = VALIDATOR.load_sources(crds / "sources.yaml")
    report, _ = VALIDATOR.validate(list(objects), sources, crds)
    errors: list[str] = report.errors
    return errors


def test_a_valid_custom_resource_passes(crds: Path) -> None:
    widget = _widget(
        port="http", note=None, labels={"x": "y"}, extra={"anything": {"goes": [1]}},
        template={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
        parts=[{"name": "a"}],
    )  # fmt: skip
    assert _errors(crds, widget) == []
    assert _errors(crds, _widget(port=8080)) == []


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"colour": "red"}, "spec: Additional properties"),  # unknown field
        ({"parts": [{"name": "a", "nmae": "typo"}]}, "spec/parts/0: Additional properties"),
        ({"size": "2"}, "spec/size: '2' is not of type 'integer'"),
        ({"size": 0}, "spec/size: 0 is less than the minimum"),
        ({"port": 1.5}, "spec/port: 1.5 is not valid"),
        ({"labels": {"x": 1}}, "spec/labels/x: 1 is not of type 'string'"),
        ({"note": 3}, "spec/note: 3 is not of type"),
    ],
)
def test_what_the_api_server_would_refuse_fails(crds: Path, spec: Any, where: str) -> None:
    [error] = _errors(crds, _widget(**spec))
    assert error.startswith(f"Widget/w: {where}"), error


def test_a_missing_required_field_and_an_unknown_top_level_field_fail(crds: Path) -> None:
    widget = _widget()
    del widget["spec"]["size"]
    widget["status2"] = {}
    errors = _errors(crds, widget)
    assert any("'size' is a required property" in error for error in errors), errors
    assert any("(root): Additional properties" in error for error in errors), errors


def test_listed_kinds_without_a_crd_are_reported_and_others_pass_through(crds: Path) -> None:
    gadget = {"apiVersion": "example.test/v1", "kind": "Gadget", "metadata": {"name": "g"}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    unknown = {"apiVersion": "other.test/v1", "kind": "Thing", "metadata": {"name": "t"}}
    sources = VALIDATOR.load_sources(crds / "sources.yaml")
    report, builtin = VALIDATOR.validate([_widget(), gadget, service, unknown], sources, crds)
    assert report.errors == []
    assert report.validated == ["Widget/w (test 1.0)"]
    [unvalidated] = report.unvalidated
    assert unvalidated.startswith("Gadget/g: no CRD for example.test/v1 Gadget")
    # kubernetes-validate gets the rest, and fails on a kind it has no schema for (Thing)
    assert builtin == [service, unknown]


def test_the_command_line_writes_the_other_objects_and_fails_on_an_invalid_one(
    crds: Path, tmp_path: Path
) -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    rendered = tmp_path / "rendered.yaml"
    builtin = tmp_path / "builtin.yaml"
    command = [sys.executable, str(SCRIPT), str(rendered), "--builtin-out", str(builtin),
               "--crds", str(crds)]  # fmt: skip
    rendered.write_text(yaml.safe_dump_all([service, _widget()]))
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "custom resource valid: Widget/w" in done.stdout
    assert list(yaml.safe_load_all(builtin.read_text())) == [service]

    rendered.write_text(yaml.safe_dump_all([service, _widget(colour="red")]))
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "INVALID: Widget/w: spec: Additional properties" in done.stderr


def _renderings() -> list[tuple[str, tuple[dict[str, Any], ...]]]:
    found = [(path.relative_to(K8S).as_posix(), render(path)) for path in KUSTOMIZATIONS]
    found += [(path.relative_to(K8S).as_posix(), render_on_base(path)) for path in COMPONENTS]
    return found


def test_every_custom_resource_the_manifests_use_is_listed_with_its_source() -> None:
    sources = VALIDATOR.load_sources()
    used = set()
    for name, docs in _renderings():
        for doc in docs:
            group = doc["apiVersion"].rpartition("/")[0]
            if group not in BUILTIN_GROUPS:
                key = (doc["apiVersion"], doc["kind"])
                assert key in sources, f"{name}: {key} is not in container/crds/sources.yaml"
                used.add(key)
    # and nothing is listed that no manifest uses
    assert used == set(sources)
    for source in sources.values():
        assert source.release and source.source and source.file.endswith(".yaml")
