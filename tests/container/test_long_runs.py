"""overlays/long-runs: a stopped pod lets every Pub/Sub run it holds finish, within what GKE
grants, and GKE's load balancer waits for long responses and drains like the pod."""

from __future__ import annotations

import json

import pytest

from tests.container.known import READYZ, settings_from
from tests.container.manifests import K8S, Rendered, pre_stop_seconds, render
from wtrunner.api.run_resources import MAX_WAIT_SECONDS

# GKE honours a pod's grace period for at most an hour on node upgrades and repairs.
GKE_UPGRADE_GRACE_SECONDS = 3600
# What the load balancer waits for a response unless a BackendConfig says otherwise.
DEFAULT_LB_TIMEOUT_SECONDS = 30


def _overlay(name: str) -> Rendered:
    return Rendered(name, render(K8S / name))


@pytest.fixture(params=["overlays/long-runs", "overlays/gke"])
def long_runs(request: pytest.FixtureRequest) -> Rendered:
    return _overlay(request.param)


def test_the_drain_lets_every_pubsub_run_finish(
    long_runs: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(long_runs.environment(), monkeypatch)
    assert settings.pubsub_subscription
    # a run in flight at SIGTERM has at most the cap left to go
    assert settings.pubsub_drain_seconds >= settings.pubsub_max_run_seconds
    # and the cap is longer than the default consumer's (otherwise the overlay is pointless)
    consumer = settings_from(_overlay("overlays/pubsub-consumer").environment(), monkeypatch)
    assert settings.pubsub_max_run_seconds > consumer.pubsub_drain_seconds


def test_the_grace_period_covers_the_cap_drain_and_kill_grace_within_gkes_hour(
    long_runs: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(long_runs.environment(), monkeypatch)
    pod = long_runs.pod
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = pre_stop_seconds(long_runs.container)
    needed = (
        pre_stop
        + settings.shutdown_timeout
        + max(settings.pubsub_drain_seconds, settings.pubsub_max_run_seconds)
        + settings.kill_grace_seconds
    )
    assert grace > needed, f"{grace}s grace < {needed}s of shutdown"
    assert grace >= settings.pubsub_max_run_seconds + settings.kill_grace_seconds
    assert grace <= GKE_UPGRADE_GRACE_SECONDS, "GKE would cut the drain short on node upgrades"
    # the cluster autoscaler grants only ten minutes when it empties a node: not these pods
    annotations = long_runs.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"


def test_the_load_balancer_waits_for_long_responses_and_drains_like_the_pod(
    long_runs: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(long_runs.environment(), monkeypatch)
    service = long_runs.one("Service")
    annotations = service["metadata"]["annotations"]
    reference = json.loads(annotations["cloud.google.com/backend-config"])
    backend = long_runs.named("BackendConfig", reference["default"])
    # container-native load balancing: traffic goes to pods, so readiness and drain apply
    assert json.loads(annotations["cloud.google.com/neg"]) == {"ingress": True}

    spec = backend["spec"]
    assert spec["timeoutSec"] > DEFAULT_LB_TIMEOUT_SECONDS
    # a long poll of the run registry must not be cut by the load balancer
    assert spec["timeoutSec"] > MAX_WAIT_SECONDS
    # the pod answers open requests for preStop + the shutdown timeout after leaving the
    # endpoints; the load balancer waits no longer than that for them, and not much less
    draining = spec["connectionDraining"]["drainingTimeoutSec"]
    pod_keeps_serving = pre_stop_seconds(long_runs.container) + settings.shutdown_timeout
    assert settings.shutdown_timeout <= draining <= pod_keeps_serving
    check = spec["healthCheck"]
    assert check["type"] == "HTTP"
    assert check["requestPath"] == READYZ
    assert check["port"] == settings.port
    assert check["port"] in [port["containerPort"] for port in long_runs.container["ports"]]
