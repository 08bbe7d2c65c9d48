"""The compliance report, from decision records: per rule, how many users are compliant, were enforced,
would be enforced (audit), cannot be (unsatisfiable), are exempt, and since when the oldest open
non-compliance has lasted.

Each user counts once, by their latest decision. A user whose latest decision failed is counted as failed
(their rules are unknown until the worker succeeds). Read by ``mfa-enforcer report`` and ``GET /api/report``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from service.store.tables import decisions

CATEGORIES = ("compliant", "enforced", "would-enforce", "unsatisfiable", "exempt", "failed")
NON_COMPLIANT = ("would-enforce", "unsatisfiable")


def category(label: str, *, action: str, mode: str, rule_mode: str) -> str:
    """A rule outcome label of one decision as a report category."""
    kind = label.split(" ", 1)[0]
    if kind == "enforce":
        return "enforced" if action == "enforced" and mode == "enforce" and rule_mode == "enforce" else "would-enforce"
    if kind in ("compliant", "exempt", "unsatisfiable"):
        return kind
    return "compliant"


def compliance(engine: sa.Engine, rule_modes: dict[str, str], *, only_rule: str | None = None) -> dict[str, Any]:
    """Counts per rule and in total, and the oldest open non-compliance per rule (UNIX time)."""
    latest_ids = sa.select(sa.func.max(decisions.c.id)).group_by(decisions.c.userpool_id, decisions.c.user_id)
    columns = (
        decisions.c.id,
        decisions.c.userpool_id,
        decisions.c.user_id,
        decisions.c.decided_at,
        decisions.c.action,
        decisions.c.mode,
        decisions.c.outcomes,
    )
    with engine.connect() as connection:
        latest = connection.execute(sa.select(*columns).where(decisions.c.id.in_(latest_ids))).all()
    per_rule: dict[str, dict[str, int]] = {
        rule: dict.fromkeys(CATEGORIES, 0) for rule in rule_modes if only_rule in (None, rule)
    }
    totals = dict.fromkeys(CATEGORIES, 0)
    open_cases: dict[str, list[tuple[str, str]]] = defaultdict(list)
    users = 0
    for row in latest:
        if row.action == "failed":
            totals["failed"] += 1
            users += 1
            continue
        labels = {rule: label for rule, label in (row.outcomes or {}).items() if only_rule in (None, rule)}
        if not labels:
            continue
        users += 1
        worst = "compliant"
        for rule, label in labels.items():
            found = category(label, action=row.action, mode=row.mode, rule_mode=rule_modes.get(rule, "enforce"))
            per_rule.setdefault(rule, dict.fromkeys(CATEGORIES, 0))[found] += 1
            if found in NON_COMPLIANT:
                open_cases[rule].append((row.userpool_id, row.user_id))
            worst = _worse(worst, found)
        totals[worst] += 1
    oldest = {rule: _open_since(engine, rule, cases, rule_modes) for rule, cases in open_cases.items()}
    return {
        "users": users,
        "totals": totals,
        "rules": {
            rule: {**counts, "mode": rule_modes.get(rule, "removed"), "oldest_non_compliance": oldest.get(rule)}
            for rule, counts in per_rule.items()
        },
    }


_SEVERITY = {"compliant": 0, "exempt": 0, "enforced": 1, "would-enforce": 2, "unsatisfiable": 3, "failed": 4}


def _worse(first: str, second: str) -> str:
    return first if _SEVERITY[first] >= _SEVERITY[second] else second


def _open_since(engine: sa.Engine, rule: str, cases: list[tuple[str, str]], rule_modes: dict[str, str]) -> float:
    """The earliest start of an unbroken run of non-compliant decisions, over the users still non-compliant."""
    since: float | None = None
    with engine.connect() as connection:
        for pool, user in cases:
            history = connection.execute(
                sa.select(decisions.c.decided_at, decisions.c.action, decisions.c.mode, decisions.c.outcomes)
                .where(decisions.c.userpool_id == pool, decisions.c.user_id == user)
                .order_by(decisions.c.id.desc())
            )
            start: float | None = None
            for decided_at, action, mode, outcomes in history:
                label = (outcomes or {}).get(rule)
                if action == "failed":
                    continue
                if (
                    label is None
                    or category(label, action=action, mode=mode, rule_mode=rule_modes.get(rule, "enforce"))
                    not in NON_COMPLIANT
                ):
                    break
                start = decided_at
            if start is not None and (since is None or start < since):
                since = start
    assert since is not None
    return since
