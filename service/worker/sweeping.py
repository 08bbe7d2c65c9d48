"""Reconcile sweeps as work on the queue: starting one (``begin_sweep``: ``mfa-enforcer reconcile`` and the
worker's ``PeriodicSweep``) and reading one of its pages (``read_page``, for ``Worker``).

A sweep is planned once (``service.enforcement.scoping``), stored with page 1 of each listing on the queue
(``service.store.sweeps``), and then walked by whichever workers claim its pages: each reads its page with the
flags the rules need (``facts.user_flags``), puts the next page on the queue, and reconciles the page's users
from the records the listing returned, so a user in a sweep costs no ``get-user``. Nothing here retries: a
page that fails is retried, and dead-lettered, by the queue like any other work.

``PeriodicSweep.maybe_sweep(now)`` is called by the worker loop every round when ``ENFORCER_RECONCILE_INTERVAL``
is set: it starts a sweep of every rule's scope when none finished within the interval and none is running.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from service.enforcement.facts import user_flags
from service.enforcement.reconciling import Reconciler
from service.enforcement.scoping import DepartmentResolver, ScopePlan, plan_scope
from service.errors import PermanentError, ServiceError
from service.genauth.client import GenAuthClient, Json
from service.logs import log_event
from service.policy.rules import Policy, Rule
from service.store import sweeps
from service.store.queue import Job
from service.store.sweeps import ALL_RULES, SweepRow, SweepRunningError
from service.worker.errors import SweepBusyError

logger = logging.getLogger(__name__)

BUSY_RECHECK = 60.0
"""Seconds before the worker looks again when a sweep is running, or planning one failed."""


def sweep_owner() -> str:
    """Who started a sweep, as operators read it: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


@dataclass(frozen=True)
class Started:
    """A sweep begun (or joined, when one of the same scope and plan was running) and its plan."""

    sweep: SweepRow
    plan: ScopePlan
    joined: bool


def begin_sweep(
    engine: sa.Engine,
    client: GenAuthClient,
    rules: Sequence[Rule],
    *,
    scope: str,
    userpool_id: str,
    now: float,
    restart: bool = False,
    owner: str | None = None,
) -> Started:
    """Plan the listings of ``rules`` and start their sweep; ``SweepBusyError`` when another one is running."""
    plan = plan_scope(rules, DepartmentResolver(client))
    try:
        sweep, joined = sweeps.start_sweep(
            engine,
            scope=scope,
            plan=plan.to_json(),
            fingerprint=plan.fingerprint,
            userpool_id=userpool_id,
            owner=owner or sweep_owner(),
            now=now,
            restart=restart,
        )
    except SweepRunningError as running:
        raise SweepBusyError(running.running) from running
    log_event(logger, "sweep_started", sweep_id=sweep.id, scope=scope, joined=joined)
    return Started(sweep=sweep, plan=ScopePlan.from_json(sweep.plan), joined=joined)


@dataclass(frozen=True)
class ListedPage:
    """A page read for its sweep: the users to reconcile (with their records), and the counts to record."""

    sweep_id: int
    listing: int
    total: int | None
    listed: int
    users: list[tuple[str, Json]]
    """Users the sweep had not handled yet, with the record the listing returned."""
    rule_counts: dict[str, int]


def read_page(engine: sa.Engine, reconciler: Reconciler, job: Job, *, now: float) -> ListedPage | None:
    """Read the page ``job`` names and put the next one on the queue; None when its sweep is over.

    A listing GenAuth refuses (a department deleted since the plan was made) ends there, with no users.
    """
    sweep_id, listing, number = sweeps.page_of(job.subject)
    sweep = sweeps.get_sweep(engine, sweep_id)
    if sweep is None or sweep.state != "running":
        return None
    plan = ScopePlan.from_json(sweep.plan)
    source = plan.sources[listing]
    try:
        page = source.fetch(reconciler.client, number, flags=user_flags(reconciler.get_policy()))
    except PermanentError as error:
        log_event(logger, "sweep_listing_refused", level=logging.WARNING, listing=source.key, error=str(error))
        records: dict[str, Json] = {}
        total, is_last = None, True
    else:
        records = {str(item["userId"]): item for item in page.items if isinstance(item.get("userId"), str)}
        total, is_last = page.total, page.is_last(number)
    with engine.begin() as connection:
        # The next page goes on the queue first, so another worker can read it while this one reconciles.
        sweeps.advance(connection, sweep_id, listing, number, is_last=is_last, userpool_id=job.userpool_id, now=now)
        handled = sweeps.seen(connection, sweep, list(records))
    met_again = sum(1 for user_id in records if user_id in handled)
    elsewhere = plan.rules_elsewhere(listing)
    counts = {rule: len(records) - (met_again if rule in elsewhere else 0) for rule in source.rules}
    users = [(user_id, record) for user_id, record in records.items() if user_id not in handled]
    return ListedPage(sweep_id, listing, total, len(records), users, counts)


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
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.policy_getter = policy_getter
        self.interval = interval
        self.userpool_id = userpool_id
        self.owner = owner or sweep_owner()
        self.next_check = 0.0

    def maybe_sweep(self, now: float) -> None:
        """Start a sweep if one is due; never raises (a failure is logged and tried again later)."""
        if self.interval <= 0 or now < self.next_check:
            return
        try:
            self._maybe_start(now)
        except (ServiceError, sa.exc.SQLAlchemyError) as error:
            log_event(logger, "sweep_failed", level=logging.WARNING, error_type=type(error).__name__, error=str(error))
            self.next_check = now + min(self.interval, BUSY_RECHECK)
        except Exception:
            logger.exception("sweep_crashed", extra={"fields": {}})
            self.next_check = now + min(self.interval, BUSY_RECHECK)

    def _maybe_start(self, now: float) -> None:
        latest = sweeps.latest_sweep(self.engine)
        if latest is not None and latest.state == "running":
            # Its pages are on the queue; a page dead-lettered for good is revived an interval on.
            if now >= latest.updated_at + self.interval:
                sweeps.revive(self.engine, latest, self.userpool_id, now=now)
            self.next_check = now + min(self.interval, BUSY_RECHECK)
            return
        finished = sweeps.latest_sweep(self.engine, ALL_RULES, state="finished")
        if finished is not None and finished.finished_at is not None and now < finished.finished_at + self.interval:
            self.next_check = finished.finished_at + self.interval
            return
        try:
            begin_sweep(
                self.engine,
                self.client,
                self.policy_getter().rules,
                scope=ALL_RULES,
                userpool_id=self.userpool_id,
                now=now,
                owner=self.owner,
            )
        except SweepBusyError as busy:
            log_event(logger, "sweep_skipped", reason="busy", sweep_id=busy.sweep.id)
        self.next_check = now + min(self.interval, BUSY_RECHECK)
