"""The composition root: what a process runs on, built from its settings in this one place.

The web app (``service.app.create_app``), the standalone worker and every command get their database engines,
policy source, GenAuth clients, reconciler and workers from ``Services``, so each is made one way. A process
has one GenAuth rate limiter, one circuit breaker and one cached organisation tree, and every client made
here shares them: the limit
(``GENAUTH_RATE_LIMIT``) holds per process whatever asks (workers, watches, explain, commands), and an outage
pauses every worker of the process (``service.genauth.circuit``). Nothing here reads the environment
(``service.settings`` does) or starts a thread except the watches asked for; the callers decide what runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

import sqlalchemy as sa

from service.enforcement.brakes import Brakes
from service.enforcement.deadlines import DeadlineBook
from service.enforcement.effective import SETTINGS_EVENTS, MfaLayers
from service.enforcement.organisation import OrganisationTree
from service.enforcement.reconciling import Reconciler
from service.enforcement.references import PolicyReferences, check_references
from service.errors import ServiceError
from service.genauth.access import GenAuthAccess
from service.genauth.circuit import CircuitBreaker
from service.genauth.client import GenAuthClient, ManagementToken
from service.genauth.throttling import RateLimiter
from service.intake.recovery import PeriodicRecovery, Recovery, recover_gap
from service.logs import log_event
from service.notices.sending import Notifier
from service.policy import Policy
from service.policy_source import PolicySource
from service.settings import Settings
from service.store.effectiveness import latest_event_id, requeue_not_effective
from service.store.engine import create_engine, create_read_engine
from service.store.keys import deployment_key
from service.store.migrating import ensure_schema
from service.store.organisation_changes import generation
from service.store.snapshots import PolicySnapshots
from service.store.wakeup import Wakeup
from service.worker.loop import Worker, default_owner
from service.worker.notifying import PeriodicNotify
from service.worker.pruning import PeriodicPrune
from service.worker.rollouts import PeriodicRollout
from service.worker.sweeping import PeriodicSweep

PolicyGetter = Callable[[], Policy]
logger = logging.getLogger(__name__)


def log_requeued(users: int) -> None:
    if users:
        log_event(logger, "not_effective_requeued", users=users)


def open_engine(database_url: str, *, migrate: bool = False) -> sa.Engine:
    """An engine on a current schema (upgraded first when ``migrate``, else ``ConfigurationError`` when old);
    commands that need only ``DATABASE_URL`` use it without the rest of the settings."""
    engine = create_engine(database_url)
    try:
        ensure_schema(engine, migrate=migrate)
    except BaseException:
        engine.dispose()
        raise
    return engine


class Services:
    """One process's collaborators. ``engine`` is None for a process that needs no database (``explain``)."""

    def __init__(self, settings: Settings, engine: sa.Engine | None = None, read_engine: sa.Engine | None = None):
        self.settings = settings
        self.engine = engine
        self.read_engine = read_engine or engine
        """For reads that need no transaction: on SQLite, connections that never wait for the writer."""
        genauth = settings.genauth
        self.limiter = RateLimiter(genauth.rate_limit, genauth.rate_burst)
        self.breaker = CircuitBreaker(genauth.circuit_failures, genauth.circuit_cooldown)
        self.token = ManagementToken()
        """The management token every client of the process uses (one fetch per process, not per worker)."""
        self.wakeup = Wakeup(engine)
        """Committed work wakes the process's idle workers (service.store.wakeup); the inbox rings it."""
        changes = None if self.read_engine is None else partial(generation, self.read_engine, settings.pool_key)
        self.tree = OrganisationTree(changes=changes)
        """The organisation tree every reconciler of the process looks departments up in (loaded on first use,
        and again when any process records an event that changed it)."""
        self.layers = self._mfa_layers(engine, self.read_engine)
        """The pool's and apps' MFA settings every reconciler of the process judges effectiveness by."""
        self.brakes = None if engine is None else Brakes(engine, settings.worker.change_budget)
        """The process's write gate: pause switch and change budget, shared by its reconcilers."""

    @classmethod
    def open(cls, settings: Settings, *, database: bool = True) -> Services:
        """The process's services; with ``database``, its engines on a current schema (upgraded first when
        ``ENFORCER_MIGRATE_ON_START``)."""
        if not database:
            return cls(settings)
        engine = open_engine(settings.database_url, migrate=settings.migrate_on_start)
        return cls(settings, engine, create_read_engine(settings.database_url, engine))

    @property
    def database(self) -> sa.Engine:
        assert self.engine is not None, "Services.open(settings, database=False) has no database"
        return self.engine

    def close(self) -> None:
        """Dispose of the engines (the caller closes the clients and stops the workers it made)."""
        for engine in {id(e): e for e in (self.read_engine, self.engine) if e is not None}.values():
            engine.dispose()

    def policy_source(self, *, strict: bool = False) -> PolicySource:
        """The policy file as a live source. ``strict``: a file that does not validate raises ``PolicyError``
        (commands); otherwise the last good copy saved in the database is used (the web app, the worker)."""
        snapshots = PolicySnapshots(self.engine, self.read_engine) if self.engine is not None else None
        return PolicySource(
            self.settings.policy_file,
            check_interval=self.settings.policy_check_interval,
            snapshots=snapshots,
            strict=strict,
            can_email=self.settings.notify.can_email,
        )

    def genauth(self) -> GenAuthClient:
        """A new GenAuth client on the process's rate limiter and circuit breaker; one pooled session, so one
        per thread. The caller closes it."""
        return GenAuthClient(self.settings.genauth, limiter=self.limiter, breaker=self.breaker, token=self.token)

    def reconciler(self, client: GenAuthClient, policy_getter: PolicyGetter) -> Reconciler:
        """The one enforcement path, in audit when ``ENFORCER_MODE=audit`` (``explain`` and the dry run use it
        with writing turned off)."""
        return Reconciler(
            client,
            policy_getter,
            force_audit=self.settings.is_audit,
            verify_writes=self.settings.worker.verify_writes,
            tree=self.tree,
            brakes=self.brakes,
            layers=self.layers,
            deadlines=DeadlineBook(self.engine) if self.engine is not None else None,
        )

    @staticmethod
    def _mfa_layers(engine: sa.Engine | None, read_engine: sa.Engine | None) -> MfaLayers:
        """Settings that learn of ``application:mfa:*`` events through the database and, when they change,
        queue the users whose latest decision is not effective (without a database: neither)."""
        if engine is None or read_engine is None:
            return MfaLayers()
        return MfaLayers(
            events=lambda: latest_event_id(read_engine, SETTINGS_EVENTS),
            on_change=lambda settled: log_requeued(requeue_not_effective(engine, settled, now=time.time())),
        )

    def explainer(self, policy_getter: PolicyGetter) -> Reconciler:
        """The reconciler of ``explain`` (the command and the admin API), with its own GenAuth client."""
        return self.reconciler(self.genauth(), policy_getter)

    def worker(self, policy_getter: PolicyGetter, *, owner: str | None = None, sweeps: bool = True) -> Worker:
        """A worker with its own GenAuth client. ``sweeps``: whether it runs the periodic reconcile sweeps and
        the history prune (one worker per process does)."""
        settings, engine = self.settings, self.database
        client = self.genauth()
        reconciler = self.reconciler(client, policy_getter)
        sweeper = pruner = recoverer = rollouts = notifier = None
        if sweeps:
            rollouts = PeriodicRollout(engine, policy_getter)
            interval = settings.worker.reconcile_interval
            sweeper = PeriodicSweep(engine, client, policy_getter, interval=interval, userpool_id=settings.pool_key)
            pruner = PeriodicPrune(engine, retention_days=settings.worker.retention_days)
            recoverer = self._recovery(client, policy_getter).maybe_recover
            if settings.notify.is_on:
                own = self.genauth()  # the notify thread's own: a client serves one thread
                notifier = PeriodicNotify(
                    self.notifier(policy_getter, own), interval=settings.notify.interval, client=own
                )
        return Worker(
            engine,
            reconciler,
            settings.worker,
            owner=owner,
            sweeper=sweeper,
            pruner=pruner,
            wakeup=self.wakeup,
            recoverer=recoverer,
            rollouts=rollouts,
            notifier=notifier,
            user_notices=settings.notify.can_email,
        )

    def notifier(self, policy_getter: PolicyGetter, client: GenAuthClient | None = None) -> Notifier:
        """The notification round (``mfa-enforcer notify``, the worker's): its digest checks the names the rules
        use with ``client`` (None: not checked)."""

        def unresolved() -> list[str]:
            if client is None:
                return []
            try:
                return [problem.message for problem in check_references(client, policy_getter())]
            except ServiceError as error:
                return [f"the names the rules use could not be checked: {error}"]

        return Notifier(
            self.database,
            self.settings.notify,
            policy_getter,
            change_budget=self.settings.worker.change_budget,
            unresolved=unresolved,
        )

    def _recovery(self, client: GenAuthClient, policy_getter: PolicyGetter) -> PeriodicRecovery:
        """Gap recovery from GenAuth's delivery log every ENFORCER_RECOVER_INTERVAL seconds, on the worker's
        client; what it records wakes the process's idle workers."""
        engine, wakeup = self.database, self.wakeup

        def run() -> Recovery:
            done = recover_gap(
                engine, client, settings=self.settings, digest_key=deployment_key(engine), policy=policy_getter()
            )
            if done.recovered and wakeup is not None:
                wakeup.committed()
            return done

        return PeriodicRecovery(run, interval=self.settings.worker.recover_interval)

    def workers(self, policy_getter: PolicyGetter) -> list[Worker]:
        """``ENFORCER_WORKER_THREADS`` workers: distinct lease owners, the sweeps and prune in the first only."""
        base = default_owner()
        count = self.settings.worker.threads
        return [
            self.worker(policy_getter, owner=base if count == 1 else f"{base}:{index}", sweeps=index == 0)
            for index in range(count)
        ]

    def watch_access(self) -> GenAuthAccess:
        """A started check that GenAuth takes the key, asked again as often as the breaker lets a probe through
        (``GENAUTH_CIRCUIT_COOLDOWN``) until it does."""
        return GenAuthAccess(self.genauth(), interval=self.settings.genauth.circuit_cooldown).start()

    def watch_references(self, policy_getter: PolicyGetter) -> PolicyReferences:
        """A started check that the departments, groups and roles the rules name exist in GenAuth."""
        interval = self.settings.policy_check_interval
        return PolicyReferences(self.genauth(), policy_getter, interval=interval).start()
