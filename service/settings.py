"""Settings, read once from the environment into frozen values that are passed explicitly.

Nothing reads configuration at import time: ``load_settings(os.environ)`` is called by the entry points
(``create_app()``, the CLI) and tests build whatever ``Settings`` they need. A missing or malformed variable
stops startup with one ``ConfigurationError`` that lists every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from service.errors import ConfigurationError

T = TypeVar("T")

DEFAULT_GENAUTH_HOST = "https://api.genauth.ai"
DEFAULT_DATABASE_URL = "sqlite:///var/enforcer.db"
MAX_WORKER_THREADS = 32
MODES = ("enforce", "audit")


@dataclass(frozen=True)
class GenAuthSettings:
    """How to reach the GenAuth management API."""

    host: str = DEFAULT_GENAUTH_HOST
    """Base URL of the management API, without a trailing slash."""
    access_key_id: str = ""
    """User-pool id or an admin access key id."""
    access_key_secret: str = field(default="", repr=False)
    """The matching secret; never logged."""
    connect_timeout: float = 3.05
    """Seconds to wait for a TCP connection."""
    read_timeout: float = 10.0
    """Seconds to wait for a response once connected."""
    token_refresh_margin: float = 300.0
    """Seconds before a management token expires at which it is renewed."""
    rate_limit: float = 20.0
    """Average GenAuth calls per second from one process (0 turns pacing off)."""
    rate_burst: int = 20
    """Calls one process may make at once before pacing starts."""


@dataclass(frozen=True)
class WebhookSettings:
    """How webhook deliveries are accepted."""

    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Accepted webhook request keys (several during rotation); never logged."""
    userpool_id: str | None = None
    """When set, deliveries for another user pool are refused with 403."""
    max_body_bytes: int = 1024 * 1024
    """Largest accepted request body, in bytes."""
    admin_token: str = field(default="", repr=False)
    """Bearer token for the /api/* admin endpoints; empty turns them off (404)."""


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker claims and retries work."""

    run_in_web: bool = True
    """Run the worker as a thread inside the web process (single node)."""
    poll_interval: float = 1.0
    """Seconds to wait for new work when the queue is empty."""
    batch_size: int = 5
    """Work rows claimed at once."""
    lease_seconds: float = 120.0
    """Seconds a claimed row stays invisible to other workers; a crashed worker's rows return after it."""
    max_attempts: int = 12
    """Attempts before a row is dead-lettered."""
    max_age: float = 86400.0
    """Seconds after its first delivery that a failing row is dead-lettered, whatever its attempts."""
    backoff_base: float = 2.0
    """Seconds of the first retry delay; doubled each attempt, with jitter."""
    backoff_max: float = 600.0
    """Upper bound of one retry delay, in seconds."""
    heartbeat_file: str = "/tmp/mfa-enforcer-worker.alive"  # noqa: S108 - /tmp is the writable volume in the image
    """File the worker touches every round and after every job; ``mfa-enforcer worker-alive`` reads it."""
    reconcile_interval: float = 0.0
    """Seconds between sweeps of every user in scope run by the worker itself; 0 turns them off."""
    threads: int = 1
    """Workers per process, each reconciling one user at a time; they share the process's GenAuth rate limit."""


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with."""

    genauth: GenAuthSettings
    webhook: WebhookSettings
    worker: WorkerSettings
    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL: sqlite:///… or postgresql+psycopg://…"""
    policy_file: Path = Path("config/policies.yaml")
    """The policy rules (YAML)."""
    policy_check_interval: float = 5.0
    """Seconds between checks of the policy file for changes (reloaded without a restart)."""
    mode: str = "enforce"
    """``enforce``, or ``audit`` to record decisions and change nothing whatever the rules say."""
    port: int = 8000
    """HTTP port of ``serve``."""
    log_format: str = "console"
    """``console`` (readable) or ``json`` (one object per line)."""
    log_level: str = "INFO"
    """Lowest level logged."""
    migrate_on_start: bool = False
    """Upgrade the schema at startup instead of refusing to start on an old one (single node only)."""
    metrics_port: int = 0
    """Port on which ``mfa-enforcer worker`` serves /metrics (0: none; the web service always serves it)."""

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

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str) -> str:
        value = self.environ.get(name, "").strip()
        return value or default

    def required(self, name: str, why: str, is_needed: bool = True) -> str:
        value = self.environ.get(name, "").strip()
        if not value and is_needed:
            self.problems.append(f"{name} is not set ({why})")
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        raw = self.environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not {expected}")
            return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            self.problems.append(f"{name}={value!r} is not one of {', '.join(choices)}")
            return default
        return value


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _worker_threads(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_WORKER_THREADS:
        raise ValueError(raw)
    return value


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


def _port_or_off(raw: str) -> int:
    return 0 if raw == "0" else _port(raw)


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(raw)
    return value


def is_sandbox(environ: Mapping[str, str]) -> bool:
    """True when no GenAuth credentials are configured: ``make run`` then starts the sandbox."""
    return not environ.get("GENAUTH_ACCESS_KEY_ID", "").strip()


ROLES = ("all", "web", "worker")


def load_settings(environ: Mapping[str, str], *, role: str = "all") -> Settings:
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
    host = read.text("GENAUTH_HOST", DEFAULT_GENAUTH_HOST).rstrip("/")
    if not host.startswith(("https://", "http://")):
        read.problems.append(f"GENAUTH_HOST={host!r} is not an http(s) URL")
    genauth = GenAuthSettings(
        host=host,
        access_key_id=read.required("GENAUTH_ACCESS_KEY_ID", "user-pool id or admin access key id", needs_genauth),
        access_key_secret=read.required("GENAUTH_ACCESS_KEY_SECRET", "the matching secret", needs_genauth),
        connect_timeout=read.parsed("GENAUTH_CONNECT_TIMEOUT", 3.05, _positive_float, "a positive number"),
        read_timeout=read.parsed("GENAUTH_READ_TIMEOUT", 10.0, _positive_float, "a positive number"),
        rate_limit=read.parsed("GENAUTH_RATE_LIMIT", 20.0, _non_negative_float, "a number of calls per second"),
        rate_burst=read.parsed("GENAUTH_RATE_BURST", 20, _positive_int, "a positive integer"),
    )
    secrets = tuple(
        s.strip()
        for s in read.required("GENAUTH_WEBHOOK_SECRET", "the webhook request key", needs_webhook).split(",")
        if s.strip()
    )
    webhook = WebhookSettings(
        secrets=secrets,
        userpool_id=read.text("GENAUTH_USERPOOL_ID", "") or None,
        max_body_bytes=read.parsed("ENFORCER_MAX_BODY_BYTES", 1024 * 1024, _positive_int, "a positive integer"),
        admin_token=read.text("ENFORCER_ADMIN_TOKEN", ""),
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
        threads=read.parsed("ENFORCER_WORKER_THREADS", defaults.threads, _worker_threads, "an integer from 1 to 32"),
    )
    settings = Settings(
        genauth=genauth,
        webhook=webhook,
        worker=worker,
        database_url=read.text("DATABASE_URL", DEFAULT_DATABASE_URL),
        policy_file=Path(read.text("POLICY_FILE", "config/policies.yaml")),
        policy_check_interval=read.parsed("ENFORCER_POLICY_CHECK_INTERVAL", 5.0, _positive_float, "seconds"),
        mode=read.choice("ENFORCER_MODE", "enforce", MODES),
        port=read.parsed("PORT", 8000, _port, "a TCP port"),
        log_format=read.choice("LOG_FORMAT", "console", ("console", "json")),
        log_level=read.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper(),
        metrics_port=read.parsed("ENFORCER_METRICS_PORT", 0, _port_or_off, "a TCP port, or 0 for none"),
        migrate_on_start=read.parsed("ENFORCER_MIGRATE_ON_START", False, _boolean, "true or false"),
    )
    if read.problems:
        lines = "\n".join(f"  - {problem}" for problem in read.problems)
        raise ConfigurationError(f"cannot start: the configuration has {len(read.problems)} problem(s):\n{lines}")
    return settings
