"""The worker: claim due work, reconcile each user, then finish, retry or dead-letter the row.

Runs as a thread inside the web process (single node) or as ``mfa-enforcer worker`` (its own process or
pod). Temporary errors go back on the queue with exponential backoff and jitter (at least GenAuth's
``Retry-After``); after ``max_attempts`` a row is dead-lettered with its last error. Permanent errors are
recorded as a ``failed`` decision and not retried. A stop request lets the current job finish and releases
the rest of the batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from service import metrics
from service.enforcement.expansion import department_members, group_members
from service.enforcement.reconciling import Reconciler
from service.errors import PermanentError, TemporaryError
from service.logs import bind, log_event
from service.settings import WorkerSettings
from service.store import queue
from service.store.decisions import Decision, record_decision
from service.worker.sweeping import PeriodicSweep

logger = logging.getLogger(__name__)

STORE_ERROR_PAUSE_MAX = 30.0
LEASE_SAFETY = 0.75
"""Share of a batch's lease after which its unstarted jobs are released rather than started."""
CLAIM_HORIZON = 5.0
"""Seconds of work a worker claims at once, judged by how long its recent jobs took."""
JOB_TIME_SMOOTHING = 0.3
"""Weight of the latest job in the running average of job durations."""


def claim_size(batch_size: int, job_seconds: float | None) -> int:
    """How many rows to claim: one until a job has been timed, then a full batch while jobs are quick and fewer
    when they are slow (GenAuth answering slowly), so that a backlog is shared by every worker (and every
    worker thread) instead of waiting behind the one that claimed it."""
    if job_seconds is None:
        return 1
    if job_seconds < CLAIM_HORIZON / batch_size:
        return batch_size
    return max(1, min(batch_size, int(CLAIM_HORIZON / job_seconds)))


def default_owner() -> str:
    """A lease owner name that tells operators which process holds a row."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def retry_delay(
    attempt: int,
    settings: WorkerSettings,
    *,
    retry_after: float | None = None,
    rng: Callable[[], float] = random.random,
) -> float:
    """Exponential backoff with equal jitter, never less than GenAuth's advice."""
    ceiling = min(settings.backoff_max, settings.backoff_base * 2.0 ** max(0, attempt - 1))
    delay = ceiling / 2 + float(rng()) * ceiling / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.backoff_max))
    return delay


class Worker:
    """Drains the work queue with one ``Reconciler``."""

    def __init__(
        self,
        engine: sa.Engine,
        reconciler: Reconciler,
        settings: WorkerSettings,
        *,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        sweeper: PeriodicSweep | None = None,
    ) -> None:
        self.engine = engine
        self.reconciler = reconciler
        self.settings = settings
        self.owner = owner or default_owner()
        self.clock = clock
        self.stop_requested = threading.Event()
        self.job_seconds: float | None = None
        """Running average of how long a job takes here (None until the first one)."""
        self.sweeper = sweeper
        if sweeper is not None:
            sweeper.stop_event = self.stop_requested  # SIGTERM also interrupts a sweep's retry waits
        """Runs ``reconcile`` sweeps every ENFORCER_RECONCILE_INTERVAL seconds, a few pages per round."""

    def run(self) -> None:
        """Work until ``stop()``; survives a database that goes away and comes back."""
        log_event(logger, "worker_started", owner=self.owner)
        store_failures = 0
        while not self.stop_requested.is_set():
            self._beat()
            if self.sweeper is not None:
                self.sweeper.maybe_sweep(self.clock())
            try:
                done = self.run_once()
                store_failures = 0
            except Exception as error:
                store_failures += 1
                pause = min(STORE_ERROR_PAUSE_MAX, 2.0**store_failures)
                if isinstance(error, sa.exc.SQLAlchemyError):
                    log_event(
                        logger,
                        "worker_store_unavailable",
                        level=logging.WARNING,
                        pause=pause,
                        error_type=type(error).__name__,
                    )
                else:
                    logger.exception("worker_round_failed", extra={"fields": {"pause": pause}})
                self.stop_requested.wait(pause)
                continue
            if not done:
                self.stop_requested.wait(self.settings.poll_interval)
        if self.sweeper is not None:
            self.sweeper.stop()  # frees the sweep lock; the sweep resumes later, here or elsewhere
        log_event(logger, "worker_stopped", owner=self.owner)

    def _beat(self) -> None:
        """Touch the heartbeat file, so a liveness probe can tell a stuck worker from a busy one."""
        if self.settings.heartbeat_file:
            # A missing folder must not stop the work; the probe will say so.
            with contextlib.suppress(OSError):
                Path(self.settings.heartbeat_file).touch()

    def stop(self) -> None:
        self.stop_requested.set()

    def run_once(self) -> int:
        """Claim one batch and process it; returns how many jobs were processed."""
        claimed_at = self.clock()
        jobs = queue.claim(
            self.engine,
            owner=self.owner,
            limit=claim_size(self.settings.batch_size, self.job_seconds),
            lease_seconds=self.settings.lease_seconds,
            now=self.clock(),
        )
        # Jobs not started while most of the lease remains go back: past it, another worker may take them.
        deadline = claimed_at + self.settings.lease_seconds * LEASE_SAFETY
        for index, job in enumerate(jobs):
            if self.stop_requested.is_set() or self.clock() >= deadline:
                queue.release(self.engine, jobs[index:], owner=self.owner, now=self.clock())
                return index
            started = time.monotonic()
            self.process(job)
            self._time_job(time.monotonic() - started)
            self._beat()
        return len(jobs)

    def _time_job(self, seconds: float) -> None:
        if self.job_seconds is None:
            self.job_seconds = seconds
        else:
            self.job_seconds += JOB_TIME_SMOOTHING * (seconds - self.job_seconds)

    def run_until_idle(self, *, max_rounds: int = 1000) -> int:
        """Process due work until none is left (tests and one-shot runs); returns jobs processed."""
        total = 0
        for _ in range(max_rounds):
            done = self.run_once()
            if not done:
                break
            total += done
        return total

    def process(self, job: queue.Job) -> None:
        started = self.clock()
        if job.kind != "user":
            self._expand(job)
            return
        with bind(job_id=job.id, user_id=job.user_id, attempt=job.attempts):
            try:
                decision = self.reconciler.reconcile(job)
            except TemporaryError as error:
                self._retry(job, error, error.retry_after)
            except PermanentError as error:
                self._finish(job, self._failure(job, error), started)
            except Exception as error:
                # A bug or an unexpected answer: keep the work, log loudly, retry with backoff.
                logger.exception("job_crashed", extra={"fields": {}})
                self._retry(job, error, None)
            else:
                self._finish(job, decision, started)

    def _expand(self, job: queue.Job) -> None:
        """Enqueue every member of a department or group subject, then finish the subject's row."""
        expand = department_members if job.kind == "department" else group_members
        with bind(job_id=job.id, subject=f"{job.kind}:{job.user_id}", attempt=job.attempts):
            try:
                members = expand(self.reconciler.client, job.user_id)
            except TemporaryError as error:
                self._retry(job, error, error.retry_after)
                return
            except PermanentError as error:
                members = []
                log_event(logger, "expansion_failed", level=logging.WARNING, error=str(error))
            except Exception as error:
                # A bug or an unexpected answer: keep the subject, log loudly, retry with backoff.
                logger.exception("expansion_crashed", extra={"fields": {}})
                self._retry(job, error, None)
                return
            now = self.clock()
            with self.engine.begin() as connection:
                queue.enqueue(connection, job.userpool_id, members, reason=job.reason, now=now)
                queue.complete(connection, job, owner=self.owner, now=now)
            metrics.JOBS.labels(result="expanded").inc()
            log_event(logger, "subject_expanded", users=len(members))

    def _finish(self, job: queue.Job, decision: Decision, started: float | None = None) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            record_decision(connection, decision, now=now, started_at=started)
            deleted = queue.complete(connection, job, owner=self.owner, now=now)
        metrics.record_decision(decision.rules, decision.action)
        metrics.JOBS.labels(result="done" if deleted else "requeued").inc()
        log_event(
            logger,
            "decision_recorded",
            action=decision.action,
            rules=list(decision.rules),
            before=list(decision.before),
            after=list(decision.after),
            requeued=not deleted,
        )

    def _retry(self, job: queue.Job, error: Exception, retry_after: float | None) -> None:
        message = f"{type(error).__name__}: {error}"
        now = self.clock()
        is_too_old = now - job.first_enqueued_at >= self.settings.max_age
        if job.attempts >= self.settings.max_attempts or is_too_old:
            with self.engine.begin() as connection:
                parked = queue.dead_letter(connection, job, owner=self.owner, error=message, now=now)
                if parked and job.kind == "user":  # a department or group subject is not a user to report on
                    record_decision(connection, self._failure(job, error, dead=True), now=now)
            if not parked:
                log_event(logger, "job_restarted_by_new_delivery", level=logging.WARNING, error=message)
                return
            metrics.JOBS.labels(result="dead_lettered").inc()
            metrics.record_decision((), "failed")
            log_event(logger, "job_dead_lettered", level=logging.ERROR, error=message)
            return
        delay = retry_delay(job.attempts, self.settings, retry_after=retry_after)
        with self.engine.begin() as connection:
            queue.retry_later(connection, job, owner=self.owner, due_at=now + delay, error=message)
        metrics.JOBS.labels(result="retry_scheduled").inc()
        log_event(logger, "job_retry_scheduled", level=logging.WARNING, delay=round(delay, 2), error=message)

    def _failure(self, job: queue.Job, error: Exception, *, dead: bool = False) -> Decision:
        prefix = (
            f"dead-lettered after {job.attempts} attempt(s) over {self.clock() - job.first_enqueued_at:.0f} s: "
            if dead
            else "not retried: "
        )
        return Decision(
            userpool_id=job.userpool_id,
            user_id=job.user_id,
            trigger=job.reason,
            mode="audit" if self.reconciler.force_audit else "enforce",
            action="failed",
            rules=(),
            required=(),
            before=(),
            after=(),
            reason=prefix + str(error),
            attempt=job.attempts,
        )


def start_in_thread(worker: Worker) -> threading.Thread:
    """Run ``worker`` in a daemon thread (the single-node mode of ``serve``)."""
    thread = threading.Thread(target=worker.run, name="mfa-enforcer-worker", daemon=True)
    thread.start()
    return thread
