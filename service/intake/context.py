"""What the views need from the application, stored once on the Flask app by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from service.enforcement.reconciling import Reconciler
from service.genauth.circuit import CircuitBreaker
from service.genauth.throttling import RateLimiter
from service.metrics import CachedReading
from service.policy_source import PolicySource
from service.settings import Settings
from service.store.inbox import Inbox

EXTENSION = "mfa_enforcer"


@dataclass
class Runtime:
    """The collaborators of one running service."""

    settings: Settings
    engine: sa.Engine
    policies: PolicySource
    inbox: Inbox
    """Records deliveries; concurrent ones share a commit."""
    limiter: RateLimiter | None = None
    """The process's GenAuth rate limit, shared by its workers and the admin API's explain."""
    breaker: CircuitBreaker | None = None
    """The process's GenAuth circuit breaker, shared likewise."""
    explainer: Callable[[], Reconciler] | None = None
    """Makes the admin API's explain: a reconciler with its own GenAuth client on the process's limiter and
    breaker (``service.services.Services.explainer``)."""
    admin_reconciler: Reconciler | None = None
    """The admin API's explain, made on first use with ``explainer``."""
    read_engine: sa.Engine | None = None
    """For reads that need no transaction (/metrics, reports): on SQLite, connections that never wait for the
    writer; otherwise ``engine``. None means ``engine``."""
    digest_key: bytes = b""
    """The key of ``events.digest`` (``service.store.keys``)."""
    gauges: CachedReading | None = field(default=None, repr=False)
    """The database gauges of /metrics, read at most every few seconds per process."""

    @property
    def reader(self) -> sa.Engine:
        return self.read_engine or self.engine


def runtime() -> Runtime:
    value = current_app.extensions[EXTENSION]
    assert isinstance(value, Runtime)
    return value
