"""Locked down: ingress only on the service port, from the namespace and Google's load balancers
(egress open); replicas spread over zones and nodes; the example overlay in its own restricted
namespace, its image pinned by digest."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from tests.container.known import settings_from
from tests.container.manifests import K8S, Rendered, render

# Where Google Cloud's external Application Load Balancer and its health checks connect from.
LOAD_BALANCER_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}


def _service_target_ports(rendered: Rendered) -> set[int]:
    return {
        rendered.port_number(port["targetPort"])
        for port in rendered.one("Service")["spec"]["ports"]
    }


def _policies_for_the_pods(rendered: Rendered) -> list[dict[str, Any]]:
    found = []
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if selector.items() <= rendered.pod_labels.items():
            found.append(policy)
    return found


def _peers(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [peer for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])]


def test_ingress_only_on_the_service_port_and_egress_open(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    policies = _policies_for_the_pods(rendered)
    assert policies, f"{rendered.name}: no NetworkPolicy selects the pods"
    # the port every policy opens is the one the Service sends traffic to, and the app's
    assert _service_target_ports(rendered) == {settings.port}
    for policy in policies:
        # workflows fetch packages and data: egress is never restricted
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in policy["spec"]
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), "a rule without sources admits everyone"
            ports = {(port.get("protocol", "TCP"), rendered.port_number(port["port"]))
                     for port in rule["ports"]}  # fmt: skip
            assert ports == {("TCP", settings.port)}, policy["metadata"]["name"]


def test_the_namespace_and_the_load_balancers_may_connect(rendered: Rendered) -> None:
    peers = [peer for policy in _policies_for_the_pods(rendered) for peer in _peers(policy)]
    # the other replicas of this namespace (they pass log requests on to each other)
    assert {"podSelector": {}} in peers
    ranges = {peer["ipBlock"]["cidr"] for peer in peers if "ipBlock" in peer}
    assert ranges == LOAD_BALANCER_RANGES
    for peer in peers:
        if "ipBlock" in peer:
            assert "except" not in peer["ipBlock"]
            network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            assert network.prefixlen >= 16, "nothing wider than the load balancers' ranges"
        else:
            # no source outside the cluster but the load balancers; other namespaces only
            # when a component names them (monitoring)
            assert set(peer) <= {"podSelector", "namespaceSelector"}


def test_replicas_spread_over_zones_and_nodes(rendered: Rendered) -> None:
    constraints = rendered.pod["topologySpreadConstraints"]
    keys = {constraint["topologyKey"]: constraint for constraint in constraints}
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in constraints:
        assert constraint["maxSkew"] == 1
        # a preference: a small cluster still schedules every replica
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
        selector = constraint["labelSelector"]["matchLabels"]
        assert selector.items() <= rendered.pod_labels.items()
        # only the pods of one rollout count against each other
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_the_example_overlay_has_its_own_restricted_namespace() -> None:
    overlay = Rendered("overlays/gke", render(K8S / "overlays" / "gke"))
    namespace = overlay.one("Namespace")
    name = namespace["metadata"]["name"]
    labels = namespace["metadata"]["labels"]
    # the pods meet the "restricted" Pod Security Standard (test_manifests checks the fields)
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in overlay.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == name, f"{doc['kind']} outside {name}"


def test_the_example_overlay_pins_the_image_by_digest() -> None:
    overlay = Rendered("overlays/gke", render(K8S / "overlays" / "gke"))
    image = overlay.container["image"]
    assert re.fullmatch(r"[a-z0-9.-]+/[^@:\s]+@sha256:[0-9a-f]{64}", image.lower()), image
