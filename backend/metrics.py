"""Prometheus metrics with the names of Databricks' export, labelled by model and version.

Counters and histograms are updated on the scoring path; gauges (in flight, replicas,
provisioned concurrency) are read from the controller and engine when Prometheus scrapes.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rtserve.server.control.controller import Controller
from rtserve.server.engines.base import Engine, ReplicaState
from rtserve.server.mailer import OUTCOMES, Mailer
from rtserve.server.replica_usage import ReplicaUsage
from rtserve.server.tables.writer import InferenceLog

LABELS = ("model", "version")
LATENCY_BUCKETS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class _LiveState(Collector):
    def __init__(self, controller: Controller, engine: Engine) -> None:
        self.controller = controller
        self.engine = engine
        self.usage = ReplicaUsage()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        controller, engine = self.controller, self.engine
        in_flight = GaugeMetricFamily("in_flight_requests", "Requests being served or queued", labels=LABELS)
        for (model, version), stats in controller.traffic.snapshot().items():
            if (model, version) in controller.snapshot.views:
                in_flight.add_metric([model, version], stats.in_flight)
        replicas = GaugeMetricFamily("replicas", "Replicas by state", labels=(*LABELS, "state"))
        provisioned = GaugeMetricFamily(
            "provisioned_concurrent_requests_total", "Requests the ready replicas serve at once", labels=LABELS
        )
        observed = list(engine.replicas())
        by_state = Tally((r.model_name, r.version, r.state.value) for r in observed)
        for (model, version, state), count in sorted(by_state.items()):
            replicas.add_metric([model, version, state], count)
        for model, version in controller.snapshot.views:
            ready = by_state.get((model, version, ReplicaState.READY.value), 0)
            provisioned.add_metric([model, version], ready * controller.tuning.replica_concurrency)
        cpu = GaugeMetricFamily(
            "cpu_usage_percentage", "Average CPU use of the live replicas, in percent of one core", labels=LABELS
        )
        memory = GaugeMetricFamily(
            "mem_usage_percentage",
            "Average resident memory of the live replicas, in percent of the machine's",
            labels=LABELS,
        )
        for (model, version), usage in sorted(self.usage.read(observed).items()):
            cpu.add_metric([model, version], usage.cpu_percent)
            memory.add_metric([model, version], usage.memory_percent)
        leader = GaugeMetricFamily(
            "rtserve_leader", "1 if this backend instance is the reconciler leader (it acts), 0 if it follows"
        )
        leader.add_metric([], 1 if controller.leadership.leading else 0)
        yield from (in_flight, replicas, provisioned, cpu, memory, leader)


class _MailCounts(Collector):
    """The e-mail notifications the mailer sent, failed to send, or dropped (its queue full)."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "rtserve_email_notifications", "E-mail notifications by outcome", labels=("outcome",)
        )
        for outcome in OUTCOMES:
            family.add_metric([outcome], self.mailer.counts[outcome])
        yield family


class _TableRows(Collector):
    """Requests logged to the inference tables: rows written or failed per table, requests dropped (buffer full)."""

    def __init__(self, inference_log: InferenceLog) -> None:
        self.inference_log = inference_log

    def collect(self) -> Iterable[CounterMetricFamily]:
        rows = CounterMetricFamily(
            "rtserve_inference_table_rows", "Rows appended to the inference tables", labels=("table", "outcome")
        )
        for table in ("payload", "usage"):
            for outcome in ("written", "failed"):
                rows.add_metric([table, outcome], self.inference_log.rows[(table, outcome)])
        dropped = CounterMetricFamily(
            "rtserve_inference_table_dropped_requests",
            "Answered requests not logged to their inference tables because the buffer was full",
        )
        dropped.add_metric([], self.inference_log.dropped)
        yield from (rows, dropped)


class Metrics:
    def __init__(
        self,
        controller: Controller,
        engine: Engine,
        mailer: Mailer | None = None,
        inference_log: InferenceLog | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("request_count", "Scoring requests", LABELS, registry=self.registry)
        self.requests_4xx = Counter(
            "request_4xx_count", "Scoring requests answered 4xx", LABELS, registry=self.registry
        )
        self.requests_5xx = Counter(
            "request_5xx_count", "Scoring requests answered 5xx", LABELS, registry=self.registry
        )
        self.latency = Histogram(
            "request_latency_ms",
            "Scoring latency at the gateway",
            LABELS,
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "model_queue_time_ms",
            "Time a request waited for a ready replica",
            LABELS,
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.registry.register(_LiveState(controller, engine))
        if mailer is not None:
            self.registry.register(_MailCounts(mailer))
        if inference_log is not None:
            self.registry.register(_TableRows(inference_log))

    def observe(self, model: str, version: str, status: int, latency_ms: float, queue_ms: float | None) -> None:
        self.requests.labels(model, version).inc()
        if 400 <= status < 500:
            self.requests_4xx.labels(model, version).inc()
        elif status >= 500:
            self.requests_5xx.labels(model, version).inc()
        self.latency.labels(model, version).observe(latency_ms)
        if queue_ms is not None:
            self.queue_time.labels(model, version).observe(queue_ms)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def exposition_for(self, versions: set[tuple[str, str]]) -> bytes:
        """The metrics of the given (model, version) pairs only: one serving endpoint's."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Only(self.registry, versions))
        return generate_latest(registry)


class _Only(Collector):
    def __init__(self, source: CollectorRegistry, versions: set[tuple[str, str]]) -> None:
        self.source = source
        self.versions = versions

    def collect(self) -> Iterable[Metric]:
        for family in self.source.collect():
            samples = [s for s in family.samples if (s.labels.get("model"), s.labels.get("version")) in self.versions]
            if samples:
                only = Metric(family.name, family.documentation, family.type, family.unit)
                only.samples = samples
                yield only
