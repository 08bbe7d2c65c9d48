"""The last good policy, kept in the database so that a process that starts while the file is bad has rules.

``service.policy_source.PolicySource`` saves every policy file that validates (text, digest, path, when it
was loaded) and reads the copy back only when it starts and the file on disk does not validate. One row:
whichever process loaded a good file last wrote it. Policy files hold rules, not secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from service.store.tables import policy_snapshots

SNAPSHOT_NAME = "last-good"

_UPSERT_SQL = sa.text(
    """
    INSERT INTO policy_snapshots (name, text, digest, source, loaded_at)
    VALUES (:name, :text, :digest, :source, :loaded_at)
    ON CONFLICT (name) DO UPDATE SET
        text = excluded.text, digest = excluded.digest, source = excluded.source, loaded_at = excluded.loaded_at
    """
)


@dataclass(frozen=True)
class PolicySnapshot:
    """A policy file that validated."""

    text: str
    digest: str
    """SHA-256 of the file's bytes."""
    source: str
    """The path it was read from."""
    loaded_at: float
    """When a process first loaded it (UNIX time)."""


class PolicySnapshots:
    """Reads and writes the last good policy; ``read_engine`` may be the writer itself (PostgreSQL)."""

    def __init__(self, engine: sa.Engine, read_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine

    def load(self) -> PolicySnapshot | None:
        statement = sa.select(
            policy_snapshots.c.text, policy_snapshots.c.digest, policy_snapshots.c.source, policy_snapshots.c.loaded_at
        ).where(policy_snapshots.c.name == SNAPSHOT_NAME)
        with self.read_engine.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else PolicySnapshot(*row)

    def save(self, snapshot: PolicySnapshot) -> bool:
        """Keep ``snapshot`` unless the database holds the same file already; returns True when it wrote."""
        stored = self.load()
        if stored is not None and stored.digest == snapshot.digest:
            return False
        with self.engine.begin() as connection:
            connection.execute(
                _UPSERT_SQL,
                {
                    "name": SNAPSHOT_NAME,
                    "text": snapshot.text,
                    "digest": snapshot.digest,
                    "source": snapshot.source[:1000],
                    "loaded_at": snapshot.loaded_at,
                },
            )
        return True
