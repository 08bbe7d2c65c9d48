"""Whether GenAuth will actually challenge a user for the factors enforcement relies on (docs/architecture.md,
principle 13): the pool's enabled factors and, for a rule that names its applications (``apps``), each
application's own MFA settings.

``set-mfa-status`` stores a user's trigger data; GenAuth asks for a factor at sign-in only if the layer above
enables it too (docs/genauth.md §5.3): the pool (``get-global-mfa-settings``), or an application that
customises its security rules (``customSecurityEnabled``), which then has its own factors. The service only
reads these layers and says what to switch on; it never changes them.

``MfaLayers`` caches, per process, the pool's factors and each named application's ``customSecurityEnabled``,
like the organisation tree (``service.enforcement.organisation``): loaded on first use, again when older
than ``LAYERS_TTL``, and when the ``application:mfa:enabled|disabled`` events recorded in the database moved
(``events``, read at most once per ``CHECK_INTERVAL``: one indexed read, no GenAuth call). The calls are
counted in ``calls``. After every load, ``on_change`` gets a test of recorded gaps (``Settled``): the
composition root queues every user whose latest decision has a gap the settings as now read may have
settled (a pool factor now enabled; an app whose settings changed, or for which an event arrived), so
switching a factor on clears the warning without a restart (level-triggered). The first load of a process
counts every app gap as possibly settled: it cannot know what the process before it saw.

An application that customises its security has no readable factor list; ``get-mfa-trigger-data`` (per user)
is the one app-level read, and the emulator narrows its ``applicationMfa`` to the factors the app
challenges (§5.3.2: whether GenAuth does is not documented). So, for such an app, a factor the user has
enabled (``get-mfa-status``) that its trigger data lacks is "app X does not enable SMS"; a factor not
enabled for the user yet cannot be judged in the app. Apps that use the pool's settings cost no per-user
call, and rules without ``apps`` none at all.

``gaps`` is pure: from the matching rules, their outcomes and what was read, the required factors that are
not effective, each with why and what to switch on (``Gap``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.enforcement.merging import enabled_factors
from service.genauth import security
from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import GenAuthRefusedError
from service.logs import log_event
from service.policy import Outcome, RuleResult
from service.vocabulary import OutcomeKind

logger = logging.getLogger(__name__)

LAYERS_TTL = 300.0
"""Seconds the pool's factors and the apps' settings are used before they are read again."""
CHECK_INTERVAL = 2.0
"""Seconds between two reads of the recorded ``application:mfa:*`` events."""
SETTINGS_EVENTS = ("application:mfa:enabled", "application:mfa:disabled")
"""The webhook events that say an MFA setting above the users changed (docs/genauth.md §1.7, §5.3.2)."""
POOL_CONSOLE = "Security Settings → Multi-factor Authentication"


@dataclass(frozen=True)
class Gap:
    """A required factor GenAuth will not challenge the user for, why, and what the admin must switch on."""

    factor: str
    rules: tuple[str, ...]
    why: str
    fix: str
    app: str | None = None
    """The application the gap is in; None: the pool."""

    def as_json(self) -> dict[str, Any]:
        return {"factor": self.factor, "rules": list(self.rules), "app": self.app, "why": self.why, "fix": self.fix}


Settled = Callable[[Mapping[str, Any]], bool]
"""Whether a recorded gap (``Gap.as_json``) may no longer hold, given the settings just read."""


def settled_by(layers: Layers, previous: Layers | None, *, events_moved: bool) -> Settled:
    """The test of recorded gaps after a load: a pool gap is settled once the pool enables its factor, an app
    gap when the app's settings may have changed (an event, a different ``customSecurityEnabled``, or a first
    load that cannot tell)."""

    def settled(gap: Mapping[str, Any]) -> bool:
        app = gap.get("app")
        if app is None:
            return layers.pool is not None and gap.get("factor") in layers.pool
        if events_moved or previous is None:
            return True
        return previous.customises.get(app) != layers.customises.get(app) or (
            layers.customises.get(app) is False and layers.pool != previous.pool
        )

    return settled


@dataclass(frozen=True)
class Layers:
    """The pool's and the applications' MFA settings as last read."""

    pool: frozenset[str] | None
    """The pool's enabled factors; None when they could not be read (``pool_problem`` says why)."""
    pool_problem: str | None = None
    customises: Mapping[str, bool | str] = field(default_factory=dict)
    """App id -> whether it customises its security; a string when it could not be read (why)."""


class MfaLayers:
    """The MFA settings above the users, loaded on demand and shared by a process's workers."""

    def __init__(
        self,
        *,
        ttl: float = LAYERS_TTL,
        clock: Callable[[], float] = time.monotonic,
        events: Callable[[], int] | None = None,
        check_interval: float = CHECK_INTERVAL,
        on_change: Callable[[Settled], None] | None = None,
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._events = events
        """The id of the last recorded ``application:mfa:*`` event (``service.store.reporting``); None: no database."""
        self.check_interval = check_interval
        self.on_change = on_change
        self._lock = threading.Lock()
        self._layers: Layers | None = None
        self._loaded_at = -math.inf
        self._checked_at = -math.inf
        self._seen_event: int | None = None
        self._stale = False
        self.loads = 0
        """Times the settings were read, for tests and benchmarks."""
        self.calls = 0
        """GenAuth calls those reads made."""

    def invalidate(self) -> None:
        """The settings as read are out of date: the next use reads them again."""
        with self._lock:
            self._stale = True

    def current(self, client: GenAuthClient, apps: Iterable[str] = ()) -> Layers:
        """The settings, read first if missing, out of date, or missing one of ``apps``."""
        wanted = set(apps)
        settled: Settled | None = None
        with self._lock:
            layers = self._layers
            if layers is None or self._is_stale() or not wanted <= set(layers.customises):
                known = set(layers.customises) if layers is not None else set()
                layers, settled = self._load(client, known | wanted)
        if settled is not None and self.on_change is not None:
            try:
                self.on_change(settled)
            except Exception as error:  # the TTL and the next change try again; enforcing must go on
                log_event(logger, "mfa_settings_requeue_failed", level=logging.WARNING, error_type=type(error).__name__)
        return layers

    def _is_stale(self) -> bool:
        now = self._clock()
        if self._stale or now - self._loaded_at >= self.ttl:
            return True
        if self._events is None or now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        seen = self._read_events()
        return seen is not None and seen != self._seen_event

    def _read_events(self) -> int | None:
        if self._events is None:
            return None
        try:
            return self._events()
        except Exception as error:  # the database is the worker's to report; the TTL still bounds the age
            log_event(logger, "mfa_settings_events_unread", level=logging.WARNING, error_type=type(error).__name__)
            return None

    def _load(self, client: GenAuthClient, apps: set[str]) -> tuple[Layers, Settled | None]:
        before, previous, seen_before = client.calls, self._layers, self._seen_event
        seen = self._read_events()  # before reading GenAuth: an event recorded meanwhile is seen next time
        names = sorted(apps)
        futures = client.concurrently(lambda: security.pool_factors(client), *(_customises(client, a) for a in names))
        pool: frozenset[str] | None = None
        problem = None
        try:
            pool = futures[0].result()
            if pool is None:
                problem = "GenAuth answered get-global-mfa-settings without an enabledFactors list"
        except GenAuthRefusedError as error:  # the key may not read security settings: say so, never "effective"
            problem = str(error)
        customises = {name: future.result() for name, future in zip(names, futures[1:], strict=True)}
        layers = Layers(pool=pool, pool_problem=problem, customises=customises)
        self._layers, self._loaded_at, self._checked_at, self._seen_event = layers, self._clock(), self._clock(), seen
        self._stale = False
        self.loads += 1
        self.calls += client.calls - before
        moved = previous is not None and seen != seen_before
        changed = previous is None or moved or _differs(previous, layers)
        log_event(
            logger,
            "mfa_settings_loaded",
            pool=sorted(pool) if pool is not None else None,
            apps=len(names),
            calls=client.calls - before,
            changed=changed,
        )
        return layers, settled_by(layers, previous, events_moved=moved) if changed else None


def _customises(client: GenAuthClient, app_id: str) -> Callable[[], bool | str]:
    def read() -> bool | str:
        try:
            return security.application_customises_security(client, app_id)
        except GenAuthRefusedError as error:
            return f"GenAuth refused to read application {app_id}: {error}"

    return read


def _differs(previous: Layers, now: Layers) -> bool:
    if previous.pool != now.pool or previous.pool_problem != now.pool_problem:
        return True
    return any(previous.customises.get(app) != value for app, value in now.customises.items())


def custom_apps(matched: Iterable[RuleResult], layers: Layers) -> tuple[str, ...]:
    """The applications, named by rules that apply, whose own settings need the user's view
    (``get-mfa-trigger-data``)."""
    names = {app for result in matched if result.applies for app in result.apps}
    return tuple(sorted(app for app in names if layers.customises.get(app) is True))


def relied_on(result: RuleResult, outcome: Outcome) -> tuple[str, ...]:
    """The factors a rule's outcome counts on: each required factor, or the fallback standing in for it;
    none for an unsatisfiable factor (its own outcome says so) or a rule that does not apply."""
    if not result.applies or outcome.kind not in (OutcomeKind.COMPLIANT, OutcomeKind.ENFORCE):
        return ()
    factors = [outcome.fallbacks.get(factor, factor) for factor in result.require_mfa]
    return tuple(dict.fromkeys(f for f in factors if f not in outcome.unsatisfiable))


def gaps(
    matched: Iterable[RuleResult],
    outcomes: Mapping[str, Outcome],
    layers: Layers,
    *,
    enabled: Iterable[str],
    app_views: Mapping[str, Json | str],
    viewed: Iterable[str] | None = None,
) -> tuple[Gap, ...]:
    """Every factor the user has (``enabled``: after enforcement, or as it would leave them) that a rule that
    applies relies on and GenAuth will not challenge, merged by (factor, app, why). A factor the user does not
    have (an audit rule's, one not written) is not judged: the report counts such users by their outcome.
    ``app_views``: app id -> the user's trigger data as that app sees it (or why it could not be read), for the
    apps that customise their security; ``viewed``: the factors those views were read with (default
    ``enabled``): a factor not among them cannot be judged in such an app."""
    have = set(enabled)
    seen = have if viewed is None else set(viewed)
    found: dict[tuple[str, str | None, str], tuple[list[str], str]] = {}

    def add(factor: str, rule: str, why: str, fix: str, app: str | None = None) -> None:
        rules, _ = found.setdefault((factor, app, why), ([], fix))
        if rule not in rules:
            rules.append(rule)

    def pool_check(factor: str, rule: str) -> None:
        if layers.pool is None:
            add(
                factor,
                rule,
                f"the pool's MFA settings could not be read ({layers.pool_problem})",
                "let the access key read the pool's security settings (get-global-mfa-settings)",
            )
        elif factor not in layers.pool:
            why, fix = f"{factor} is not enabled for the pool", f"switch {factor} on for the pool ({POOL_CONSOLE})"
            add(factor, rule, why, fix)

    for result in matched:
        outcome = outcomes.get(result.rule)
        if outcome is None:
            continue
        for factor in relied_on(result, outcome):
            if factor not in have:
                continue
            if not result.apps:
                pool_check(factor, result.rule)
            for app in result.apps:
                state = layers.customises.get(app)
                if isinstance(state, str) or state is None:
                    add(
                        factor,
                        result.rule,
                        state or f"application {app} was not read",
                        f"check the application id {app} in rule {result.rule}",
                        app,
                    )
                elif not state:
                    pool_check(factor, result.rule)
                elif factor in seen:
                    view = app_views.get(app)
                    if isinstance(view, str) or view is None:
                        add(
                            factor,
                            result.rule,
                            view or f"application {app}'s view of the user was not read",
                            f"check the application id {app} in rule {result.rule}",
                            app,
                        )
                    elif factor not in enabled_factors(view):
                        add(
                            factor,
                            result.rule,
                            f"app {app} does not enable {factor}",
                            f"switch {factor} on in application {app}'s own MFA settings (or let it use the pool's)",
                            app,
                        )
    return tuple(Gap(factor, tuple(rules), why, fix, app) for (factor, app, why), (rules, fix) in found.items())


def read_views(client: GenAuthClient, user_id: str, apps: tuple[str, ...]) -> dict[str, Json | str]:
    """The user's trigger data as each app sees it (sent together), or why an app refused."""

    def read(app: str) -> Callable[[], Json | str]:
        def call() -> Json | str:
            try:
                return security.mfa_trigger_data(client, app, user_id)
            except GenAuthRefusedError as error:
                return f"GenAuth refused get-mfa-trigger-data for application {app}: {error}"

        return call

    if not apps:
        return {}
    return {app: future.result() for app, future in zip(apps, client.concurrently(*map(read, apps)), strict=True)}
