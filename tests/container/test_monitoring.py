"""Metrics scraped: the monitoring components scrape GET /metrics of the wtrunner pods (and let
the scraper through the NetworkPolicy), and the Grafana dashboard queries only metrics the
service really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.container.dockerfile import CONTAINER
from tests.container.manifests import COMPONENTS, K8S, Rendered
from tests.helpers import Client

DASHBOARD = CONTAINER / "monitoring" / "grafana-dashboard.json"
# The series names a family of each type exposes in the Prometheus text format.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
# A PromQL identifier that names a wtrunner metric (label names and functions never start so).
METRIC_NAME = re.compile(r"\bwtrunner_[a-zA-Z0-9_:]*")


def test_both_monitoring_components_are_there() -> None:
    names = {path.relative_to(K8S).as_posix() for path in COMPONENTS}
    assert {"components/monitoring-gmp", "components/monitoring-prometheus-operator"} <= names


def _scraper(component: Rendered) -> dict[str, Any]:
    scrapers = component.of_kind("PodMonitoring") + component.of_kind("ServiceMonitor")
    assert len(scrapers) == 1, f"{component.name}: {len(scrapers)} scrape configurations"
    return scrapers[0]


def test_components_scrape_the_metrics_route_of_the_pods(component: Rendered) -> None:
    scraper = _scraper(component)
    selector = scraper["spec"]["selector"]["matchLabels"]
    [endpoint] = scraper["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    if scraper["kind"] == "PodMonitoring":  # selects pods, names a container port
        assert selector.items() <= component.pod_labels.items()
        port = component.port_number(endpoint["port"])
    else:  # a ServiceMonitor selects Services and names a Service port
        service = component.one("Service")
        assert selector.items() <= service["metadata"]["labels"].items()
        [service_port] = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        port = component.port_number(service_port["targetPort"])
    assert port in [p["containerPort"] for p in component.container["ports"]]

    # The base's NetworkPolicy admits only the namespace and the load balancers: the component
    # opens the same port to its scraper's namespace.
    opened = [
        policy
        for policy in component.of_kind("NetworkPolicy")
        if any("namespaceSelector" in peer for rule in policy["spec"]["ingress"]
               for peer in rule["from"])
    ]  # fmt: skip
    assert len(opened) == 1, component.name
    [rule] = opened[0]["spec"]["ingress"]
    assert {component.port_number(p["port"]) for p in rule["ports"]} == {port}
    assert opened[0]["spec"]["podSelector"]["matchLabels"].items() <= component.pod_labels.items()
    [peer] = rule["from"]
    scraper_namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    if scraper["kind"] == "PodMonitoring":
        assert scraper_namespace == "gmp-system"  # where GKE runs the managed collectors


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", variable["query"]["query"]


def _exported_series(metrics_text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


async def test_the_dashboard_queries_only_metrics_the_service_exports(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    exported = _exported_series(await response.text())
    assert "wtrunner_runs_finished_total" in exported  # the parser saw the families

    dashboard = json.loads(DASHBOARD.read_text())
    queried = set()
    for where, expr in _queries(dashboard):
        names = set(METRIC_NAME.findall(expr))
        assert names, f"{where}: queries no wtrunner metric: {expr}"
        unknown = names - exported
        assert not unknown, f"{where}: {sorted(unknown)} are not in GET /metrics"
        queried |= names
    # what the issue asks the dashboard to show
    for shown in (
        "wtrunner_runs",  # runs by state
        "wtrunner_run_duration_seconds_bucket",  # durations
        "wtrunner_runs_in_flight",  # slots in use
        "wtrunner_runs_waiting",  # the queue for slots
        "wtrunner_pubsub_messages_total",  # acks and nacks
    ):
        assert shown in queried, shown


def test_the_dashboard_takes_its_data_source_as_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
