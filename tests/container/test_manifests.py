"""container/k8s: what ``kubectl kustomize`` renders for the base and each overlay agrees with
wtrunner's settings and routes, shuts down gracefully, is locked down and holds no secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.container.dockerfile import IMAGE_ENV, image_user
from tests.container.known import (
    GET_PATHS,
    LIVEZ,
    READYZ,
    secret_setting_names,
    settings_from,
    unknown_setting_names,
)
from tests.container.manifests import K8S, KUSTOMIZATIONS, Rendered, pre_stop_seconds, render
from wtrunner.settings import SettingsError, load_settings

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY", re.I)
SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY|\"private_key\"|AIza[0-9A-Za-z_-]{30,}|ya29\.[0-9A-Za-z_-]"
    r"|AKIA[0-9A-Z]{16}|gh[pousr]_[0-9A-Za-z]{30,}|xox[abpr]-[0-9A-Za-z-]{10,}"
)


def test_the_base_and_the_overlays_are_there() -> None:
    names = {path.relative_to(K8S).as_posix() for path in KUSTOMIZATIONS}
    overlays = {"overlays/pubsub-consumer", "overlays/long-runs", "overlays/gke"}
    assert {"base", "overlays/postgresql"} | overlays <= names


def test_manifests_name_only_settings_wtrunner_reads(rendered: Rendered) -> None:
    for name, data in rendered.configmaps().items():
        assert unknown_setting_names(data) == [], f"{rendered.name}: ConfigMap {name}"
    env_names = [item["name"] for item in rendered.container.get("env", [])]
    assert unknown_setting_names(env_names) == [], f"{rendered.name}: container env"


def test_the_pod_environment_is_valid_settings_listening_on_the_container_port(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = rendered.environment()
    assert environment.get("WTRUNNER_HOST") == "0.0.0.0"
    try:
        settings = settings_from(environment, monkeypatch)
    except SettingsError as exc:
        pytest.fail(f"{rendered.name}: wtrunner would not start: {exc}")
    assert settings.host == "0.0.0.0"
    assert [p["containerPort"] for p in rendered.container["ports"]] == [settings.port]
    # The image has no examples/ to fall back on: the pod must name a channel (or prefixes).
    assert settings.channels or settings.prefixes
    assert environment.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_probes_use_the_apps_routes_on_its_port(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    container = rendered.container
    assert container["readinessProbe"]["httpGet"]["path"] == READYZ  # 503 once shutdown begins
    assert container["livenessProbe"]["httpGet"]["path"] == LIVEZ  # stays 200 while draining
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind not in container:
            continue
        get = container[kind]["httpGet"]
        assert get["path"] in GET_PATHS, f"{kind}: {get['path']} is not a GET route"
        assert rendered.port_number(get["port"]) == settings.port, kind
        assert get.get("scheme", "HTTP") == "HTTP"
    service = rendered.one("Service")
    for port in service["spec"]["ports"]:
        assert rendered.port_number(port["targetPort"]) == settings.port


def test_service_links_are_off(rendered: Rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rendered.pod.get("enableServiceLinks") is False
    # Why: Kubernetes would give every pod <SERVICE>_PORT=tcp://IP:PORT for each Service, and
    # for the Service named wtrunner that is WTRUNNER_PORT, which wtrunner cannot use.
    linked = {
        svc["metadata"]["name"].upper().replace("-", "_") + "_PORT"
        for svc in rendered.of_kind("Service")
    }
    assert "WTRUNNER_PORT" in linked
    monkeypatch.setenv("WTRUNNER_PORT", "tcp://10.0.0.1:80")
    with pytest.raises(SettingsError, match="WTRUNNER_PORT"):
        load_settings()


def test_grace_period_covers_the_whole_shutdown(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    pre_stop = pre_stop_seconds(rendered.container)
    assert pre_stop >= 5, "endpoints need a moment to drop the pod before SIGTERM"
    drain = settings.pubsub_drain_seconds if settings.pubsub_subscription else 0.0
    needed = pre_stop + settings.shutdown_timeout + drain + settings.kill_grace_seconds
    grace = rendered.pod["terminationGracePeriodSeconds"]
    assert grace > needed, f"{rendered.name}: {grace}s grace < {needed}s of shutdown"


def test_pod_is_locked_down_and_writes_only_to_volumes(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod, container = rendered.pod, rendered.container
    pod_context = pod.get("securityContext", {})
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert "ALL" in context["capabilities"]["drop"]
    assert not context.get("capabilities", {}).get("add")
    assert context.get("privileged", False) is False
    assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
    assert context.get("runAsUser", pod_context.get("runAsUser")) == int(image_user())
    assert pod.get("automountServiceAccountToken") is False
    assert not pod.get("hostNetwork") and not pod.get("hostPID")

    # Read-only root: the cache dir, /tmp and HOME are emptyDir volumes.
    environment = rendered.environment()
    settings = settings_from(environment, monkeypatch)
    empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    mounted = {
        mount["mountPath"].rstrip("/"): mount["name"]
        for mount in container["volumeMounts"]
        if not mount.get("readOnly")
    }
    for path in (str(settings.cache_dir), "/tmp", environment["HOME"]):
        assert mounted.get(path) in empty_dirs, f"{rendered.name}: {path} is not writable"
    # The environment cache must fit its volume.
    cache_volume = next(v for v in pod["volumes"] if v["name"] == mounted[str(settings.cache_dir)])
    limit = _quantity_bytes(cache_volume["emptyDir"]["sizeLimit"])
    assert settings.env_cache_max_bytes < limit


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6}
    units.update({"G": 10**9, "T": 10**12})
    match = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity)
    assert match and match.group(2) in {"", *units}, quantity
    return int(match.group(1)) * units.get(match.group(2), 1)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_manifests_and_image_hold_no_secrets(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    for text in _strings(list(rendered.docs)):
        assert not SECRET_VALUE.search(text), f"{rendered.name}: secret-looking value {text!r}"
    literals = dict(IMAGE_ENV)
    for data in rendered.configmaps().values():
        literals.update(data)
    literals.update(
        {
            item["name"]: item["value"]
            for item in rendered.container.get("env", [])
            if "value" in item
        }
    )
    for name, value in literals.items():
        secret = SECRET_NAME.search(name) or name.upper() in secret_setting_names()
        assert not (secret and value), f"{rendered.name}: {name} holds a literal: use a Secret"
        assert not SECRET_VALUE.search(value), name


def test_objects_refer_to_each_other(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = rendered.one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # One autoscaler: the base's CPU HorizontalPodAutoscaler, or KEDA's ScaledObject instead
    # (two would fight over the replica count).
    autoscalers = rendered.of_kind("HorizontalPodAutoscaler") + rendered.of_kind("ScaledObject")
    assert len(autoscalers) == 1, f"{rendered.name}: {len(autoscalers)} autoscalers"
    [autoscaler] = autoscalers
    target = autoscaler["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    assert target["name"] == deployment["metadata"]["name"]
    spec = autoscaler["spec"]
    assert spec.get("minReplicas", spec.get("minReplicaCount", 0)) >= 2
    # The autoscaler owns the replica count: a replicas field would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    account = rendered.one("ServiceAccount")
    assert rendered.pod["serviceAccountName"] == account["metadata"]["name"]
    assert "iam.gke.io/gcp-service-account" in account["metadata"]["annotations"]


def test_only_the_pubsub_overlays_turn_the_consumer_on(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(rendered.environment(), monkeypatch)
    consumers = {"overlays/pubsub-consumer", "overlays/long-runs", "overlays/gke"}
    if rendered.name in consumers:
        assert re.fullmatch(r"projects/[^/]+/subscriptions/[^/]+", settings.pubsub_subscription)
        # scaled on the subscription by KEDA (test_scaling.py), three pullers at least
        assert rendered.one("ScaledObject")["spec"]["minReplicaCount"] >= 3
    else:
        assert settings.pubsub_subscription == "", rendered.name


def test_every_replica_advertises_its_pod_ip_and_reads_the_shared_store_from_a_secret(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {item["name"]: item for item in rendered.container.get("env", [])}
    advertised = env["WTRUNNER_ADVERTISE_URL"]["valueFrom"]["fieldRef"]
    assert advertised["fieldPath"] == "status.podIP"
    reference = env["WTRUNNER_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["optional"] is True, "the base runs without a database Secret (SQLite)"
    monkeypatch.setattr("socket.gethostname", lambda: "unused")
    settings = settings_from({**rendered.environment(), "WTRUNNER_ADVERTISE_URL": "10.4.0.7"},
                             monkeypatch)  # fmt: skip
    assert settings.effective_advertise_url == f"http://10.4.0.7:{settings.port}"


def test_the_postgresql_overlay_reaches_cloud_sql_through_a_local_sidecar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [directory] = [path for path in KUSTOMIZATIONS if path.name == "postgresql"]
    overlay = Rendered("overlays/postgresql", render(directory))
    [proxy] = overlay.pod["initContainers"]
    assert proxy["restartPolicy"] == "Always", "a native sidecar: up before wtrunner, down after"
    assert "--address=127.0.0.1" in proxy["args"] and "--port=5432" in proxy["args"]
    assert proxy["securityContext"]["runAsNonRoot"] is True
    settings = settings_from(overlay.environment(), monkeypatch)
    assert settings.database_pool_size >= 1
