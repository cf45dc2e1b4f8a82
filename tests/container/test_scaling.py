"""KEDA scales the Pub/Sub consumers on their subscription: the ScaledObject of every rendered
overlay that turns the consumer on watches the subscription wtrunner pulls, targets a replica's
run slots, authenticates with Workload Identity, and scales down slowly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.container.known import settings_from
from tests.container.manifests import Rendered
from wtrunner.settings import Settings


def _trigger(scaled: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [t for t in scaled["spec"]["triggers"] if t["type"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} triggers"
    return found[0]


def _subscription_of(trigger: dict[str, Any], environment: dict[str, str]) -> str:
    """The subscription KEDA watches: named in the trigger, or read from the pod's environment
    (KEDA resolves ``subscriptionNameFromEnv`` in the scale target's container)."""
    metadata = trigger["metadata"]
    if "subscriptionName" in metadata:
        assert "subscriptionNameFromEnv" not in metadata
        return str(metadata["subscriptionName"])
    variable = metadata["subscriptionNameFromEnv"]
    assert variable in environment, f"{variable} is not in the pod's environment"
    return environment[variable]


def _slots_per_pod(settings: Settings) -> int:
    """How many messages one replica holds at most (the consumer's capacity)."""
    slots = settings.max_concurrent_runs
    return min(settings.pubsub_max_messages or slots, slots)


def test_consumers_scale_on_the_subscription_they_pull(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = rendered.environment()
    settings = settings_from(environment, monkeypatch)
    scaled_objects = rendered.of_kind("ScaledObject")
    if not settings.pubsub_subscription:
        assert scaled_objects == [], f"{rendered.name}: KEDA without a consumer"
        return
    [scaled] = scaled_objects
    assert rendered.of_kind("HorizontalPodAutoscaler") == [], "the CPU HPA would fight KEDA"
    target = scaled["spec"]["scaleTargetRef"]
    assert target["name"] == rendered.one("Deployment")["metadata"]["name"]
    # the container whose environment KEDA reads is wtrunner's
    assert target["envSourceContainerName"] == rendered.container["name"]

    pubsub = _trigger(scaled, "gcp-pubsub")
    assert _subscription_of(pubsub, environment) == settings.pubsub_subscription
    metadata = pubsub["metadata"]
    assert metadata["mode"] == "SubscriptionSize"
    # KEDA's metadata values are strings; the target is a replica's run slots
    assert isinstance(metadata["value"], str)
    assert int(metadata["value"]) == _slots_per_pod(settings), (
        f"{rendered.name}: target {metadata['value']} messages per pod, but a pod runs "
        f"{_slots_per_pod(settings)} at once (WTRUNNER_MAX_CONCURRENT_RUNS)"
    )
    assert float(metadata["activationValue"]) >= 0
    assert "credentialsFromEnv" not in metadata, "no key: Workload Identity"

    spec = scaled["spec"]
    assert 3 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_keda_reads_the_metrics_with_workload_identity(rendered: Rendered) -> None:
    for scaled in rendered.of_kind("ScaledObject"):
        reference = _trigger(scaled, "gcp-pubsub")["authenticationRef"]
        assert reference.get("kind", "TriggerAuthentication") == "TriggerAuthentication"
        auth = rendered.named("TriggerAuthentication", reference["name"])
        assert auth["spec"] == {"podIdentity": {"provider": "gcp"}}
        assert auth["metadata"].get("namespace") == scaled["metadata"].get("namespace")


def test_http_load_still_scales_on_cpu(rendered: Rendered) -> None:
    for scaled in rendered.of_kind("ScaledObject"):
        cpu = _trigger(scaled, "cpu")
        assert cpu["metricType"] == "Utilization"
        assert 0 < int(cpu["metadata"]["value"]) <= 100
        # a CPU target needs CPU requests
        assert rendered.container["resources"]["requests"]["cpu"]


def test_scaling_down_is_one_pod_at_a_time_and_slow(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    for scaled in rendered.of_kind("ScaledObject"):
        behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        down = behavior["scaleDown"]
        # a removed pod drains its runs: remove one at a time, after demand stayed low a while
        assert down["stabilizationWindowSeconds"] >= 300
        assert down.get("selectPolicy", "Max") == "Min" or len(down["policies"]) == 1
        for policy in down["policies"]:
            assert policy["type"] == "Pods" and policy["value"] == 1
            # the next pod goes only after the previous one had its whole drain (default
            # consumer); longer drains overlap (overlays/long-runs), which only costs capacity
            assert policy["periodSeconds"] >= min(settings.pubsub_drain_seconds, 300)
        # without the ScaledObject's own behaviour, KEDA's HPA would take Kubernetes' defaults
        assert behavior["scaleUp"]["policies"]
