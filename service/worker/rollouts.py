"""The worker's rollout clock: brings back pending users when their deadline comes, with no event needed.

A user whose rule is ``pending`` has nothing written and, often, nothing happening to them: no webhook will
arrive on the day their deadline passes. One worker per process calls ``maybe_queue`` every round; every
``DUE_INTERVAL`` seconds it queues the users whose stored deadline (``service.store.deadlines``) is today or
earlier. When the policy in force changes (its digest), it queues every pending user at once: an edited
``enforce_from``, wave or grace takes effect without a restart, and without waiting for the date stored
under the old policy. Several processes doing the same is harmless: a row is taken once, and queueing
twice is one work row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

import sqlalchemy as sa

from service.errors import ServiceError
from service.logs import log_event
from service.policy import Policy
from service.store.deadlines import queue_due

logger = logging.getLogger(__name__)

DUE_INTERVAL = 60.0
"""Seconds between looks for users whose deadline came."""


class PeriodicRollout:
    """Queues the users whose rollout deadline came, and every pending user when the policy changes."""

    def __init__(
        self,
        engine: sa.Engine,
        get_policy: Callable[[], Policy],
        *,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.engine = engine
        self.get_policy = get_policy
        self.today = today
        self.next_at = 0.0
        self.digest: str | None = None

    def maybe_queue(self, now: float) -> None:
        try:
            digest = self.get_policy().digest
        except ServiceError:  # no rules in force: nothing can be enforced, so nothing is due
            return
        changed = digest != self.digest  # the first look too: the file may have changed while no process ran
        self.digest = digest
        if not changed and now < self.next_at:
            return
        try:
            queued = queue_due(self.engine, today=self.today(), now=now, every_pending=changed)
        except sa.exc.SQLAlchemyError as error:
            log_event(logger, "rollout_due_failed", level=logging.WARNING, error_type=type(error).__name__)
            self.next_at = now + DUE_INTERVAL
            return
        if queued:
            log_event(logger, "rollout_users_queued", users=queued, policy_changed=changed)
        self.next_at = now + DUE_INTERVAL
