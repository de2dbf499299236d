"""Prometheus metrics of one app instance, in their own registry (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "hangar_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "hangar_http_request_seconds",
            "Time to answer HTTP requests, by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.machines = Gauge(
            "hangar_machines",
            "Machines by state and provider (computed when scraped).",
            ["state", "provider"],
            registry=self.registry,
        )
        self.operations = Counter(
            "hangar_operations",
            "Finished operations by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )

    def operation_finished(self, kind: str, outcome: str) -> None:
        self.operations.labels(kind=kind, outcome=outcome).inc()

    def set_machine_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.machines.clear()
        for (state, provider), count in counts.items():
            self.machines.labels(state=state, provider=provider).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
