"""The worker: claim due work, reconcile each user, then finish, retry or dead-letter the row.

Runs as a thread inside the web process (single node) or as ``mfa-enforcer worker`` (its own process or
pod). Temporary errors go back on the queue with exponential backoff and jitter (at least GenAuth's
``Retry-After``); after ``max_attempts`` a row is dead-lettered with its last error. Permanent errors are
recorded as a ``failed`` decision and not retried. A stop request lets the current job finish and releases
the rest of the batch.

The retry budget is for failures of one user. When GenAuth fails for everyone, the process's circuit breaker
(``service.genauth.circuit``) opens: the worker stops claiming, a job that failed during the outage goes
back uncounted, and work resumes after a probe succeeds. While a job runs its lease is renewed
(``service.worker.leasing``), so no second worker takes a user still being reconciled. A write whose answer
was lost leaves an ``unknown`` decision; the retry's read confirms it (``confirm_lost_write``).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from service import metrics
from service.background import backoff_delay
from service.enforcement.decisions import Decision, confirm_lost_write, with_last_known_status
from service.enforcement.errors import WriteOutcomeUnknownError
from service.enforcement.expansion import department_members, group_members
from service.enforcement.reconciling import Reconciler, Request
from service.enforcement.reverting import revert_user
from service.errors import PermanentError, TemporaryError
from service.genauth.client import Json
from service.logs import bind, log_event
from service.notices.scheduling import on_enforce_notices
from service.settings import WorkerSettings
from service.store import holds, outbox, queue, reverts, sweeps
from service.store.decisions import latest_decision, record_decision
from service.store.subjects import DEPARTMENT, PAGE, REVERT, Subject
from service.store.wakeup import Wakeup
from service.vocabulary import Action
from service.worker.leasing import LeaseKeeper
from service.worker.notifying import PeriodicNotify
from service.worker.pruning import PeriodicPrune
from service.worker.rollouts import PeriodicRollout
from service.worker.sweeping import PeriodicSweep, read_page

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
    delay = backoff_delay(attempt, settings.backoff_base, settings.backoff_max, rng=rng)
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
        pruner: PeriodicPrune | None = None,
        wakeup: Wakeup | None = None,
        recoverer: Callable[[float], None] | None = None,
        rollouts: PeriodicRollout | None = None,
        notifier: PeriodicNotify | None = None,
        user_notices: bool = False,
    ) -> None:
        self.engine = engine
        self.reconciler = reconciler
        self.settings = settings
        self.owner = owner or default_owner()
        self.clock = clock
        self.breaker = reconciler.client.breaker
        """The process's GenAuth circuit breaker (shared with its other workers), or None."""
        self.leases = LeaseKeeper(engine, owner=self.owner, lease_seconds=settings.lease_seconds, clock=clock)
        self.pruner = pruner
        """Prunes history every so often (ENFORCER_RETENTION_DAYS); one worker per process has one."""
        self.stop_requested = threading.Event()
        self.wakeup = wakeup
        """Rung when work is committed (service.store.wakeup), so an idle worker need not wait for its poll."""
        self.job_seconds: float | None = None
        """Running average of how long a job takes here (None until the first one)."""
        self.sweeper = sweeper
        """Starts a ``reconcile`` sweep every ENFORCER_RECONCILE_INTERVAL seconds; its pages are queue work."""
        self.recoverer = recoverer
        """Called with the time every round: gap recovery from GenAuth's delivery log, when it is due
        (``service.intake.recovery.PeriodicRecovery``, ENFORCER_RECOVER_INTERVAL); one worker per process has one."""
        self.rollouts = rollouts
        """Queues pending users when their rollout deadline comes or the policy changes; one per process."""
        self.notifier = notifier
        """Sends what the outbox holds every ENFORCER_NOTIFY_INTERVAL seconds, in its own thread while this worker
        runs; one worker per process has one."""
        self.user_notices = user_notices
        """Queue a rule's ``notify_users.on_enforce`` notice with the decision that enforced it, in the same
        transaction (e-mail is configured; only for verified writes, ENFORCER_VERIFY_WRITES)."""

    def run(self) -> None:
        """Work until ``stop()``; survives a database that goes away and comes back."""
        log_event(logger, "worker_started", owner=self.owner)
        if self.wakeup is not None:
            self.wakeup.attach()
        if self.notifier is not None:
            self.notifier.start()
        try:
            self._loop()
        finally:
            if self.notifier is not None:
                self.notifier.stop()

    def _loop(self) -> None:
        store_failures = 0
        while not self.stop_requested.is_set():
            self._beat()
            if self.sweeper is not None:
                self.sweeper.maybe_sweep(self.clock())
            if self.pruner is not None:
                self.pruner.maybe_prune(self.clock())
            if self.recoverer is not None:
                self.recoverer(self.clock())
            if self.rollouts is not None:
                self.rollouts.maybe_queue(self.clock())
            self.reconciler.keep_fresh()  # the MFA settings above the users (service.enforcement.effective)
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
                self._idle()
        self.leases.stop()
        if self.wakeup is not None:
            self.wakeup.detach()
        log_event(logger, "worker_stopped", owner=self.owner)

    def _idle(self) -> None:
        """Nothing was due: wait for committed work to wake this worker, or for the poll interval."""
        if self.wakeup is None:
            self.stop_requested.wait(self.settings.poll_interval)
        else:
            self.wakeup.wait(self.settings.poll_interval, unless=self.stop_requested)

    def _beat(self) -> None:
        """Touch the heartbeat file, so a liveness probe can tell a stuck worker from a busy one."""
        if self.settings.heartbeat_file:
            # A missing folder must not stop the work; the probe will say so.
            with contextlib.suppress(OSError):
                Path(self.settings.heartbeat_file).touch()

    def stop(self) -> None:
        self.stop_requested.set()
        if self.wakeup is not None:
            self.wakeup.interrupt()

    def run_once(self) -> int:
        """Claim one batch and process it; returns how many jobs were processed."""
        limit = claim_size(self.settings.batch_size, self.job_seconds)
        allowed = self.breaker.claim_limit(self.clock()) if self.breaker is not None else None
        if allowed == 0:
            return 0  # GenAuth is down for everyone: the rows wait, their attempts untouched
        claimed_at = self.clock()
        jobs = queue.claim(
            self.engine,
            owner=self.owner,
            limit=limit if allowed is None else min(limit, allowed),
            lease_seconds=self.settings.lease_seconds,
            now=self.clock(),
        )
        if allowed is not None and not jobs:
            assert self.breaker is not None
            self.breaker.probe_unused()
        # Jobs not started while most of the lease remains go back: past it, another worker may take them.
        deadline = claimed_at + self.settings.lease_seconds * LEASE_SAFETY
        for index, job in enumerate(jobs):
            is_outage = self.breaker is not None and self.breaker.is_open() and allowed is None
            if self.stop_requested.is_set() or self.clock() >= deadline or is_outage:
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
        with self.leases.holding(job):
            self._process(job)

    def _process(self, job: queue.Job) -> None:
        started = self.clock()
        if job.subject.kind == PAGE:
            self._sweep_page(job)
            return
        if job.subject.kind == REVERT:
            self._revert(job, started)
            return
        if not job.subject.is_user:
            self._expand(job)
            return
        with bind(job_id=job.id, user_id=job.subject.id, attempt=job.attempts):
            attempt = self._attempt(job, _request(job))
            if attempt.error is not None:
                self._retry(job, attempt.error, attempt.retry_after, decision=attempt.decision)
            else:
                assert attempt.decision is not None
                self._finish(job, attempt.decision, started)

    def _attempt(
        self,
        job: queue.Job,
        request: Request,
        *,
        user: Json | None = None,
        run: Callable[[], Decision] | None = None,
    ) -> Attempt:
        """Reconcile one user (a user row's, or one of a sweep page's), or ``run`` (a revert), and sort out how
        it ended, the one way all need: a decision to record, an error to retry the user for, or both (a write
        whose answer was lost). A permanent error is a ``failed`` decision; a bug or an unexpected answer is
        logged loudly and retried with backoff."""
        try:
            return Attempt(run() if run is not None else self.reconciler.reconcile(request, user=user))
        except WriteOutcomeUnknownError as error:
            return Attempt(error.decision, error, error.retry_after)
        except TemporaryError as error:
            return Attempt(None, error, error.retry_after)
        except PermanentError as error:
            return Attempt(self._failure(job, error, user_id=request.user_id))
        except Exception as error:
            logger.exception("job_crashed", extra={"fields": {}})
            return Attempt(None, error)

    def _revert(self, job: queue.Job, started: float) -> None:
        """Undo the user's writes an operator's revert claimed (``service.enforcement.reverting``)."""
        with bind(job_id=job.id, user_id=job.subject.id, attempt=job.attempts):
            claimed = reverts.pending(self.engine, job.userpool_id, job.subject.id)
            if not claimed:  # another worker, or an earlier attempt, settled them
                with self.engine.begin() as connection:
                    queue.complete(connection, job, owner=self.owner, now=self.clock())
                return
            request = _request(job)
            attempt = self._attempt(job, request, run=lambda: revert_user(self.reconciler, request, claimed))
            if attempt.error is not None:
                self._retry(job, attempt.error, attempt.retry_after, decision=attempt.decision)
                return
            assert attempt.decision is not None
            self._finish(job, attempt.decision, started, reverting=[write.decision_id for write in claimed])

    def _expand(self, job: queue.Job) -> None:
        """Enqueue every member of a department or group subject, then finish the subject's row."""
        expand = department_members if job.subject.kind == DEPARTMENT else group_members
        with bind(job_id=job.id, subject=job.subject.encode(), attempt=job.attempts):
            try:
                members = expand(self.reconciler.client, job.subject.id)
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
                queue.enqueue(connection, job.userpool_id, map(Subject.user, members), reason=job.reason, now=now)
                queue.complete(connection, job, owner=self.owner, now=now)
            metrics.JOBS.labels(result="expanded").inc()
            log_event(logger, "subject_expanded", users=len(members))

    def _sweep_page(self, job: queue.Job) -> None:
        """Read a sweep's page (the next goes on the queue) and reconcile its users from the listing's records,
        recording each user's decision as soon as it is made, so a worker killed mid-page leaves no write
        without its decision (and the page, read again after its lease, skips the users decided: the sweep has
        seen them). The page's counts and the row's completion are one transaction at the end. A user that
        fails for a temporary reason goes on the queue as an ordinary user row (its own retries), and so do the
        users not reached yet when the worker is asked to stop or GenAuth fails for everyone."""
        with bind(job_id=job.id, subject=job.subject.encode(), attempt=job.attempts):
            try:
                page = read_page(self.engine, self.reconciler, job, now=self.clock())
            except TemporaryError as error:
                self._retry(job, error, error.retry_after)
                return
            except Exception as error:
                logger.exception("sweep_page_crashed", extra={"fields": {}})
                self._retry(job, error, None)
                return
            users = [] if page is None else page.users
            decided = 0
            again: list[str] = []
            for index, (user_id, record) in enumerate(users):
                if self.stop_requested.is_set() or (self.breaker is not None and self.breaker.is_open()):
                    again.extend(user_id for user_id, _ in users[index:])
                    break
                started = self.clock()
                with bind(user_id=user_id):
                    attempt = self._attempt(
                        job, Request(job.userpool_id, user_id, job.reason, job.attempts), user=record
                    )
                if attempt.decision is not None:
                    with self.engine.begin() as connection:
                        decision = self._record(connection, job, attempt.decision, started=started, now=self.clock())
                    metrics.record_decision(decision.rules, decision.action)
                    decided += 1
                if attempt.error is not None:
                    again.append(user_id)
            now = self.clock()
            finished = None
            with self.engine.begin() as connection:
                queue.enqueue(connection, job.userpool_id, map(Subject.user, again), reason=job.reason, now=now)
                queue.complete(connection, job, owner=self.owner, now=now)
                if page is not None:
                    finished = sweeps.record_page(
                        connection,
                        page.sweep_id,
                        page.listing,
                        total=page.total,
                        listed=page.listed,
                        in_scope=len(page.users),
                        rule_counts=page.rule_counts,
                        now=now,
                    )
            metrics.JOBS.labels(result="swept").inc()
            log_event(logger, "sweep_page_done", decided=decided, requeued=len(again))
            if finished is not None:
                log_event(logger, "sweep_finished", sweep_id=finished.id, in_scope=finished.in_scope)

    def _record(
        self,
        connection: sa.Connection,
        job: queue.Job,
        decision: Decision,
        *,
        started: float | None,
        now: float,
        reverting: list[int] | None = None,
    ) -> Decision:
        decision = _settled(connection, job.userpool_id, decision)
        record_decision(connection, decision, now=now, started_at=started)
        if decision.action != Action.HELD:  # the user's hold, if any, is over (service.store.holds)
            holds.clear(connection, decision.userpool_id, decision.user_id, revert=reverting is not None)
            if reverting is not None:  # a held revert stays claimed, for its release or the resume
                _settle_revert(connection, decision, reverting, now=now)
        if self.user_notices and decision.action == Action.ENFORCED and self.reconciler.verify_writes:
            # GenAuth read the factors back: tell the user (the notify round sends it, never this job)
            today = datetime.fromtimestamp(now, UTC).date()
            outbox.add(connection, on_enforce_notices(decision, self.reconciler.get_policy(), today=today), now=now)
        return decision

    def _finish(
        self, job: queue.Job, decision: Decision, started: float | None = None, *, reverting: list[int] | None = None
    ) -> None:
        now = self.clock()
        with self.engine.begin() as connection:
            decision = self._record(connection, job, decision, started=started, now=now, reverting=reverting)
            deleted = queue.complete(connection, job, owner=self.owner, now=now)
        metrics.record_decision(decision.rules, decision.action)
        metrics.JOBS.labels(result="done" if deleted else "requeued").inc()
        log_event(
            logger,
            "decision_recorded",
            action=decision.action,
            rules=list(decision.rules),
            before=None if decision.before is None else list(decision.before),
            after=None if decision.after is None else list(decision.after),
            requeued=not deleted,
        )

    def _retry(
        self, job: queue.Job, error: Exception, retry_after: float | None, *, decision: Decision | None = None
    ) -> None:
        message = f"{type(error).__name__}: {error}"
        now = self.clock()
        if decision is not None:
            with self.engine.begin() as connection:
                record_decision(connection, decision, now=now)
            metrics.record_decision(decision.rules, decision.action)
        if self.breaker is not None and self.breaker.is_open() and isinstance(error, TemporaryError):
            # GenAuth is failing for everyone: this attempt says nothing about the user; it is not counted.
            queue.release(self.engine, [job], owner=self.owner, now=now)
            metrics.JOBS.labels(result="paused").inc()
            log_event(logger, "job_paused_genauth_down", level=logging.WARNING, error=message)
            return
        is_too_old = now - job.first_enqueued_at >= self.settings.max_age
        if job.attempts >= self.settings.max_attempts or is_too_old:
            with self.engine.begin() as connection:
                parked = queue.dead_letter(connection, job, owner=self.owner, error=message, now=now)
                if parked and job.subject.is_user:  # a department, group or page is not a user to report on
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

    def _failure(self, job: queue.Job, error: Exception, *, dead: bool = False, user_id: str | None = None) -> Decision:
        prefix = (
            f"dead-lettered after {job.attempts} attempt(s) over {self.clock() - job.first_enqueued_at:.0f} s: "
            if dead
            else "not retried: "
        )
        return Decision(
            userpool_id=job.userpool_id,
            user_id=user_id or job.subject.id,
            trigger=job.reason,
            mode="audit" if self.reconciler.force_audit else "enforce",
            action="failed",
            rules=(),
            required=(),
            before=None,
            after=None,
            reason=prefix + str(error),
            attempt=job.attempts,
        )


@dataclass(frozen=True)
class Attempt:
    """How reconciling one user ended (``Worker._attempt``)."""

    decision: Decision | None
    """To record now (None: nothing was decided)."""
    error: Exception | None = None
    """Why the user must be tried again (None: done)."""
    retry_after: float | None = None
    """GenAuth's advice on when (``Retry-After``)."""


def _settled(connection: sa.Connection, userpool_id: str, decision: Decision) -> Decision:
    """The decision as the trail should show it, given the user's previous one: a removal keeps the last known
    status; a compliant read after a write whose answer was lost says the service enforced it."""
    if decision.action != "removed" and (decision.action != "none" or decision.after is None):
        return decision
    previous = latest_decision(connection, userpool_id, decision.user_id, into=Decision)
    if decision.action == "removed":
        return with_last_known_status(decision, previous)
    return confirm_lost_write(decision, previous)


def _settle_revert(connection: sa.Connection, decision: Decision, claimed: list[int], *, now: float) -> None:
    """The claimed writes of a revert are done with: undone, or left (protected, gone, changed since)."""
    changes = decision.changes or {}
    if decision.action == Action.REVERTED and changes.get("undone"):
        reverts.settle(connection, claimed, state=reverts.REVERTED, left_alone=changes.get("left", ()), now=now)
    else:
        why = changes.get("left") or [decision.reason]
        reverts.settle(connection, claimed, state=reverts.LEFT, left_alone=why, now=now)


def _request(job: queue.Job) -> Request:
    """What the reconciler needs of a claimed user row."""
    return Request(job.userpool_id, job.subject.id, job.reason, job.attempts, enqueued_at=job.first_enqueued_at)


def start_in_thread(worker: Worker) -> threading.Thread:
    """Run ``worker`` in a daemon thread (the single-node mode of ``serve``)."""
    thread = threading.Thread(target=worker.run, name="mfa-enforcer-worker", daemon=True)
    thread.start()
    return thread
