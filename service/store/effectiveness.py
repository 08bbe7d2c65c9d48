"""Users whose latest decision says a required factor is not effective (GenAuth will not challenge it), from
the decision records: the count and the fixes for ``/readyz`` and the metric, and the queueing that makes the
worker decide them again once the MFA settings above them changed (``service.enforcement.effective``).

Also the id of the latest recorded ``application:mfa:*`` event: each process's settings cache reads it to
learn, through the database, that a web process (perhaps another pod) received one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from service.store.queue import enqueue
from service.store.subjects import Subject
from service.store.tables import decisions, events

REQUEUE_REASON = "mfa-settings-changed"
"""The work reason of a user queued again because the pool's or an app's MFA settings changed."""


def _latest_not_effective() -> sa.Select[Any]:
    latest_ids = sa.select(sa.func.max(decisions.c.id)).group_by(decisions.c.user_id)
    return sa.select(decisions.c.userpool_id, decisions.c.user_id, decisions.c.not_effective).where(
        decisions.c.id.in_(latest_ids), decisions.c.not_effective.is_not(None)
    )


def not_effective_summary(engine: sa.Engine) -> dict[str, Any]:
    """``users``: how many users' latest decision has a factor that is not effective; ``fixes``: what to switch
    on, each with how many of those users it concerns, most first."""
    users = 0
    fixes: Counter[str] = Counter()
    with engine.connect() as connection:
        for row in connection.execute(_latest_not_effective()):
            gaps = row.not_effective or []
            if not gaps:
                continue
            users += 1
            fixes.update({str(gap.get("fix")) for gap in gaps if isinstance(gap, dict)})
    return {"users": users, "fixes": [{"fix": fix, "users": count} for fix, count in fixes.most_common()]}


def requeue_not_effective(engine: sa.Engine, settled: Callable[[Mapping[str, Any]], bool], *, now: float) -> int:
    """Queue every user whose latest decision has a gap ``settled`` says may no longer hold (as bulk work; a
    pending row is refreshed); returns how many. Nothing is written when there are none."""
    with engine.connect() as connection:
        found: dict[str, list[Subject]] = {}
        for row in connection.execute(_latest_not_effective()):
            if any(isinstance(gap, dict) and settled(gap) for gap in row.not_effective or ()):
                found.setdefault(row.userpool_id, []).append(Subject.user(row.user_id))
    if not found:
        return 0
    with engine.begin() as connection:
        return sum(
            enqueue(connection, pool, subjects, reason=REQUEUE_REASON, now=now) for pool, subjects in found.items()
        )


def latest_event_id(engine: sa.Engine, names: Iterable[str]) -> int:
    """The id of the latest recorded event with one of ``names`` (0: none)."""
    statement = sa.select(sa.func.max(events.c.id)).where(events.c.event_name.in_(list(names)))
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar() or 0)


SUMMARY_TTL = 5.0
"""Seconds ``readiness`` reuses a summary it read (probes are frequent; the figure moves with decisions)."""
_summaries: dict[int, tuple[float, dict[str, Any]]] = {}
_summaries_lock = threading.Lock()


def readiness(engine: sa.Engine, *, now: float | None = None) -> dict[str, Any]:
    """What ``/readyz`` shows (never a reason to be unready): ``not_effective_users`` and, when there are
    some, ``not_effective_warning`` saying what to switch on. Read at most once per ``SUMMARY_TTL`` per
    engine; a failed read shows nothing (the database check reports the database)."""
    moment = time.monotonic() if now is None else now
    with _summaries_lock:
        cached = _summaries.get(id(engine))
        if cached is None or moment - cached[0] >= SUMMARY_TTL:
            try:
                cached = (moment, not_effective_summary(engine))
            except sa.exc.SQLAlchemyError:
                return {}
            _summaries[id(engine)] = cached
    summary = cached[1]
    shown: dict[str, Any] = {"not_effective_users": summary["users"]}
    if summary["users"]:
        fixes = "; ".join(f"{item['fix']} ({item['users']} user(s))" for item in summary["fixes"])
        shown["not_effective_warning"] = (
            f"{summary['users']} user(s) will not be asked for a factor the rules enforce: {fixes}"
        )
    return shown
