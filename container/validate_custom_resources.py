"""Validate the custom resources of rendered manifests against vendored CRDs, offline.

Usage (container/check runs it on what ``kubectl kustomize`` renders)::

    python3 container/validate_custom_resources.py RENDERED.yaml --builtin-out BUILTIN.yaml

Custom resources are the objects whose apiVersion and kind ``crds/sources.yaml`` lists. Each is
validated against the ``openAPIV3Schema`` of the served version in the CRD file the list names,
the way the API server's strict field validation reads it: a field the schema does not declare
is an error unless the schema preserves unknown fields. A listed kind whose CRD file is not in
``crds/`` is reported as not validated (the check says so; it does not pass it silently). Every
other object is written to ``--builtin-out`` for kubernetes-validate, which fails on a kind it
has no schema for, so an unlisted custom resource fails there.

Needs PyYAML and jsonschema (kubernetes-validate depends on both). Exit status 1 when anything is
invalid, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parent / "crds"
SOURCES = CRDS / "sources.yaml"

# Kubernetes extensions to OpenAPI that jsonschema does not know; each is turned into JSON Schema.
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"


@dataclass(frozen=True)
class Source:
    """One custom resource kind the manifests use and the CRD file that describes it."""

    api_version: str
    kind: str
    file: str
    release: str
    source: str

    @property
    def path(self) -> Path:
        return CRDS / self.file


@dataclass
class Report:
    """What one run found."""

    validated: list[str] = field(default_factory=list)
    unvalidated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def load_sources(path: Path = SOURCES) -> dict[tuple[str, str], Source]:
    """The listed kinds, keyed by (apiVersion, kind)."""
    entries = yaml.safe_load(path.read_text()) or []
    sources = {}
    for entry in entries:
        source = Source(
            entry["apiVersion"], entry["kind"], entry["file"], entry["release"], entry["source"]
        )
        sources[(source.api_version, source.kind)] = source
    return sources


def crd_schemas(documents: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The ``openAPIV3Schema`` of every served version of the CRDs among ``documents``."""
    schemas = {}
    for doc in documents:
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if schema is None:
                raise ValueError(f"{doc['metadata']['name']} {version['name']}: no schema")
            api_version = f"{spec['group']}/{version['name']}"
            schemas[(api_version, spec["names"]["kind"])] = schema
    return schemas


def strict_schema(schema: dict[str, Any], root: bool = True) -> dict[str, Any]:
    """The JSON Schema (draft 4) that checks what the API server checks with strict field
    validation: undeclared fields are refused, except under x-kubernetes-preserve-unknown-fields
    or where ``additionalProperties`` allows them; int-or-string and nullable are honoured.
    CEL rules (x-kubernetes-validations) are not evaluated."""
    converted = copy.deepcopy(schema)
    _convert(converted)
    if root:
        properties = converted.setdefault("properties", {})
        # The API server checks apiVersion, kind and metadata itself (CRDs leave them loose).
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    return converted


def _convert(node: dict[str, Any]) -> None:
    if node.get(INT_OR_STRING):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in node:
        node["type"] = [node["type"], "null"]
    if node.get(EMBEDDED_RESOURCE):
        properties = node.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    for child in (node.get("properties") or {}).values():
        _convert(child)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            _convert(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key) or []:
            _convert(child)
    declares_fields = "properties" in node
    if declares_fields and not node.get(PRESERVE_UNKNOWN) and "additionalProperties" not in node:
        node["additionalProperties"] = False


def validate(
    objects: Iterable[dict[str, Any]],
    sources: dict[tuple[str, str], Source],
    crds_dir: Path = CRDS,
) -> tuple[Report, list[dict[str, Any]]]:
    """Validate the custom resources among ``objects``; return the report and the other
    objects (for kubernetes-validate)."""
    report = Report()
    builtin = []
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(crds_dir.glob("*.yaml")):
        if path.name != SOURCES.name:
            schemas.update(crd_schemas(yaml.safe_load_all(path.read_text())))
    for obj in objects:
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        source = sources.get(key)
        if source is None:
            builtin.append(obj)
            continue
        name = f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"
        schema = schemas.get(key)
        if schema is None:
            report.unvalidated.append(
                f"{name}: no CRD for {key[0]} {key[1]} in {crds_dir.name}/{source.file} "
                f"({source.release}; see {crds_dir.name}/README.md)"
            )
            continue
        validator = jsonschema.Draft4Validator(strict_schema(schema))
        problems = sorted(validator.iter_errors(obj), key=lambda error: list(error.path))
        for problem in problems:
            where = "/".join(str(part) for part in problem.path) or "(root)"
            report.errors.append(f"{name}: {where}: {problem.message}")
        if not problems:
            report.validated.append(f"{name} ({source.release})")
    return report, builtin


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc


def main(argv: list[str] | None = None) -> int:
    """The command line: validate, write the other objects, print what was (not) checked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rendered", type=Path, help="manifests rendered by kubectl kustomize")
    parser.add_argument(
        "--builtin-out", type=Path, required=True, help="where to write the other objects"
    )
    parser.add_argument("--crds", type=Path, default=CRDS, help="the CRD files (default: crds/)")
    args = parser.parse_args(argv)
    sources = load_sources(args.crds / SOURCES.name)
    report, builtin = validate(_documents(args.rendered), sources, args.crds)
    args.builtin_out.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    for line in report.validated:
        print(f"  custom resource valid: {line}")
    for line in report.unvalidated:
        print(f"  custom resource NOT VALIDATED: {line}")
    for line in report.errors:
        print(f"  custom resource INVALID: {line}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
