"""What ``kubectl kustomize`` renders from each kustomization under container/k8s."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container.dockerfile import CONTAINER, IMAGE_ENV

K8S = CONTAINER / "k8s"
BASE = K8S / "base"


def _is_component(directory: Path) -> bool:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return bool(kustomization.get("kind") == "Component")


_ALL = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
# The base and the overlays (what `kubectl apply -k` takes), and the components an overlay opts
# into (rendered on the base, as container/check does).
KUSTOMIZATIONS = [path for path in _ALL if not _is_component(path)]
COMPONENTS = [path for path in _ALL if _is_component(path)]


def find_kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        reason = "kubectl is not on PATH: it renders container/k8s (kubectl kustomize)"
        if os.environ.get("WTRUNNER_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (WTRUNNER_REQUIRE_EMULATORS is set)")
        pytest.skip(reason)
    return kubectl


@functools.cache
def render_on_base(component: Path) -> tuple[dict[str, Any], ...]:
    """What an overlay of the base that uses ``component`` renders."""
    with tempfile.TemporaryDirectory() as tmp:
        # kustomize takes only relative paths to other kustomizations
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(BASE, tmp)],
            "components": [os.path.relpath(component, tmp)],
        }
        Path(tmp, "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return _kustomize(Path(tmp))


@functools.cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    """What ``kubectl kustomize directory`` renders."""
    return _kustomize(directory)


def _kustomize(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [find_kubectl(), "kustomize", str(directory)],
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

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: no {kind} named {name}"
        return found[0]

    @property
    def pod_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        return labels

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


def pre_stop_seconds(container: dict[str, Any]) -> float:
    """How long the container's preStop hook pauses (``sleep`` action or ``sleep N`` command)."""
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert Path(command[0]).name == "sleep" and len(command) == 2, command
    return float(command[1])
