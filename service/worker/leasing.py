"""Keeping the lease of the job a worker is working on, however long GenAuth takes.

A claimed row is invisible to other workers until its lease ends (ENFORCER_LEASE_SECONDS); a crashed worker's
rows come back after it. A job that runs longer (GenAuth answering slowly, rate-limit waits) would lose its
lease mid-reconcile and a second worker could take the same user. So while a job runs, a thread of the worker
renews its lease every third of the lease time. A job that finishes sooner costs nothing: the first renewal is
a third of the lease after the job started.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from service.logs import log_event
from service.store import queue

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the lease of the one job ``holding`` is entered with; one per worker, with its own thread."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self.clock = clock
        self._condition = threading.Condition()
        self._job: queue.Job | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.renewals = 0
        """Leases renewed so far (tests read it)."""

    @contextmanager
    def holding(self, job: queue.Job) -> Iterator[None]:
        """Keep ``job`` leased for as long as the block runs."""
        with self._condition:
            self._job = job
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="mfa-enforcer-lease", daemon=True)
                self._thread.start()
            self._condition.notify_all()
        try:
            yield
        finally:
            with self._condition:
                self._job = None
                self._condition.notify_all()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._job is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                job = self._job
                # Wait a third of the lease; a job that ends (or a new one that starts) meanwhile restarts it.
                self._condition.wait(self.interval)
                if self._stopped:
                    return
                if self._job is not job:
                    continue
            assert job is not None
            self._renew(job)

    def _renew(self, job: queue.Job) -> None:
        try:
            kept = queue.renew_lease(
                self.engine, job, owner=self.owner, lease_seconds=self.lease_seconds, now=self.clock()
            )
        except sa.exc.SQLAlchemyError as error:
            log_event(logger, "job_lease_renewal_failed", level=logging.WARNING, error_type=type(error).__name__)
            return
        if kept:
            self.renewals += 1
        else:
            log_event(logger, "job_lease_lost", level=logging.WARNING, job_id=job.id, user_id=job.subject.id)
