"""The worker's periodic history prune (ENFORCER_RETENTION_DAYS; see ``service.store.retention``).

One worker per process calls ``maybe_prune`` every round of its loop. It prunes a few batches at a time:
with a backlog (the first run on an old database) it comes back a second later, between jobs, so jobs
never wait long behind it; once caught up it runs every ``PRUNE_INTERVAL`` seconds. Several processes
pruning at once is harmless (each batch deletes what is still there), only wasted work.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from service import metrics
from service.logs import log_event
from service.store.retention import DAY, prune_history

logger = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0
"""Seconds between prunes once no backlog is left."""
BACKLOG_PAUSE = 1.0
"""Seconds between prunes while older history is still to go."""
BATCHES_PER_ROUND = 4


class PeriodicPrune:
    """Deletes history older than ``retention_days`` (0: never) from the worker's loop."""

    def __init__(self, engine: sa.Engine, *, retention_days: float) -> None:
        self.engine = engine
        self.retention = retention_days * DAY
        self.next_at = 0.0

    def maybe_prune(self, now: float) -> None:
        if self.retention <= 0 or now < self.next_at:
            return
        try:
            pruned = prune_history(self.engine, older_than=now - self.retention, max_batches=BATCHES_PER_ROUND)
        except sa.exc.SQLAlchemyError as error:
            log_event(logger, "history_prune_failed", level=logging.WARNING, error_type=type(error).__name__)
            self.next_at = now + BACKLOG_PAUSE * 30
            return
        metrics.PRUNED_ROWS.labels(table="events").inc(pruned.events)
        metrics.PRUNED_ROWS.labels(table="decisions").inc(pruned.decisions)
        if pruned.events or pruned.decisions:
            log_event(logger, "history_pruned", events=pruned.events, decisions=pruned.decisions)
        self.next_at = now + (PRUNE_INTERVAL if pruned.is_complete else BACKLOG_PAUSE)
