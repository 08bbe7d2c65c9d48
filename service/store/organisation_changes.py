"""A generation per user pool that moves whenever an event says the organisation tree changed.

Every process caches the pool's organisation tree (``service.enforcement.organisation``), but the event that
changes it reaches one web process, and the workers that use the tree may run in others (``mfa-enforcer
worker``, other pods). So the intake bumps this row, in the transaction that records the event
(``service.store.inbox``), and each process's tree reads the generation every few seconds (one primary-key
read) and loads again when it moved. A tree that read the generation before its load started knows the
changes that load saw; one bumped during the load is seen by the next read, so no change is missed.

One row per pool; ``changed_at`` is when the last change was recorded, for operators.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from service.store.tables import metadata

organisation_changes = sa.Table(
    "organisation_changes",
    metadata,
    sa.Column("userpool_id", sa.String(64), primary_key=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("changed_at", sa.Float, nullable=False),
)
"""How many tree changes each pool has recorded (the generation), and when the last one was."""

_BUMP_SQL = sa.text(
    """
INSERT INTO organisation_changes (userpool_id, generation, changed_at) VALUES (:userpool_id, 1, :now)
ON CONFLICT (userpool_id) DO UPDATE SET
    generation = organisation_changes.generation + 1,
    changed_at = CASE WHEN excluded.changed_at > organisation_changes.changed_at
                      THEN excluded.changed_at ELSE organisation_changes.changed_at END
"""
)


def bump(connection: sa.Connection, userpool_ids: Iterable[str], *, now: float) -> None:
    """Record, in the caller's transaction, that the tree of each pool changed (once per pool, however many
    of its events the transaction holds)."""
    for userpool_id in sorted(set(userpool_ids)):  # a fixed order: two batches never wait for each other's rows
        connection.execute(_BUMP_SQL, {"userpool_id": userpool_id, "now": now})


def generation(engine: sa.Engine, userpool_id: str) -> int:
    """The pool's generation (0 before its first recorded change)."""
    with engine.connect() as connection:
        value = connection.execute(
            sa.select(organisation_changes.c.generation).where(organisation_changes.c.userpool_id == userpool_id)
        ).scalar()
    return int(value or 0)
