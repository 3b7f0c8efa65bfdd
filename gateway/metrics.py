"""Prometheus metrics of one node, in a registry of its own (several nodes can share a process in tests).

Labels are identifiers of services and outcome codes only: never anything about a person.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.exchanges = Counter(
            "kiungo_exchanges",
            "Exchanges handled, by service, protocol and outcome (ok or the error code).",
            ["service", "protocol", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kiungo_exchange_seconds",
            "Time from the request's arrival to the response, by service.",
            ["service", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.log_failures = Counter(
            "kiungo_log_failures",
            "Exchange log writes that failed (the exchanges were refused).",
            registry=self.registry,
        )
        self.in_flight = Gauge("kiungo_exchanges_in_flight", "Exchanges being handled now.", registry=self.registry)
        self.monitoring_dropped = Gauge(
            "kiungo_monitoring_records_dropped",
            "Operational monitoring records this process could not write (the exchanges went on; the log has them).",
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "kiungo_answer_cache_hits",
            "Exchanges answered from the answer cache an agreement allows (the agency system was not asked).",
            registry=self.registry,
        )
        self.circuits_opened = Counter(
            "kiungo_circuits_opened",
            "Circuits this node opened, by circuit (peer:MEMBER or system:NAME).",
            ["circuit"],
            registry=self.registry,
        )

    def observe(self, service: str, protocol: str, outcome: str, seconds: float) -> None:
        self.exchanges.labels(service, protocol, outcome).inc()
        self.latency.labels(service, protocol).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
