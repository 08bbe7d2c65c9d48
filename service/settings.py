"""Settings, read once from the environment into frozen values that are passed explicitly.

This is the one module that reads the environment (tests/unit/test_environment.py keeps it so): every
``load_*`` and ``*_from`` function reads ``os.environ`` unless given a mapping. Nothing reads configuration at
import time: the entry points (``create_app()``, the CLI, config/gunicorn.conf.py) call ``load_settings()``,
and tests build whatever ``Settings`` they need. A missing or malformed variable stops startup with one
``ConfigurationError`` that lists every problem at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from service.errors import ConfigurationError

T = TypeVar("T")

DEFAULT_GENAUTH_HOST = "https://api.genauth.ai"
DEFAULT_EVENTS_URL = "wss://events.genauth.ai"
EVENT_BRANDS = ("authing", "genauth")
DEFAULT_DATABASE_URL = "sqlite:///var/enforcer.db"
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server binds every interface unless HOST says otherwise
MAX_WORKER_THREADS = 32
MODES = ("enforce", "audit")
AUTH_MODES = ("token", "signature")
# Intake limits (docs/operations.md, "Limits of a delivery").
DEFAULT_MAX_BODY_BYTES = 256 * 1024
"""Over 100 times the largest single-user event the emulator builds (2.1 KB); room for a list event (group
members, deletions) of about 100 full user objects."""
DEFAULT_MAX_SUBJECTS = 1000
MAX_SUBJECTS_LIMIT = 10000
"""The most ENFORCER_MAX_SUBJECTS may be set to: also the bound on any one list a schema reads."""
BYTES_PER_VALUE = 8
"""A body may hold one JSON value per this many bytes of the body limit. GenAuth's densest events (lists of
user objects) need about one per 12 bytes; a flood of empty objects has one per 3."""
DEFAULT_REQUEST_READ_TIMEOUT = 10.0
BUDGET_WINDOWS = {"hour": 3600.0, "day": 86400.0}
"""The windows ``ENFORCER_CHANGE_BUDGET`` may slide over, in seconds."""


@dataclass(frozen=True)
class ChangeBudget:
    """At most ``count`` users written (or ``percent`` of the users in scope) per sliding ``window`` seconds;
    ``off`` when neither is set. One budget for the whole deployment (``service.store.budget``)."""

    count: int | None = None
    percent: float | None = None
    window: float = 3600.0

    @property
    def is_off(self) -> bool:
        return self.count is None and self.percent is None

    def limit(self, in_scope: int) -> int | None:
        """Writes allowed per window, given how many users are in scope (None: no limit)."""
        if self.count is not None:
            return self.count
        if self.percent is None:
            return None
        return max(1, int(in_scope * self.percent / 100))

    def __str__(self) -> str:
        if self.is_off:
            return "off"
        unit = next(name for name, seconds in BUDGET_WINDOWS.items() if seconds == self.window)
        amount = str(self.count) if self.count is not None else f"{self.percent:g}%"
        return f"{amount}/{unit}"


def parse_change_budget(raw: str) -> ChangeBudget:
    """``N/hour``, ``N/day``, ``P%/hour``, ``P%/day`` or ``off``; ValueError otherwise."""
    text = raw.strip().lower()
    if text == "off":
        return ChangeBudget()
    amount, slash, unit = text.partition("/")
    if not slash or unit.strip() not in BUDGET_WINDOWS:
        raise ValueError(raw)
    amount, window = amount.strip(), BUDGET_WINDOWS[unit.strip()]
    if amount.endswith("%"):
        percent = float(amount[:-1])
        if not 0 < percent <= 100:
            raise ValueError(raw)
        return ChangeBudget(percent=percent, window=window)
    count = int(amount)
    if count < 1:
        raise ValueError(raw)
    return ChangeBudget(count=count, window=window)


DEFAULT_CHANGE_BUDGET = ChangeBudget(count=500, window=3600.0)


@dataclass(frozen=True)
class GenAuthSettings:
    """How to reach the GenAuth management API."""

    host: str = DEFAULT_GENAUTH_HOST
    """Base URL of the management API (``https://`` or ``http://``; private deployments set their own)."""
    access_key_id: str = ""
    """The user-pool id, or a collaborator administrator's access key id; without it ``make run`` starts the sandbox
    (``serve`` never does). What each process does when GenAuth refuses it at start: docs/operations.md, "Command
    reference"."""
    access_key_secret: str = field(default="", repr=False)
    """The matching secret; never logged."""
    auth: str = "token"
    """How each call proves the key: ``token`` fetches a management token (``get-management-token``), sends it on
    every call and renews it before it expires; ``signature`` signs every call with the secret instead (HMAC-SHA1,
    as GenAuth's Java and Node SDKs do: docs/genauth.md §5.1), so no token is fetched or kept. Signed calls carry
    the time: GenAuth refuses them when this machine's clock is too far from its own."""
    connect_timeout: float = 3.05
    """Seconds to wait for a connection to GenAuth."""
    read_timeout: float = 10.0
    """Seconds to wait for GenAuth's answer once connected."""
    token_refresh_margin: float = 300.0
    """Seconds before a management token expires at which it is renewed."""
    rate_limit: float = 20.0
    """Average GenAuth calls per second **per process** (0 turns pacing off): GenAuth sees up to the number of
    calling processes times this (docs/operations.md, "Scale"). A 429 halves the process's rate, which then grows
    back by 5% of this per second (``mfa_enforcer_genauth_rate``)."""
    rate_burst: int = 20
    """Calls one process may make at once before pacing starts."""
    circuit_failures: int = 5
    """GenAuth failures in a row, across all users, after which the process stops claiming work (0 turns the circuit
    breaker off); any answer from GenAuth (a 404 too) resets the count."""
    circuit_cooldown: float = 30.0
    """Seconds an open circuit waits before one job probes GenAuth (doubled per failed probe, up to 300); a web
    process whose start found GenAuth refusing the key or unreachable asks again this often."""


@dataclass(frozen=True)
class WebhookSettings:
    """How webhook deliveries are accepted."""

    secrets: tuple[str, ...] = field(default=(), repr=False)
    """The webhook request keys, separated by commas: any of them is accepted (several during a rotation), and
    ``webhooks subscribe`` sets the first in GenAuth. A key cannot contain a comma; ``openssl rand -hex 32`` makes a
    good one. Never logged."""
    userpool_id: str | None = None
    """When set, the pool check fails closed: a delivery that names another user pool (in ``x-authing-userpool-id``,
    ``x-genauth-userpool-id`` or anywhere in its body) gets 403 ``wrong_userpool``, and one that names no pool 403
    ``missing_userpool``, except the ``test`` event, accepted without a pool but not with another one. Also the pool
    id work rows are recorded under. Recommended; set it whenever the access key id is not the pool id."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest accepted request body, in bytes: 413 above it, once the secret is checked (without one, 401 before the
    body is read). It also bounds the JSON values a body may hold (docs/operations.md, "Limits of a delivery")."""
    admin_token: str = field(default="", repr=False)
    """Bearer token for the read-only admin endpoints under /api/; unset, every /api/ route answers 404. Keep it in
    the Secret, not in the ConfigMap."""
    max_subjects: int = DEFAULT_MAX_SUBJECTS
    """Most subjects (users, departments and groups together) one delivery may name; a delivery that names more is
    refused with 422 (``too_many_subjects``) and nothing is stored (a reconcile finds those users)."""
    request_read_timeout: float = DEFAULT_REQUEST_READ_TIMEOUT
    """Seconds a client has to send a whole request, headers and body, before it is answered 408; meanwhile it holds
    a connection, never a thread."""

    @property
    def max_values(self) -> int:
        """Most JSON values a body may hold (counted before parsing), in proportion to the body limit."""
        return max(1024, self.max_body_bytes // BYTES_PER_VALUE)


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker claims and retries work."""

    run_in_web: bool = True
    """Run worker threads (``ENFORCER_WORKER_THREADS``) inside each gunicorn process. Set ``false`` on web processes
    when separate ``worker`` processes drain the queue; ``mfa-enforcer worker`` ignores it."""
    poll_interval: float = 1.0
    """Seconds a worker waits before it looks again when no work was due."""
    batch_size: int = 5
    """Work rows claimed at once, at most; a worker whose recent jobs were slow claims fewer (docs/operations.md,
    "Scale")."""
    lease_seconds: float = 120.0
    """Seconds a claimed row stays hidden from other workers; a crashed worker's rows come back after it, a running
    job's lease is renewed (docs/operations.md, "Scale")."""
    max_attempts: int = 12
    """Attempts before a failing row is dead-lettered."""
    max_age: float = 86400.0
    """Seconds after a row's first delivery after which a failing row is dead-lettered, however many attempts it has
    had."""
    backoff_base: float = 2.0
    """Ceiling of the first retry delay, in seconds. The ceiling doubles with each attempt; the delay is a random
    value between half the ceiling and the ceiling, and at least GenAuth's ``Retry-After``."""
    backoff_max: float = 600.0
    """Largest retry delay, in seconds."""
    heartbeat_file: str = "/tmp/mfa-enforcer-worker.alive"  # noqa: S108 - /tmp is the writable volume in the image
    """File the worker touches every round and after every job; ``mfa-enforcer worker-alive`` (the worker pods'
    liveness probe) reads it."""
    reconcile_interval: float = 0.0
    """Seconds between sweeps of every user in scope that the worker runs itself, as an alternative to the CronJob;
    0 turns them off. One worker per process starts them; their pages are work rows any worker reads, and the
    database keeps one sweep at a time across processes."""
    recover_interval: float = 300.0
    """Seconds between reads of GenAuth's webhook delivery log that take in the deliveries the service missed (gap
    recovery, ``service.intake.recovery``); the first read is right after the process starts. 0 (or ``off``) turns
    it off. One worker per process runs it; a lease in the database keeps one read of a log at a time."""
    threads: int = 16
    """Workers per process, in the web process (with ``ENFORCER_RUN_WORKER``) and in ``mfa-enforcer worker``; each
    reconciles one user at a time, and they share the process's ``GENAUTH_RATE_LIMIT``. A delivery wakes an idle one
    at once; while idle, one worker per process polls. The default is sized for time to effect when GenAuth is slow
    (docs/operations.md, "Scale"): a job makes about five GenAuth calls, most of them one after another, so at 2 s per
    call it holds its worker about 10 s, and deliveries arriving at 1.6 per second keep 16 workers busy (arrival rate
    times job time). Fewer, and a burst queues behind running jobs while a naive in-request handler (gunicorn's 16
    threads) would be answering it. The rate limit is not the bound at that latency: 16 jobs of 5 calls per 10 s are
    8 calls per second, under the default 20; at low latency the limit, not the thread count, paces the calls. More
    threads pay only when GenAuth is slower still."""
    verify_writes: bool = True
    """Read every set-mfa-status back and check GenAuth kept it (one more read per write; docs/operations.md,
    "Writes and what GenAuth kept"); off, a write whose answer was lost is recorded as ``unknown`` until the next
    reconcile."""
    retention_days: float = 90.0
    """Days of event records and superseded decisions kept (each user's latest decision stays, so the report does
    not change); 0 keeps everything (docs/operations.md, "Back up and restore")."""
    change_budget: ChangeBudget = DEFAULT_CHANGE_BUDGET
    """Most users written to GenAuth (``set-mfa-status``) in a sliding hour or day, over the whole deployment
    (counted in the database, so every worker and pod shares it): ``N/hour``, ``N/day``, a share of the users
    in scope of the last sweep (``5%/hour``), or ``off``. A write beyond it is held, not made: the decision says
    ``held``, ``mfa-enforcer holds`` lists it, ``holds release`` lets it through outside the budget
    (docs/operations.md, "Brakes")."""


SMTP_SECURITY = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}
"""``ENFORCER_SMTP_URL`` schemes and how each talks to the server: in the clear, upgraded with STARTTLS, or TLS
from the first byte (port 465)."""
SMTP_DEFAULT_PORTS = {"plain": 25, "starttls": 587, "ssl": 465}
DEFAULT_NOTIFY_INTERVAL = 300.0


@dataclass(frozen=True)
class SmtpServer:
    """Where e-mail goes (``ENFORCER_SMTP_URL``); the password is never shown (``repr``) or logged."""

    host: str
    port: int
    security: str = "plain"
    """``plain``, ``starttls`` or ``ssl`` (``SMTP_SECURITY``)."""
    username: str = ""
    password: str = field(default="", repr=False)


def parse_smtp_url(raw: str) -> SmtpServer:
    """``smtp://host[:port]``, ``smtp+starttls://user:pass@host[:port]`` or ``smtps://user:pass@host[:port]``;
    ValueError (never quoting the URL, which may hold a password) otherwise."""
    parts = urlsplit(raw.strip())
    security = SMTP_SECURITY.get(parts.scheme.lower())
    if security is None:
        raise ValueError(f"its scheme is not one of {', '.join(f'{s}://' for s in SMTP_SECURITY)}")
    try:
        port = parts.port or SMTP_DEFAULT_PORTS[security]
    except ValueError as error:
        raise ValueError("its port is not a number from 1 to 65535") from error
    if not parts.hostname:
        raise ValueError("it names no host")
    return SmtpServer(
        host=parts.hostname,
        port=port,
        security=security,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


@dataclass(frozen=True)
class NotifySettings:
    """Where notices go (docs/operations.md, "Notifications"); with none of it set, nothing is sent."""

    webhook_url: str = field(default="", repr=False)
    """An http(s) URL that receives each admin notice as a JSON POST (its ``text``
    field is what a Slack- or Teams-style incoming webhook shows). Not shown or logged: such URLs hold a token."""
    smtp: SmtpServer | None = None
    """The SMTP server of every e-mail: ``smtp://host[:25]`` (in the clear), ``smtp+starttls://user:pass@host[:587]``
    or ``smtps://user:pass@host[:465]`` (TLS); the password is never shown. Unset: no e-mail."""
    sender: str = ""
    """The From address of every e-mail; required with ``ENFORCER_SMTP_URL``."""
    admins: tuple[str, ...] = ()
    """Comma-separated addresses that receive the daily admin digest by e-mail."""
    templates_dir: Path | None = None
    """A folder whose files replace the shipped templates of the same name
    (service/notices/templates/); None: the shipped ones."""
    interval: float = DEFAULT_NOTIFY_INTERVAL
    """Seconds between the worker's rounds of ``mfa-enforcer notify``."""
    timeout: float = 10.0
    """Seconds an SMTP server or the webhook may take to answer one notice before it is retried later."""

    @property
    def can_email(self) -> bool:
        """E-mail is configured: an SMTP server and a From address."""
        return self.smtp is not None and bool(self.sender)

    @property
    def is_on(self) -> bool:
        """Any channel is configured."""
        return bool(self.webhook_url) or self.can_email


def _notify_settings(read: _Reader) -> NotifySettings:
    webhook = read.text("ENFORCER_NOTIFY_WEBHOOK", "")
    if webhook and not webhook.startswith(("https://", "http://")):
        read.problems.append("ENFORCER_NOTIFY_WEBHOOK is not an http(s) URL")
    smtp = read.parsed("ENFORCER_SMTP_URL", None, parse_smtp_url, "an SMTP URL", secret=True)
    sender = read.required("ENFORCER_NOTIFY_FROM", "the From address of notices", smtp is not None)
    admins = tuple(a.strip() for a in read.text("ENFORCER_NOTIFY_ADMINS", "").split(",") if a.strip())
    if admins and smtp is None:
        read.problems.append("ENFORCER_NOTIFY_ADMINS needs ENFORCER_SMTP_URL (the digest is sent by e-mail)")
    for address in (*admins, *((sender,) if sender else ())):
        if "@" not in address or any(c.isspace() or c in "<>," for c in address):
            read.problems.append(f"{address!r} in ENFORCER_NOTIFY_FROM or ENFORCER_NOTIFY_ADMINS is not an address")
    return NotifySettings(
        webhook_url=webhook,
        smtp=smtp,
        sender=sender,
        admins=admins,
        templates_dir=read.parsed("ENFORCER_NOTIFY_TEMPLATES", None, _folder, "a folder"),
        interval=read.parsed("ENFORCER_NOTIFY_INTERVAL", DEFAULT_NOTIFY_INTERVAL, _positive_float, "seconds"),
    )


def _folder(raw: str) -> Path:
    if not Path(raw).is_dir():
        raise ValueError(raw)
    return Path(raw)


def notify_settings_from(environ: Mapping[str, str] | None = None) -> NotifySettings:
    """The notification variables alone (``policy check``: does a rule's ``notify_users`` have e-mail?);
    ``ConfigurationError`` lists their problems."""
    read = _Reader(environ)
    notify = _notify_settings(read)
    if read.problems:
        raise ConfigurationError("; ".join(read.problems))
    return notify


@dataclass(frozen=True)
class ListenSettings:
    """How ``mfa-enforcer listen`` takes events over GenAuth's event WebSocket instead of a webhook."""

    events_url: str = DEFAULT_EVENTS_URL
    """Base URL of GenAuth's event WebSocket (``wss://`` or ``ws://``); the SDKs disagree on the host
    (docs/genauth.md §5.2), so set the one your GenAuth deployment serves."""
    brand: str = "authing"
    """The scheme word of the subscription's ``authorization`` header: ``authing`` (the Authing Node and Java
    SDKs) or ``genauth`` (the GenAuth Python SDK; its Node SDK writes ``GenAuth``)."""
    backoff_base: float = 1.0
    """Ceiling of the first reconnect delay, in seconds; it doubles with each failed attempt, and the delay is a
    random value between half the ceiling and the ceiling."""
    backoff_max: float = 60.0
    """Largest reconnect delay, in seconds: the listener keeps trying at least this often, forever."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with."""

    genauth: GenAuthSettings
    webhook: WebhookSettings
    worker: WorkerSettings
    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, or PostgreSQL as
    ``postgresql+psycopg://user:password@host:5432/db`` (``postgresql://`` and ``postgres://``, as Procfile
    platforms hand it out, mean the same). Any other scheme stops startup. The image defaults to
    ``sqlite:////var/lib/mfa-enforcer/enforcer.db``."""
    policy_file: Path = Path("config/policies.yaml")
    """The policy rules (docs/policy.md); the image sets /app/config/policies.yaml, Kubernetes mounts it in /etc."""
    policy_check_interval: float = 5.0
    """Seconds between checks of the policy file for changes: a valid new file is loaded without a restart; an
    invalid one is ignored and the previous rules stay in force."""
    mode: str = "enforce"
    """``enforce``, or ``audit`` to record every decision and change nothing in GenAuth, whatever each rule's own
    ``mode`` says."""
    port: int = 8000
    """HTTP port of the web service (gunicorn from the Procfile, ``serve``); ``serve`` stops, naming it, when the
    port is in use."""
    host: str = DEFAULT_HOST
    """Address gunicorn and the worker's /metrics server bind to."""
    log_format: str = "console"
    """``console`` for readable lines, or ``json`` for one object per line (the Kubernetes base sets it); gunicorn's
    own lines and its access log use the same format."""
    log_level: str = "INFO"
    """Lowest level logged."""
    migrate_on_start: bool = False
    """Upgrade the schema at startup instead of refusing to start on an old one. Only where a single process tree
    owns the database (the single-node overlay sets it); ``worker`` and ``reconcile`` honour it too."""
    metrics_port: int = 0
    """Port on which ``mfa-enforcer worker`` serves Prometheus /metrics, on ``HOST`` (``0``: none; the Kubernetes
    worker pods set 9102). The web processes always serve /metrics on ``PORT``. A port in use stops the worker,
    naming this variable."""
    metrics_dir: str = ""
    """Folder where gunicorn's processes share their metric samples, which /metrics merges; leave it unset
    (config/gunicorn.conf.py then makes a new temporary one at each start). Empty: this process's only."""
    web_processes: int = 2
    """gunicorn processes (config/gunicorn.conf.py); with ``run_in_web`` each one also runs the workers."""
    web_threads: int = 8
    """Threads per gunicorn process: the requests one process handles at once (they share commits)."""
    listen: ListenSettings = field(default_factory=ListenSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    """The admin digest and user notices: channels, templates, how often (``NotifySettings``)."""

    @property
    def is_audit(self) -> bool:
        return self.mode == "audit"

    @property
    def pool_key(self) -> str:
        """The user-pool id every work row is recorded under: GENAUTH_USERPOOL_ID, or "" when unset.

        One deployment serves one pool, so webhooks, sweeps, replay and explain must all use this same key
        for a user's deliveries to coalesce into one row.
        """
        return self.webhook.userpool_id or ""


class _Reader:
    """Reads typed values from an environment mapping, collecting every problem instead of stopping."""

    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self.environ = os.environ if environ is None else environ
        self.problems: list[str] = []

    def text(self, name: str, default: str) -> str:
        value = self.environ.get(name, "").strip()
        return value or default

    def required(self, name: str, why: str, is_needed: bool = True) -> str:
        value = self.environ.get(name, "").strip()
        if not value and is_needed:
            self.problems.append(f"{name} is not set ({why})")
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str, *, secret: bool = False) -> T:
        """The variable through ``parse``, or ``default`` when unset; a ``secret`` one (it may hold a password) is
        never repeated in the problem, which says why instead."""
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            self.problems.append(
                f"{name} is not {expected}: {error}" if secret else f"{name}={raw!r} is not {expected}"
            )
            return default

    def strong_secret(self, name: str, value: str) -> None:
        """A secret that anyone could guess stops startup: too short, or a placeholder this repository ships."""
        if value.casefold() in PLACEHOLDER_SECRETS:
            self.problems.append(
                f"{name} is a placeholder from config/example.env or deploy/k8s/secret.example.yaml: set a real "
                "secret (e.g. `openssl rand -hex 32`)"
            )
        elif len(value) < MIN_SECRET_LENGTH:
            self.problems.append(
                f"{name} is too short ({len(value)} characters; at least {MIN_SECRET_LENGTH}): "
                "use a long random value (e.g. `openssl rand -hex 32`)"
            )

    def database_url(self, name: str) -> str:
        """A database URL, with the PostgreSQL spellings Procfile platforms use made psycopg's; an unsupported
        scheme is a problem that names the supported ones (never the URL itself: it may hold a password)."""
        raw = self.text(name, DEFAULT_DATABASE_URL)
        try:
            return normalise_database_url(raw)
        except ValueError as error:
            self.problems.append(str(error))
            return DEFAULT_DATABASE_URL

    def url(self, name: str, default: str, schemes: tuple[str, ...], kind: str) -> str:
        """A base URL (without a trailing slash) whose scheme is one of ``schemes``; ``kind`` names them."""
        value = self.text(name, default).rstrip("/")
        if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
            self.problems.append(f"{name}={value!r} is not {kind} URL")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of {', '.join(choices)}")
            return default
        return value


MIN_SECRET_LENGTH = 16
PLACEHOLDER_SECRETS = frozenset(
    {
        # config/example.env and deploy/k8s/secret.example.yaml (tests/unit/test_settings.py keeps this in step)
        "replace-with-a-long-random-string",
        "replace-with-the-matching-secret",
        "replace-with-user-pool-id-or-access-key-id",
        "replace-with-user-pool-id",
        "replace-me",
        "change-me",
        # the fixed secret earlier sandboxes published in the README
        "sandbox-webhook-secret",
    }
)
"""Secret values published in this repository (compared ignoring case): never accepted as a real secret."""

DATABASE_SCHEMES = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
"""Accepted ``DATABASE_URL`` schemes and the SQLAlchemy driver each means (``postgres://`` is what Heroku-style
platforms hand out)."""


def normalise_database_url(raw: str) -> str:
    """``raw`` with its scheme made the driver's; ValueError naming the supported schemes when it has none."""
    scheme, separator, rest = raw.partition("://")
    driver = DATABASE_SCHEMES.get(scheme.lower()) if separator else None
    if driver is None:
        shown = f"the scheme {scheme!r}" if separator else "no scheme"
        raise ValueError(
            f"DATABASE_URL has {shown}, which is not supported: use sqlite:///path/to.db, or PostgreSQL as "
            "postgresql://, postgres:// or postgresql+psycopg://user:password@host:5432/db"
        )
    return f"{driver}://{rest}"


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """A parser of whole numbers from ``low`` to ``high`` (unbounded above when None)."""

    def parse(raw: str) -> int:
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise ValueError(raw)
        return value

    return parse


_positive_int = _whole(1)
_non_negative_int = _whole(0)
_subject_cap = _whole(1, MAX_SUBJECTS_LIMIT)
_worker_threads = _whole(1, MAX_WORKER_THREADS)
_port = _whole(1, 65535)


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(raw)
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError(raw)
    return value


def _seconds_or_off(raw: str) -> float:
    return 0.0 if raw.strip().lower() == "off" else _non_negative_float(raw)


def _port_or_off(raw: str) -> int:
    return 0 if raw == "0" else _port(raw)


ROLES = ("all", "web", "worker")


# -- what commands that need only part of the configuration read -------------------------------------------


def _only(read: _Reader, value: T) -> T:
    if read.problems:
        raise ConfigurationError("cannot start: " + "; ".join(read.problems))
    return value


def database_url_from(environ: Mapping[str, str] | None = None) -> str:
    """``DATABASE_URL`` alone (``db``, ``report``, ``replay``, ``dead-letters``), checked and normalised."""
    read = _Reader(environ)
    return _only(read, read.database_url("DATABASE_URL"))


def policy_file_from(environ: Mapping[str, str] | None = None) -> Path:
    """``POLICY_FILE`` alone."""
    return Path(_Reader(environ).text("POLICY_FILE", "config/policies.yaml"))


def is_audit_from(environ: Mapping[str, str] | None = None) -> bool:
    """``ENFORCER_MODE=audit`` alone, for commands that read no other setting (``revert``)."""
    return _Reader(environ).choice("ENFORCER_MODE", "enforce", MODES) == "audit"


def pool_key_from(environ: Mapping[str, str] | None = None) -> str:
    """``Settings.pool_key`` for commands that read no other GenAuth setting (``replay``)."""
    return _Reader(environ).text("GENAUTH_USERPOOL_ID", "")


def heartbeat_file_from(environ: Mapping[str, str] | None = None) -> Path:
    """``ENFORCER_HEARTBEAT_FILE`` alone (``worker-alive``)."""
    return Path(_Reader(environ).text("ENFORCER_HEARTBEAT_FILE", WorkerSettings().heartbeat_file))


def has_genauth_credentials(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``GENAUTH_ACCESS_KEY_ID`` and its secret are both set (a command may then ask GenAuth)."""
    read = _Reader(environ)
    return bool(read.text("GENAUTH_ACCESS_KEY_ID", "") and read.text("GENAUTH_ACCESS_KEY_SECRET", ""))


@dataclass(frozen=True)
class SandboxSettings:
    """Where ``mfa-enforcer sandbox`` listens (always on 127.0.0.1) and which rules it loads."""

    port: int = 8000
    """The service's port (``PORT``)."""
    emulator_port: int = 8081
    """The bundled GenAuth emulator's port (the sandbox listens on 127.0.0.1 only)."""
    policy_file: Path = Path("config/policies.yaml")
    """The policy rules the sandbox's service loads (the same file as production's by default)."""
    passed_on: tuple[tuple[str, str], ...] = ()
    """The service settings the sandbox takes from its environment (``ENFORCER_MODE``, ``LOG_FORMAT``,
    ``LOG_LEVEL``), as (name, value) pairs, checked when the sandbox loads its service's settings."""


SANDBOX_PASSED_ON = ("ENFORCER_MODE", "LOG_FORMAT", "LOG_LEVEL")


def load_sandbox_settings(environ: Mapping[str, str] | None = None) -> SandboxSettings:
    """The sandbox's few settings; everything else it sets itself (credentials, secrets, its own database)."""
    read = _Reader(environ)
    settings = SandboxSettings(
        port=read.parsed("PORT", 8000, _port, "a TCP port"),
        emulator_port=read.parsed("ENFORCER_SANDBOX_EMULATOR_PORT", 8081, _port, "a TCP port"),
        policy_file=Path(read.text("POLICY_FILE", "config/policies.yaml")),
        passed_on=tuple((name, read.environ[name]) for name in SANDBOX_PASSED_ON if name in read.environ),
    )
    return _only(read, settings)


def load_settings(environ: Mapping[str, str] | None = None, *, role: str = "all") -> Settings:
    """Read the production settings; raise ``ConfigurationError`` listing every missing or bad variable.

    ``role`` says what the process does, so it is asked only for the secrets it uses: ``web`` needs the webhook
    secret (and the GenAuth credentials only when it runs the worker thread), ``worker`` needs the GenAuth
    credentials, ``all`` needs both.
    """
    assert role in ROLES, role
    read = _Reader(environ)
    runs_worker = read.parsed("ENFORCER_RUN_WORKER", True, _boolean, "true or false")
    needs_genauth = role in ("all", "worker") or runs_worker
    needs_webhook = role in ("all", "web")
    genauth = GenAuthSettings(
        host=read.url("GENAUTH_HOST", DEFAULT_GENAUTH_HOST, ("https", "http"), "an http(s)"),
        access_key_id=read.required("GENAUTH_ACCESS_KEY_ID", "user-pool id or admin access key id", needs_genauth),
        access_key_secret=read.required("GENAUTH_ACCESS_KEY_SECRET", "the matching secret", needs_genauth),
        auth=read.choice("GENAUTH_AUTH", "token", AUTH_MODES),
        connect_timeout=read.parsed("GENAUTH_CONNECT_TIMEOUT", 3.05, _positive_float, "a positive number"),
        read_timeout=read.parsed("GENAUTH_READ_TIMEOUT", 10.0, _positive_float, "a positive number"),
        rate_limit=read.parsed("GENAUTH_RATE_LIMIT", 20.0, _non_negative_float, "a number of calls per second"),
        rate_burst=read.parsed("GENAUTH_RATE_BURST", 20, _positive_int, "a positive integer"),
        circuit_failures=read.parsed("GENAUTH_CIRCUIT_FAILURES", 5, _non_negative_int, "a number of failures"),
        circuit_cooldown=read.parsed("GENAUTH_CIRCUIT_COOLDOWN", 30.0, _positive_float, "seconds"),
    )
    secrets = tuple(
        s.strip()
        for s in read.required("GENAUTH_WEBHOOK_SECRET", "the webhook request key", needs_webhook).split(",")
        if s.strip()
    )
    for secret in secrets:
        read.strong_secret("GENAUTH_WEBHOOK_SECRET", secret)
    admin_token = read.text("ENFORCER_ADMIN_TOKEN", "")
    if admin_token:
        read.strong_secret("ENFORCER_ADMIN_TOKEN", admin_token)
    webhook = WebhookSettings(
        secrets=secrets,
        userpool_id=read.text("GENAUTH_USERPOOL_ID", "") or None,
        max_body_bytes=read.parsed(
            "ENFORCER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, _positive_int, "a positive integer"
        ),
        admin_token=admin_token,
        max_subjects=read.parsed(
            "ENFORCER_MAX_SUBJECTS", DEFAULT_MAX_SUBJECTS, _subject_cap, f"an integer from 1 to {MAX_SUBJECTS_LIMIT}"
        ),
        request_read_timeout=read.parsed(
            "ENFORCER_REQUEST_READ_TIMEOUT", DEFAULT_REQUEST_READ_TIMEOUT, _positive_float, "seconds"
        ),
    )
    defaults = WorkerSettings()
    worker = WorkerSettings(
        run_in_web=runs_worker,
        poll_interval=read.parsed("ENFORCER_POLL_INTERVAL", defaults.poll_interval, _positive_float, "seconds"),
        batch_size=read.parsed("ENFORCER_BATCH_SIZE", defaults.batch_size, _positive_int, "a positive integer"),
        lease_seconds=read.parsed("ENFORCER_LEASE_SECONDS", defaults.lease_seconds, _positive_float, "seconds"),
        max_attempts=read.parsed("ENFORCER_MAX_ATTEMPTS", defaults.max_attempts, _positive_int, "a positive integer"),
        max_age=read.parsed("ENFORCER_MAX_AGE", defaults.max_age, _positive_float, "seconds"),
        backoff_base=read.parsed("ENFORCER_BACKOFF_BASE", defaults.backoff_base, _positive_float, "seconds"),
        backoff_max=read.parsed("ENFORCER_BACKOFF_MAX", defaults.backoff_max, _positive_float, "seconds"),
        heartbeat_file=read.text("ENFORCER_HEARTBEAT_FILE", defaults.heartbeat_file),
        reconcile_interval=read.parsed("ENFORCER_RECONCILE_INTERVAL", 0.0, _non_negative_float, "seconds"),
        recover_interval=read.parsed(
            "ENFORCER_RECOVER_INTERVAL", defaults.recover_interval, _seconds_or_off, "seconds, or 0/off"
        ),
        threads=read.parsed("ENFORCER_WORKER_THREADS", defaults.threads, _worker_threads, "an integer from 1 to 32"),
        verify_writes=read.parsed("ENFORCER_VERIFY_WRITES", defaults.verify_writes, _boolean, "true or false"),
        retention_days=read.parsed(
            "ENFORCER_RETENTION_DAYS", defaults.retention_days, _non_negative_float, "a number of days (0: forever)"
        ),
        change_budget=read.parsed(
            "ENFORCER_CHANGE_BUDGET",
            defaults.change_budget,
            parse_change_budget,
            "a budget: N/hour, N/day, P%/hour, P%/day or off",
        ),
    )
    listen = ListenSettings(
        events_url=read.url("GENAUTH_EVENTS_URL", DEFAULT_EVENTS_URL, ("wss", "ws"), "a ws(s)"),
        brand=read.choice("GENAUTH_EVENTS_BRAND", "authing", EVENT_BRANDS),
        backoff_base=read.parsed("ENFORCER_LISTEN_BACKOFF_BASE", 1.0, _positive_float, "seconds"),
        backoff_max=read.parsed("ENFORCER_LISTEN_BACKOFF_MAX", 60.0, _positive_float, "seconds"),
    )
    settings = Settings(
        genauth=genauth,
        webhook=webhook,
        worker=worker,
        database_url=read.database_url("DATABASE_URL"),
        policy_file=Path(read.text("POLICY_FILE", "config/policies.yaml")),
        policy_check_interval=read.parsed("ENFORCER_POLICY_CHECK_INTERVAL", 5.0, _positive_float, "seconds"),
        mode=read.choice("ENFORCER_MODE", "enforce", MODES),
        port=read.parsed("PORT", 8000, _port, "a TCP port"),
        host=read.text("HOST", DEFAULT_HOST),
        log_format=read.choice("LOG_FORMAT", "console", ("console", "json")),
        log_level=read.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        metrics_port=read.parsed("ENFORCER_METRICS_PORT", 0, _port_or_off, "a TCP port, or 0 for none"),
        metrics_dir=read.text("PROMETHEUS_MULTIPROC_DIR", ""),
        web_processes=read.parsed("WEB_CONCURRENCY", 2, _positive_int, "a positive integer"),
        web_threads=read.parsed("GUNICORN_THREADS", 8, _positive_int, "a positive integer"),
        migrate_on_start=read.parsed("ENFORCER_MIGRATE_ON_START", False, _boolean, "true or false"),
        listen=listen,
        notify=_notify_settings(read),
    )
    if read.problems:
        lines = "\n".join(f"  - {problem}" for problem in read.problems)
        raise ConfigurationError(f"cannot start: the configuration has {len(read.problems)} problem(s):\n{lines}")
    return settings
