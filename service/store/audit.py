"""The audit trail: who did what to the service, when and why, kept so that an auditor can be shown it.

One append-only row per operator action (``replay``, ``reconcile``, and later pause, release, revert) and per
change of what the service enforces (``policy-reload``: a policy file with a new digest became the deployment's
last good copy, ``service.store.snapshots``). Each row is also logged once as ``audit_record``, so a log shipper
forwards it to a SIEM. This module only ever inserts and reads: there is no update or delete path, and history
retention (``service.store.retention``) leaves the table alone.

Who: the ``--actor`` an operator gives, else the OS user and host the command ran as (``operator``); the admin
API is ``admin-api`` with a short fingerprint of the bearer token it was given, never the token
(``admin_api_actor``); a policy file change is ``POLICY_FILE``, since the service cannot know who edited it.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlalchemy as sa

from service.logs import log_event
from service.store.tables import audit

logger = logging.getLogger(__name__)

REPLAY = "replay"
RECONCILE = "reconcile"
POLICY_RELOAD = "policy-reload"
PAUSE = "pause"
RESUME = "resume"
RELEASE = "release"
DISCARD = "discard"
"""The brakes' operator actions (``service.cli.holds``)."""
REVERT = "revert"
"""An operator undid writes of the service (``service.cli.revert``)."""

ADMIN_API = "admin-api"
POLICY_FILE = "policy-file"
"""The actor of a policy change: the file was edited by whoever can write it; the record says which process
saw the new version first."""

MAX_REASON = 1000
MAX_ACTOR = 200


@dataclass(frozen=True)
class AuditRecord:
    """One row of the trail. ``scope`` says what the action covered, ``counts`` how much it did."""

    id: int
    at: float
    actor: str
    action: str
    reason: str
    scope: dict[str, Any]
    counts: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def operator(actor: str | None = None) -> str:
    """The operator behind a command: ``actor`` when given, else ``<OS user>@<host>``."""
    if actor is not None and actor.strip():
        return actor.strip()[:MAX_ACTOR]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no USER/LOGNAME
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"[:MAX_ACTOR]


def admin_api_actor(token: str) -> str:
    """``admin-api`` with the first 12 hex digits of the SHA-256 of ``token``: tells two tokens apart (a
    rotation, a leaked one) without keeping anything that would let one be used."""
    fingerprint = hashlib.sha256(b"mfa-enforcer admin token\x00" + token.encode()).hexdigest()[:12]
    return f"{ADMIN_API}:{fingerprint}"


def record(
    target: sa.Engine | sa.Connection,
    action: str,
    *,
    reason: str,
    actor: str,
    scope: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    at: float | None = None,
    log: bool = True,
) -> AuditRecord:
    """Append one record and log it. On an engine it commits on its own; on a connection it joins the caller's
    transaction; ``log=False`` leaves the log line to the caller, after its commit (``log_record``)."""
    entry = AuditRecord(
        id=0,
        at=time.time() if at is None else at,
        actor=actor[:MAX_ACTOR],
        action=action,
        reason=reason[:MAX_REASON],
        scope=scope or {},
        counts=counts or {},
    )
    values = entry.as_dict()
    del values["id"]
    with contextlib.nullcontext(target) if isinstance(target, sa.Connection) else target.begin() as connection:
        key = connection.execute(sa.insert(audit).values(**values)).inserted_primary_key
    assert key is not None
    entry = replace(entry, id=int(key[0]))
    if log:
        log_record(entry)
    return entry


def log_record(entry: AuditRecord) -> None:
    """The record's one structured log line (``audit_record``)."""
    log_event(logger, "audit_record", **entry.as_dict())


def audit_records(
    engine: sa.Engine, *, since: float | None = None, limit: int = 1000, action: str | None = None
) -> list[AuditRecord]:
    """The newest ``limit`` records made at or after ``since`` (only ``action`` when given), oldest first."""
    statement = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
    if since is not None:
        statement = statement.where(audit.c.at >= since)
    if action is not None:
        statement = statement.where(audit.c.action == action)
    with engine.connect() as connection:
        rows = [row._mapping for row in connection.execute(statement)]
    return [
        AuditRecord(
            id=int(row["id"]),
            at=float(row["at"]),
            actor=row["actor"],
            action=row["action"],
            reason=row["reason"],
            scope=dict(row["scope"] or {}),
            counts=dict(row["counts"] or {}),
        )
        for row in reversed(rows)
    ]
