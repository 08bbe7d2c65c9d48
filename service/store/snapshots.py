"""The last good policy, kept in the database so that a process that starts while the file is bad has rules.

``service.policy_source.PolicySource`` saves every policy file that validates (text, digest, path, when it
was loaded) and reads the copy back only when it starts and the file on disk does not validate. One row:
whichever process loaded a good file last wrote it. Policy files hold rules, not secrets.

Replacing the copy is also where a policy change is audited (``service.store.audit``), because every web and
worker process reloads the file but the row changes once per new version: the replacement is a compare and
swap on the digest the writer read, and only the process whose swap took writes the ``policy-reload`` record,
in the same transaction. So N processes that see one edit leave exactly one record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from service.store.audit import POLICY_FILE, POLICY_RELOAD, AuditRecord, log_record, record
from service.store.tables import policy_snapshots

SNAPSHOT_NAME = "last-good"

_INSERT_SQL = sa.text(
    """
    INSERT INTO policy_snapshots (name, text, digest, source, loaded_at)
    VALUES (:name, :text, :digest, :source, :loaded_at)
    ON CONFLICT (name) DO NOTHING
    """
)
_SWAP_SQL = sa.text(
    """
    UPDATE policy_snapshots SET text = :text, digest = :digest, source = :source, loaded_at = :loaded_at
    WHERE name = :name AND digest = :previous
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


Describe = Callable[[PolicySnapshot | None], tuple[str, dict[str, Any], dict[str, Any]]]
"""What a policy change was, given the copy it replaces: the audit record's reason, scope and counts."""


class PolicySnapshots:
    """Reads and writes the last good policy; ``read_engine`` may be the writer itself (PostgreSQL)."""

    def __init__(self, engine: sa.Engine, read_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine

    def load(self) -> PolicySnapshot | None:
        with self.read_engine.connect() as connection:
            return _load(connection)

    def save(self, snapshot: PolicySnapshot, *, describe: Describe | None = None) -> bool:
        """Keep ``snapshot`` unless the database holds the same file already; returns True when it wrote.

        With ``describe``, the process that replaces the copy also appends the ``policy-reload`` audit record
        (``describe`` gets the copy replaced, None for the first), once across every process saving the file."""
        stored = self.load()
        if stored is not None and stored.digest == snapshot.digest:
            return False
        values = {**asdict(snapshot), "name": SNAPSHOT_NAME, "source": snapshot.source[:1000]}
        entry: AuditRecord | None = None
        with self.engine.begin() as connection:
            previous = _load(connection)
            if previous is not None and previous.digest == snapshot.digest:
                return False
            if previous is None:
                swapped = connection.execute(_INSERT_SQL, values).rowcount
            else:
                swapped = connection.execute(_SWAP_SQL, {**values, "previous": previous.digest}).rowcount
            if not swapped:
                return False  # another process replaced it first, and audited the change
            if describe is not None:
                reason, scope, counts = describe(previous)
                entry = record(
                    connection, POLICY_RELOAD, reason=reason, actor=POLICY_FILE, scope=scope, counts=counts, log=False
                )
        if entry is not None:
            log_record(entry)
        return True


def _load(connection: sa.Connection) -> PolicySnapshot | None:
    columns = [policy_snapshots.c[name] for name in ("text", "digest", "source", "loaded_at")]
    statement = sa.select(*columns).where(policy_snapshots.c.name == SNAPSHOT_NAME)
    row = connection.execute(statement).first()
    return None if row is None else PolicySnapshot(*row)
