"""Prometheus metrics, named ``mfa_enforcer_*``, correct under several gunicorn worker processes.

Counters and histograms are recorded where things happen (intake, worker, GenAuth client). Under gunicorn,
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty writable folder (config/gunicorn.conf.py does it for you when
unset): every process then writes its samples there and ``/metrics`` merges them. prometheus_client reads
that variable when this module is imported, which is the one piece of configuration read at import time.
Queue depth, dead letters and sweep progress are read from the database at scrape time, so every process
reports the same truth.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

DELIVERIES = Counter(
    "mfa_enforcer_deliveries_total", "Webhook deliveries answered, by event and outcome.", ["event", "outcome"]
)
ACK_SECONDS = Histogram(
    "mfa_enforcer_delivery_ack_seconds",
    "Time from receiving a delivery to answering it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DECISIONS = Counter(
    "mfa_enforcer_decisions_total",
    "Decisions recorded, by rule and action ('-' when no rule matched).",
    ["rule", "action"],
)
GENAUTH_CALLS = Counter(
    "mfa_enforcer_genauth_calls_total",
    "Calls to the GenAuth management API, by endpoint and status.",
    ["endpoint", "status"],
)
GENAUTH_SECONDS = Histogram(
    "mfa_enforcer_genauth_call_seconds",
    "Duration of GenAuth management API calls.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
JOBS = Counter("mfa_enforcer_jobs_total", "Work rows processed, by result.", ["result"])


def record_decision(rules: tuple[str, ...], action: str) -> None:
    for rule in rules or ("-",):
        DECISIONS.labels(rule=rule, action=action).inc()


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time (the same answer from every process)."""

    def __init__(self, read: Callable[[float], dict[str, float | None]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        try:
            values = self._read(now)
        except Exception:
            values = {}
        up = GaugeMetricFamily("mfa_enforcer_database_up", "1 when the database answered this scrape.")
        up.add_metric([], 1.0 if values else 0.0)
        yield up
        for name, description in GAUGES.items():
            value = values.get(name)
            if value is not None:
                family = GaugeMetricFamily(f"mfa_enforcer_{name}", description)
                family.add_metric([], float(value))
                yield family


GAUGES = {
    "queue_depth": "Work rows waiting to be claimed (not leased).",
    "queue_leased": "Work rows a worker holds right now.",
    "queue_oldest_due_age_seconds": "How long the oldest waiting row has been due.",
    "dead_letters": "Work rows dead-lettered after their retry budget.",
    "reconcile_last_success_timestamp_seconds": "When the last reconcile sweep finished (UNIX time).",
    "reconcile_progress_users": "Users enqueued by the sweep in progress.",
}


def render(extra: Collector | None = None) -> tuple[bytes, str]:
    """The exposition text for ``/metrics``: this process, or every process in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if extra is not None:
        scraped = CollectorRegistry()
        scraped.register(extra)
        text += generate_latest(scraped)
    return text, CONTENT_TYPE_LATEST
