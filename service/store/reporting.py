"""The compliance report, from decision records: per rule, how many users are compliant, were enforced,
are pending (a rollout has not reached them: with the earliest deadline and how many fall due within a week),
would be enforced (audit), are held by the brakes, cannot be (unsatisfiable; overdue when past their rollout
deadline), are exempt, are protected (break-glass accounts the
policy's ``protected`` block names: never written), and since when the oldest open
non-compliance has lasted; optionally the users behind each count.

Each user counts once, by their latest decision, whatever user-pool key their decisions were recorded under
(one deployment serves one pool, and older releases recorded some rows under ``""``). A user whose latest
decision failed (or whose last write's outcome is not known yet) is counted as failed (their rules are unknown
until the worker succeeds). A user GenAuth confirmed deleted or archived is counted as removed, under the rules
of their last known status: never as compliant, and never silently gone. A user whose account is otherwise
inactive (``INACTIVE_STATUSES``: suspended, they cannot sign in) is left out of the compliance figures and
counted apart. Where a decision counts is ``service.policy.outcomes.bucket``, shared with the dry run. Read
by ``mfa-enforcer report`` and ``GET /api/report``.

The queries are set-based: one statement reads every user's latest decision and one more streams the history
of the users who are still non-compliant, however many users there are (``docs/operations.md``, Admin API).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from service.store.tables import decisions
from service.vocabulary import FAILED_ACTIONS, Action, Bucket, bucket, pending_until, worst

#: The report's columns, in order.
CATEGORIES = (
    Bucket.COMPLIANT,
    Bucket.ENFORCED,
    Bucket.PENDING,
    Bucket.NOT_EFFECTIVE,
    Bucket.WOULD_ENFORCE,
    Bucket.HELD,
    Bucket.UNSATISFIABLE,
    Bucket.OVERDUE,
    Bucket.EXEMPT,
    Bucket.PROTECTED,
    Bucket.FAILED,
    Bucket.REMOVED,
)
NON_COMPLIANT = (Bucket.WOULD_ENFORCE, Bucket.HELD, Bucket.UNSATISFIABLE, Bucket.OVERDUE)
DUE_SOON_DAYS = 7
"""``pending`` users whose deadline falls within this many days are counted as due soon."""
FAILED_RULE = "-"
"""The rule a failed decision (or a removed one with no last known rules) is listed under."""
# Only these actions can carry an ``enforce`` or ``unsatisfiable`` label (``reconciling.decision_of``).
_OPEN_ACTIONS = (Action.ENFORCED, Action.WOULD_ENFORCE, Action.UNSATISFIABLE, Action.HELD)


@dataclass
class _Tally:
    per_rule: dict[str, dict[str, int]]
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    users: int = 0
    inactive: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)
    open_cases: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    switch_on: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """What to switch on for the not-effective users -> how many users it concerns."""
    deadlines: dict[str, list[date]] = field(default_factory=lambda: defaultdict(list))
    """Rule -> the deadlines of its pending users."""


def latest_decisions_statement() -> sa.Select[Any]:
    """Every user's latest decision (by user id, across user-pool keys)."""
    latest_ids = sa.select(sa.func.max(decisions.c.id)).group_by(decisions.c.user_id)
    return sa.select(
        decisions.c.id,
        decisions.c.user_id,
        decisions.c.decided_at,
        decisions.c.action,
        decisions.c.mode,
        decisions.c.outcomes,
        decisions.c.username,
        decisions.c.email,
        decisions.c.status,
        decisions.c.reason,
        decisions.c.not_effective,
    ).where(decisions.c.id.in_(latest_ids))


def compliance(
    engine: sa.Engine,
    rule_modes: dict[str, str],
    *,
    only_rule: str | None = None,
    with_users: bool = False,
    outcome: str | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Counts per rule and in total, and the oldest open non-compliance per rule (UNIX time).

    Per rule, ``pending`` carries the earliest deadline of its pending users and how many fall due within
    ``DUE_SOON_DAYS`` of ``today`` (UTC today when not given). ``with_users`` adds ``users_listed``: one entry
    per (rule, user) behind the counts, limited to ``outcome`` (a category, or ``inactive``) when given.
    """
    today = today or datetime.now(UTC).date()
    tally = _Tally(per_rule={rule: dict.fromkeys(CATEGORIES, 0) for rule in rule_modes if only_rule in (None, rule)})
    with engine.connect() as connection:
        for row in connection.execute(latest_decisions_statement()):
            _count(tally, row, rule_modes, only_rule)
        oldest = _open_since(connection, tally.open_cases, rule_modes)
    report: dict[str, Any] = {
        "users": tally.users,
        "inactive": tally.inactive,
        "totals": tally.totals,
        "rules": {
            rule: {
                **counts,
                "mode": rule_modes.get(rule, "removed"),
                "oldest_non_compliance": oldest.get(rule),
                "deadlines": _deadlines(tally.deadlines.get(rule, []), today),
            }
            for rule, counts in tally.per_rule.items()
        },
        "switch_on": [
            {"fix": fix, "users": users} for fix, users in sorted(tally.switch_on.items(), key=lambda i: (-i[1], i[0]))
        ],
    }
    if with_users:
        listed = [entry for entry in tally.listed if outcome in (None, entry["outcome"])]
        report["users_listed"] = sorted(listed, key=lambda e: (e["rule"], CATEGORY_ORDER[e["outcome"]], e["user_id"]))
    return report


def _deadlines(found: list[date], today: date) -> dict[str, Any]:
    """The earliest deadline of a rule's pending users, and how many fall due within ``DUE_SOON_DAYS``."""
    soon = today + timedelta(days=DUE_SOON_DAYS)
    return {
        "earliest": min(found).isoformat() if found else None,
        "due_in_7_days": sum(1 for deadline in found if deadline <= soon),
    }


CATEGORY_ORDER = {name: index for index, name in enumerate((*CATEGORIES, Bucket.INACTIVE))}


def _count(tally: _Tally, row: Any, rule_modes: dict[str, str], only_rule: str | None) -> None:
    gaps_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for gap in row.not_effective or ():
        for rule in gap.get("rules", ()) if isinstance(gap, dict) else ():
            gaps_of[rule].append(gap)

    def listed(rule: str, found: str) -> None:
        tally.listed.append(
            {
                "rule": rule,
                "outcome": found,
                "user_id": row.user_id,
                "username": row.username,
                "email": row.email,
                "status": row.status,
                "decided_at": row.decided_at,
                **({"not_effective": gaps_of.get(rule, [])} if found == Bucket.NOT_EFFECTIVE else {}),
            }
        )

    if row.action in FAILED_ACTIONS:
        tally.totals[Bucket.FAILED] += 1
        tally.users += 1
        listed(FAILED_RULE, Bucket.FAILED)
        return
    labels = {rule: label for rule, label in (row.outcomes or {}).items() if only_rule in (None, rule)}
    if row.action == Action.REMOVED:  # under the rules of their last known status (``with_last_known_status``)
        if labels or only_rule is None:
            tally.users += 1
            tally.totals[Bucket.REMOVED] += 1
            if not labels:
                listed(FAILED_RULE, Bucket.REMOVED)
        for rule in labels:
            tally.per_rule.setdefault(rule, dict.fromkeys(CATEGORIES, 0))[Bucket.REMOVED] += 1
            listed(rule, Bucket.REMOVED)
        return
    found = {
        rule: bucket(
            label,
            action=row.action,
            mode=row.mode,
            rule_mode=rule_modes.get(rule, "enforce"),
            status=row.status,
            not_effective=rule in gaps_of,
        )
        for rule, label in labels.items()
    }
    if not found:
        return
    if Bucket.INACTIVE in found.values():  # the account cannot sign in: not counted as compliant or not
        tally.inactive += 1
        for rule in found:
            listed(rule, Bucket.INACTIVE)
        return
    tally.users += 1
    for rule, where in found.items():
        tally.per_rule.setdefault(rule, dict.fromkeys(CATEGORIES, 0))[where] += 1
        listed(rule, where)
        deadline = pending_until(labels[rule]) if where == Bucket.PENDING else None
        if deadline is not None:
            tally.deadlines[rule].append(deadline)
        if where in NON_COMPLIANT:
            tally.open_cases[row.user_id].add(rule)
    tally.totals[worst(found.values())] += 1  # ``exempt`` only when exempt from every rule
    fixes = {str(gap.get("fix")) for gaps in gaps_of.values() for gap in gaps if rule_gap_counted(gap, found)}
    for fix in fixes:
        tally.switch_on[fix] += 1


def rule_gap_counted(gap: dict[str, Any], found: dict[str, Bucket]) -> bool:
    """Whether a gap concerns a rule the user is counted ``not-effective`` under (not, say, ``would-enforce``)."""
    return any(found.get(rule) == Bucket.NOT_EFFECTIVE for rule in gap.get("rules", ()))


def _open_since(
    connection: sa.Connection, open_cases: dict[str, set[str]], rule_modes: dict[str, str]
) -> dict[str, float]:
    """Per rule, the earliest start of an unbroken run of non-compliant decisions, over the users still
    non-compliant with it: one statement streams those users' histories, newest first per user."""
    if not open_cases:
        return {}
    latest_ids = sa.select(sa.func.max(decisions.c.id)).group_by(decisions.c.user_id)
    candidates = sa.select(decisions.c.user_id).where(
        decisions.c.id.in_(latest_ids), decisions.c.action.in_(_OPEN_ACTIONS)
    )
    history = (
        sa.select(
            decisions.c.user_id, decisions.c.decided_at, decisions.c.action, decisions.c.mode, decisions.c.outcomes
        )
        .where(decisions.c.user_id.in_(candidates))
        .order_by(decisions.c.user_id, decisions.c.id.desc())
    )
    since: dict[str, float] = {}
    # Per (user, rule) still open: the decided_at of the oldest decision in the unbroken run so far, or None
    # once a compliant (or unmatched) decision ended the run.
    current_user: str | None = None
    running: dict[str, float | None] = {}
    closed: set[str] = set()

    def settle() -> None:
        for rule, start in running.items():
            if start is not None and (rule not in since or start < since[rule]):
                since[rule] = start

    for user_id, decided_at, action, mode, outcomes in connection.execute(history.execution_options(yield_per=1000)):
        if user_id != current_user:
            settle()
            current_user = user_id
            running = dict.fromkeys(open_cases.get(user_id, ()))
            closed = set()
        if action in FAILED_ACTIONS:
            continue
        for rule in running:
            if rule in closed:
                continue
            label = None if action == Action.REMOVED else (outcomes or {}).get(rule)
            if (
                label is None
                or bucket(label, action=action, mode=mode, rule_mode=rule_modes.get(rule, "enforce"))
                not in NON_COMPLIANT
            ):
                closed.add(rule)
                continue
            running[rule] = decided_at
    settle()
    return since


def latest_with_action(engine: sa.Engine, action: str, *, since: float, limit: int = 20) -> tuple[int, list[Any]]:
    """Users whose latest decision has ``action`` and was made after ``since``: how many, and the most recent
    ``limit`` of those decisions (the digest's "became unsatisfiable")."""
    latest = latest_decisions_statement().subquery()
    where = sa.and_(latest.c.action == action, latest.c.decided_at > since)
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(latest).where(where)).scalar_one()
        rows = connection.execute(
            sa.select(latest).where(where).order_by(latest.c.decided_at.desc()).limit(limit)
        ).all()
    return int(count), list(rows)
