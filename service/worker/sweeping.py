"""Reconcile sweeps that enqueue: ``StoredSweep`` for ``mfa-enforcer reconcile``, ``PeriodicSweep`` in the worker.

A sweep puts every user in scope of the rules on the work queue, the same path webhooks take (only the
worker changes GenAuth). It holds the database sweep lock for its whole run, so two sweeps never run at
once, and records each page in one transaction with its progress, so a stopped sweep resumes where it was.

``PeriodicSweep.maybe_sweep(now)`` is called by the worker loop every round when
``ENFORCER_RECONCILE_INTERVAL`` is set: when a sweep is due (none finished within the interval) it reads
pages for at most ``budget`` seconds, then returns so the worker can drain what it enqueued; the next round
continues. A sweep that another process holds the lock for is skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from service.enforcement.scoping import (
    DepartmentResolver,
    PageRecord,
    Progress,
    ScopePlan,
    SourceProgress,
    Sweeper,
    SweepStoppedError,
    call_with_retries,
    plan_scope,
)
from service.errors import ServiceError
from service.genauth.client import GenAuthClient
from service.logs import log_event
from service.policy.rules import Policy, Rule
from service.settings import Settings
from service.store import sweeps
from service.store.sweeps import ALL_RULES, Lease, LockHolder, SourceRow, SweepLockLostError

logger = logging.getLogger(__name__)

LOCK_TTL = 300.0
"""Seconds the sweep lock outlives its last renewal (a renewal comes with every page)."""
BUSY_RECHECK = 60.0
"""Seconds before the worker looks again when another process holds the lock or a sweep failed."""
STEP_BUDGET = 5.0
"""Seconds of page reading per worker round, so the worker keeps draining the queue during a sweep."""


def sweep_owner() -> str:
    """Who holds the sweep lock, as operators read it: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def userpool_id_for(settings: Settings) -> str:
    """The user pool work rows are recorded under (``Settings.pool_key``), the same key webhooks use, so
    reconcile rows coalesce with webhook rows for the same user."""
    return settings.pool_key


class SweepBusyError(ServiceError):
    """Another reconcile sweep holds the lock."""

    reason = "sweep_busy"

    def __init__(self, holder: LockHolder) -> None:
        self.holder = holder
        super().__init__(f"another reconcile sweep is running ({holder.owner})")


class StoredLedger:
    """The ``Ledger`` of a stored sweep: progress cached here, written through ``store.sweeps.record_page``."""

    def __init__(
        self,
        engine: sa.Engine,
        sweep_id: int,
        rows: dict[str, SourceRow],
        *,
        lease: Lease,
        userpool_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sweep_id = sweep_id
        self.lease = lease
        self.userpool_id = userpool_id
        self.clock = clock
        self.enqueued = 0
        """Users this process enqueued (on a resumed sweep, an earlier run enqueued the others)."""
        self._progress = {
            key: SourceProgress(next_page=row.next_page, total=row.total, listed=row.listed, done=row.done)
            for key, row in rows.items()
        }
        self._in_scope = sweeps.seen_count(engine, sweep_id)

    def progress(self, key: str) -> SourceProgress:
        return self._progress.setdefault(key, SourceProgress())

    def in_scope(self) -> int:
        return self._in_scope

    def record(self, page: PageRecord) -> list[str]:
        row = SourceRow(
            next_page=page.number + 1,
            total=page.total,
            listed=self.progress(page.source.key).listed + len(page.user_ids),
            done=page.is_last,
        )
        new = sweeps.record_page(
            self.engine,
            self.sweep_id,
            lease=self.lease,
            source_key=page.source.key,
            rules=page.source.rules,
            user_ids=page.user_ids,
            progress=row,
            userpool_id=self.userpool_id,
            now=self.clock(),
        )
        self._progress[page.source.key] = SourceProgress(row.next_page, row.total, row.listed, row.done)
        self._in_scope += len(new)
        self.enqueued += len(new)
        return new


@dataclass(frozen=True)
class SweepResult:
    """Where a stored sweep stands after a run."""

    sweep_id: int
    scope: str
    resumed: bool
    finished: bool
    in_scope: int
    enqueued: int
    """Users enqueued by this run."""
    rule_counts: dict[str, int]
    pages: int
    """Pages read by this run."""
    plan: ScopePlan


class StoredSweep:
    """One sweep that enqueues the users in scope of ``rules``, holding the lock from ``start`` to ``close``."""

    def __init__(
        self,
        engine: sa.Engine,
        client: GenAuthClient,
        rules: Sequence[Rule],
        *,
        scope: str,
        userpool_id: str,
        owner: str | None = None,
        restart: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        retry_base: float = 1.0,
        lock_ttl: float = LOCK_TTL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.client = client
        self.rules = tuple(rules)
        self.scope = scope
        self.userpool_id = userpool_id
        self.restart = restart
        self.on_progress = on_progress
        self.stop = stop
        self.retry_base = retry_base
        self.clock = clock
        self.monotonic = monotonic
        self.lease = sweeps.Lease(name=sweeps.SWEEP_LOCK, owner=owner or sweep_owner(), ttl=lock_ttl)
        self.plan: ScopePlan | None = None
        self.ledger: StoredLedger | None = None
        self.sweeper: Sweeper | None = None
        self.resumed = False
        self.finished = False
        self._finished_row: sweeps.SweepRow | None = None
        self._sweep_id = 0
        self._locked = False

    def start(self) -> None:
        """Take the lock (``SweepBusyError`` if taken), plan the listings, open or resume the stored sweep."""
        holder = sweeps.acquire_lock(self.engine, self.lease, now=self.clock())
        if holder is not None:
            raise SweepBusyError(holder)
        self._locked = True
        try:
            plan = call_with_retries(
                lambda: plan_scope(self.rules, DepartmentResolver(self.client)),
                stop=self.stop or threading.Event(),
                base=self.retry_base,
            )
            sweep, rows, self.resumed = sweeps.open_sweep(
                self.engine,
                scope=self.scope,
                fingerprint=plan.fingerprint,
                source_keys=[source.key for source in plan.sources],
                owner=self.lease.owner,
                now=self.clock(),
                restart=self.restart,
            )
        except BaseException:
            self.close()
            raise
        self.plan, self._sweep_id = plan, sweep.id
        self.ledger = StoredLedger(
            self.engine, sweep.id, rows, lease=self.lease, userpool_id=self.userpool_id, clock=self.clock
        )
        self.sweeper = Sweeper(
            self.client,
            plan,
            self.ledger,
            on_progress=self.on_progress,
            stop=self.stop,
            retry_base=self.retry_base,
            clock=self.monotonic,
        )
        log_event(logger, "sweep_started", sweep_id=sweep.id, scope=self.scope, resumed=self.resumed)

    def step(self, *, deadline: float | None = None) -> bool:
        """Read pages until done (then finish the sweep and free the lock: True) or the monotonic ``deadline``."""
        assert self.sweeper is not None, "start() first"
        if not self.sweeper.run(deadline=deadline):
            return False
        self._finished_row = sweeps.finish_sweep(self.engine, self._sweep_id, now=self.clock())
        self.finished = True
        self.close()
        result = self.result()
        log_event(
            logger, "sweep_finished", sweep_id=result.sweep_id, in_scope=result.in_scope, enqueued=result.enqueued
        )
        return True

    def result(self) -> SweepResult:
        assert self.plan is not None and self.ledger is not None and self.sweeper is not None, "start() first"
        if self._finished_row is not None:
            counts = dict(self._finished_row.rule_counts or {})
        else:
            counts = sweeps.rule_counts(self.engine, self._sweep_id)
        return SweepResult(
            sweep_id=self._sweep_id,
            scope=self.scope,
            resumed=self.resumed,
            finished=self.finished,
            in_scope=self.ledger.in_scope(),
            enqueued=self.ledger.enqueued,
            rule_counts={name: counts.get(name, 0) for name in self.plan.rules},
            pages=self.sweeper.pages,
            plan=self.plan,
        )

    def close(self) -> None:
        """Free the lock (the sweep's progress stays, for a later run to resume). Idempotent."""
        if self._locked:
            self._locked = False
            try:
                sweeps.release_lock(self.engine, self.lease)
            except sa.exc.SQLAlchemyError:
                # The lock then expires on its own after ``LOCK_TTL``.
                log_event(logger, "sweep_lock_not_released", level=logging.WARNING)


class PeriodicSweep:
    """The worker's own sweep of every rule's scope, every ``interval`` seconds (0: never)."""

    def __init__(
        self,
        engine: sa.Engine,
        client: GenAuthClient,
        policy_getter: Callable[[], Policy],
        *,
        interval: float,
        userpool_id: str,
        budget: float = STEP_BUDGET,
        owner: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.client = client
        self.policy_getter = policy_getter
        self.interval = interval
        self.userpool_id = userpool_id
        self.budget = budget
        self.owner = owner or sweep_owner()
        self.monotonic = monotonic
        self.active: StoredSweep | None = None
        self.next_check = 0.0
        self.stop_event: threading.Event | None = None
        """Set by the worker: its stop request also interrupts a sweep waiting out GenAuth retries."""

    def maybe_sweep(self, now: float) -> None:
        """Start or continue the sweep if one is due; never raises (a failure is logged and retried later)."""
        if self.interval <= 0 or (self.active is None and now < self.next_check):
            return
        try:
            if self.active is None and not self._start(now):
                return
            assert self.active is not None
            if self.active.step(deadline=self.monotonic() + self.budget):
                self.active = None
                self.next_check = now + self.interval
        except SweepStoppedError:
            self.stop()  # the worker is stopping; the sweep resumes later, here or elsewhere
        except (ServiceError, SweepLockLostError, sa.exc.SQLAlchemyError) as error:
            log_event(logger, "sweep_failed", level=logging.WARNING, error_type=type(error).__name__, error=str(error))
            self._drop(now)
        except Exception:
            logger.exception("sweep_crashed", extra={"fields": {}})
            self._drop(now)

    def stop(self) -> None:
        """Free the lock of a sweep in progress (it resumes later, here or in another process)."""
        if self.active is not None:
            self.active.close()
            self.active = None

    def _start(self, now: float) -> bool:
        latest = sweeps.latest_sweep(self.engine, ALL_RULES)
        if latest is not None and latest.state == "finished" and latest.finished_at is not None:
            due = latest.finished_at + self.interval
            if now < due:
                self.next_check = due
                return False
        sweep = StoredSweep(
            self.engine,
            self.client,
            self.policy_getter().rules,
            scope=ALL_RULES,
            userpool_id=self.userpool_id,
            owner=self.owner,
            monotonic=self.monotonic,
            stop=self.stop_event,
        )
        try:
            sweep.start()
        except SweepBusyError as busy:
            log_event(logger, "sweep_skipped", reason="busy", holder=busy.holder.owner)
            self.next_check = now + min(self.interval, BUSY_RECHECK)
            return False
        self.active = sweep
        return True

    def _drop(self, now: float) -> None:
        self.stop()
        self.next_check = now + min(self.interval, BUSY_RECHECK)
