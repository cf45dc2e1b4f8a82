"""Prometheus metrics, served at ``GET /metrics`` (one registry per application).

Label values stay bounded: routes are templates, invokers are registry names, outcomes and
results are fixed words; never run ids or MatchSpecs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .logs import PROBE_PATHS

RUN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
UNTRACKED_PATHS = PROBE_PATHS | {"/metrics"}


class Metrics:
    """Every metric wtrunner exports, in the application's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.http_requests = Counter(
            "wtrunner_http_requests",
            "HTTP requests by method, route template and status (probes excluded)",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "wtrunner_http_request_duration_seconds",
            "HTTP request latency by method and route template (probes excluded)",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.runs_started = Counter(
            "wtrunner_runs_started", "Runs started, by invoker", ["invoker"], registry=registry
        )
        self.runs_finished = Counter(
            "wtrunner_runs_finished",
            "Runs finished, by invoker and outcome "
            "(ok, workflow_error, crash, timeout, accepted, rejected)",
            ["invoker", "outcome"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "wtrunner_run_duration_seconds",
            "Duration of finished runs, by invoker and outcome",
            ["invoker", "outcome"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.runs_by_state = Gauge(
            "wtrunner_runs",
            "Recorded runs by state (the run store, refreshed every few seconds)",
            ["state"],
            registry=registry,
        )
        self.runs_in_flight = Gauge(
            "wtrunner_runs_in_flight", "Runs holding a run slot", registry=registry
        )
        self.runs_waiting = Gauge(
            "wtrunner_runs_waiting", "Runs waiting for a run slot", registry=registry
        )
        self.resolutions = Counter(
            "wtrunner_environment_resolutions",
            "Environment resolutions by result (hit, prefix, solved, installed)",
            ["result"],
            registry=registry,
        )
        self.install_duration = Histogram(
            "wtrunner_environment_install_seconds",
            "Time to install an environment",
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.pubsub_messages = Counter(
            "wtrunner_pubsub_messages",
            "Pub/Sub messages of the pull consumer by outcome (acked, nacked, duplicate)",
            ["outcome"],
            registry=registry,
        )
        self.pubsub_pull_failures = Counter(
            "wtrunner_pubsub_pull_failures",
            "Failed pulls of the Pub/Sub consumer",
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "wtrunner_event_loop_lag_seconds",
            "How late the event loop woke a task sleeping a fixed interval",
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )

    def watch_slots(self, in_use: Callable[[], float], waiting: Callable[[], float]) -> None:
        """Read the run-slot gauges from the run slots at scrape time."""
        self.runs_in_flight.set_function(in_use)
        self.runs_waiting.set_function(waiting)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def route_template(request: web.Request) -> str:
    """The route's template (e.g. ``/rjsf``), or ``unmatched`` for unknown paths."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def observe_request(metrics: Metrics, request: web.Request, status: int, started: float) -> None:
    """Count one finished request (probes and /metrics are not counted)."""
    if request.path in UNTRACKED_PATHS and request.method == "GET":
        return
    route = route_template(request)
    metrics.http_requests.labels(request.method, route, str(status)).inc()
    metrics.http_duration.labels(request.method, route).observe(time.perf_counter() - started)


def metrics_response(metrics: Metrics) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
