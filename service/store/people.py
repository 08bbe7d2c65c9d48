"""Who a user id is, as the decision records remember it: the username and email GenAuth showed at the user's
latest decision. Listings (dead letters, replay) show them next to the id, and ``replay --user`` and the admin
API accept a username or email the service has already seen without asking GenAuth. Phone numbers are never
recorded, so they are never shown here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from service.store.tables import decisions, work

CHUNK = 500
"""User ids per ``IN (…)`` list: well under SQLite's and PostgreSQL's parameter limits."""


@dataclass(frozen=True)
class Name:
    username: str | None
    email: str | None


def names_of(engine: sa.Engine, user_ids: Iterable[str]) -> dict[str, Name]:
    """The recorded username and email of each user id that has a named decision (one query per 500 ids)."""
    unique = list(dict.fromkeys(user_ids))
    found: dict[str, Name] = {}
    with engine.connect() as connection:
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            latest = (
                sa.select(sa.func.max(decisions.c.id))
                .where(
                    decisions.c.user_id.in_(chunk),
                    sa.or_(decisions.c.username.is_not(None), decisions.c.email.is_not(None)),
                )
                .group_by(decisions.c.user_id)
            )
            named = sa.select(decisions.c.user_id, decisions.c.username, decisions.c.email)
            for user_id, username, email in connection.execute(named.where(decisions.c.id.in_(latest))):
                found[user_id] = Name(username, email)
    return found


def recorded_user_id(engine: sa.Engine, reference: str) -> str | None:
    """The user id ``reference`` names among users the service has seen: an id with a work row or a decision,
    else the user whose latest named decision has this username or email (ignoring case); None if none does."""
    reference = reference.strip()
    with engine.connect() as connection:
        for table in (work, decisions):
            if connection.execute(sa.select(table.c.user_id).where(table.c.user_id == reference).limit(1)).first():
                return reference
        folded = reference.casefold()
        row = connection.execute(
            sa.select(decisions.c.user_id)
            .where(
                sa.or_(
                    sa.func.lower(decisions.c.username) == folded,
                    sa.func.lower(decisions.c.email) == folded,
                )
            )
            .order_by(decisions.c.id.desc())
            .limit(1)
        ).first()
    return str(row[0]) if row else None
