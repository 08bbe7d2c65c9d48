"""Prometheus metrics, named ``mfa_enforcer_*``, correct under several gunicorn worker processes.

Counters and histograms are recorded where things happen (intake, worker, GenAuth client). Under gunicorn,
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty writable folder (config/gunicorn.conf.py does it for you when
unset): every process then writes its samples there and ``/metrics`` merges them (``Settings.metrics_dir``).
prometheus_client itself reads that variable when this module is imported, the one piece of configuration
read at import time.
Queue depth, dead letters and sweep progress are read from the database at scrape time, so every process
reports the same truth; each process reads them at most every ``GAUGE_TTL`` seconds (``CachedReading``), so
frequent scrapes cost no more than one count of the work table per few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
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
WEBHOOK_LOG_ENTRIES = Counter(
    "mfa_enforcer_webhook_log_entries_total",
    "Entries of GenAuth's webhook delivery log read by gap recovery, by result: recovered (recorded as a live "
    "delivery would have been), duplicate (already recorded), invalid (did not validate; skipped), test.",
    ["result"],
)
JOBS = Counter("mfa_enforcer_jobs_total", "Work rows processed, by result.", ["result"])
POLICY_UNRESOLVED = Gauge(
    "mfa_enforcer_policy_unresolved_references",
    "Departments, groups and roles the policy in force names that GenAuth does not know.",
    multiprocess_mode="livemax",
)
GENAUTH_CIRCUIT_OPENED = Counter(
    "mfa_enforcer_genauth_circuit_opened_total",
    "Times the GenAuth circuit breaker opened (every call failing): workers stopped claiming until a probe passed.",
)
GENAUTH_RATE = Gauge(
    "mfa_enforcer_genauth_rate",
    "GenAuth calls per second this process paces itself to: GENAUTH_RATE_LIMIT, halved on a 429 and recovering "
    "additively (0: pacing off). Summed over the live processes.",
    multiprocess_mode="livesum",
)
WRITE_CHECKS = Counter(
    "mfa_enforcer_write_checks_total",
    "Writes read back after set-mfa-status, by result (kept, restored, not_kept, unknown).",
    ["result"],
)
BRAKE_CHECKS = Counter(
    "mfa_enforcer_brake_checks_total",
    'Writes that met the brakes (docs/operations.md, "Brakes"), by result: within_budget, released, held_budget, '
    "held_paused, protected.",
    ["result"],
)
PRUNED_ROWS = Counter(
    "mfa_enforcer_pruned_rows_total",
    "History rows deleted by ENFORCER_RETENTION_DAYS, by table (events, decisions).",
    ["table"],
)

LISTEN_MESSAGES = Counter(
    "mfa_enforcer_listen_messages_total",
    "Event WebSocket messages (mfa-enforcer listen), by event code and outcome: queued, ignored, test, unreadable, "
    "or the intake's refusal (wrong_userpool, missing_userpool, too_many_subjects, store_unavailable).",
    ["code", "outcome"],
)
LISTEN_CONNECTS = Counter(
    "mfa_enforcer_listen_connects_total",
    "Event WebSocket subscriptions, by event code and result: connected, failed (to be retried) or lost (an open "
    "subscription that ended, an oversized frame included).",
    ["code", "result"],
)
LISTEN_SILENCE = Gauge(
    "mfa_enforcer_listen_silence_seconds",
    "Seconds since mfa-enforcer listen last received a message for the event code (since it started, before the "
    "first).",
    ["code"],
    multiprocess_mode="livemin",
)
NOTICES = Counter(
    "mfa_enforcer_notices_total",
    "Notices the outbox tried to send, by kind (digest, before, on-enforce), channel (email, webhook) and result "
    "(sent, retry_scheduled, failed: given up after its attempts).",
    ["kind", "channel", "result"],
)


def record_decision(rules: tuple[str, ...], action: str) -> None:
    for rule in rules or ("-",):
        DECISIONS.labels(rule=rule, action=action).inc()


GAUGE_TTL = 5.0
"""Seconds one process reuses the database gauges it read."""


class CachedReading:
    """``read(now)`` at most once per ``ttl`` seconds (a failure too); callers meanwhile get the last answer.

    One scrape at a time reads; the others wait for it rather than read again.
    """

    def __init__(
        self,
        read: Callable[[float], dict[str, float | None]],
        *,
        ttl: float = GAUGE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._values: dict[str, float | None] = {}
        self.reads = 0
        """Database reads made (for tests)."""

    def __call__(self, now: float) -> dict[str, float | None]:
        with self._lock:
            if self._read_at is None or self._clock() - self._read_at >= self._ttl:
                self.reads += 1
                try:
                    self._values = self._read(now)
                except Exception:
                    self._values = {}  # "database_up 0" until the next read
                self._read_at = self._clock()
            return dict(self._values)


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
    "reconcile_progress_users": "Users in scope the sweep in progress has handled so far.",
    "not_effective_users": "Users whose latest decision relies on a factor GenAuth will not challenge (the pool or "
    "the rule's app does not enable it): see /readyz or the report for what to switch on.",
    "held_users": "Users whose write the change budget or a pause is holding (mfa-enforcer holds).",
    "writes_paused": "1 while GenAuth writes are paused (mfa-enforcer pause), else 0.",
}


def render(extra: Collector | None = None, *, multiprocess_dir: str = "") -> tuple[bytes, str]:
    """The exposition text for ``/metrics``: this process, or every process sharing ``multiprocess_dir``
    (``Settings.metrics_dir``)."""
    if multiprocess_dir:
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
