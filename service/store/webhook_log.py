"""Where gap recovery stands in GenAuth's delivery log of each webhook (``tables.webhook_log_reads``).

GenAuth keeps a log of every delivery attempt but documents no retry (docs/genauth.md §3.14), so the service
reads the log to take in what it missed (``service.intake.recovery``). This module keeps only the read's
bookkeeping: the time of the newest entry read (the next read stops at it), when the log was last read to the
end (``/readyz``, ``report``), how many deliveries that read recovered, and a lease so that two processes never
read one log at the same time (each would see the other's gap as not yet recorded and record it again).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from service.store.tables import events, webhook_log_reads

_INSERT_SQL = sa.text(
    "INSERT INTO webhook_log_reads (webhook_id, recovered) VALUES (:webhook_id, 0) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True)
class LogRead:
    """The stored state of one webhook's log."""

    webhook_id: str
    position: float | None
    """Epoch seconds of the newest entry read so far; None before the first read."""
    read_at: float | None
    recovered: int


def take_read(engine: sa.Engine, webhook_id: str, *, now: float, lease_seconds: float) -> LogRead | None:
    """Lease the log of ``webhook_id`` for ``lease_seconds``; None while another process holds it."""
    table = webhook_log_reads
    with engine.begin() as connection:
        connection.execute(_INSERT_SQL, {"webhook_id": webhook_id})
        taken = connection.execute(
            table.update()
            .where(table.c.webhook_id == webhook_id, sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now))
            .values(lease_until=now + lease_seconds)
        ).rowcount
        if not taken:
            return None
        row = connection.execute(sa.select(table).where(table.c.webhook_id == webhook_id)).one()
    return LogRead(row.webhook_id, row.position, row.read_at, row.recovered)


def stored_read(engine: sa.Engine, webhook_id: str) -> LogRead | None:
    """The state of ``webhook_id``'s log without leasing it (a dry run)."""
    table = webhook_log_reads
    with engine.connect() as connection:
        row = connection.execute(sa.select(table).where(table.c.webhook_id == webhook_id)).first()
    return None if row is None else LogRead(row.webhook_id, row.position, row.read_at, row.recovered)


def finish_read(
    connection: sa.Connection, webhook_id: str, *, position: float | None, now: float, recovered: int
) -> None:
    """Record a complete read in the caller's transaction (the one that records what it recovered), and end the
    lease. ``position`` never moves back."""
    table = webhook_log_reads
    values: dict[str, object] = {"read_at": now, "recovered": recovered, "lease_until": None}
    if position is not None:
        values["position"] = sa.case((table.c.position > position, table.c.position), else_=position)
    connection.execute(table.update().where(table.c.webhook_id == webhook_id).values(**values))


def release_read(engine: sa.Engine, webhook_id: str) -> None:
    """End the lease of a read that failed, so the next one may start at once."""
    table = webhook_log_reads
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.webhook_id == webhook_id).values(lease_until=None))


def recorded_digests(connection: sa.Connection, digests: Collection[str]) -> set[str]:
    """Which of ``digests`` an event record already has (``events.digest`` is indexed)."""
    found: set[str] = set()
    listed = list(digests)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        found.update(connection.execute(sa.select(events.c.digest).where(events.c.digest.in_(chunk))).scalars())
    return found


def show_moment(at: object) -> str | None:
    """Epoch seconds as ISO 8601 in UTC (``/readyz``), None as None."""
    if not isinstance(at, int | float):
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def last_read(engine: sa.Engine) -> dict[str, object]:
    """For ``/readyz`` and ``report``: when the delivery log was last read to the end (epoch seconds, None if never),
    and how many deliveries that read recovered."""
    table = webhook_log_reads
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(table.c.read_at, table.c.recovered)
            .where(table.c.read_at.is_not(None))
            .order_by(table.c.read_at.desc())
            .limit(1)
        ).first()
    if row is None:
        return {"webhook_log_read_at": None, "webhook_log_recovered": 0}
    return {"webhook_log_read_at": row.read_at, "webhook_log_recovered": row.recovered}
