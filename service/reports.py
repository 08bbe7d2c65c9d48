"""The compliance report as people and scripts read it: decision counts plus what the policy file says
(rule modes, exceptions that have expired), and on request the users behind each count. Shared by
``mfa-enforcer report`` and ``GET /api/report``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from service.errors import ReportFilterError
from service.policy import Policy
from service.store.audit import POLICY_RELOAD, audit_records
from service.store.budget import brake_readiness
from service.store.reporting import CATEGORIES, compliance
from service.store.webhook_log import last_read
from service.vocabulary import INACTIVE_STATUSES, Bucket

OUTCOMES = (*CATEGORIES, Bucket.INACTIVE)
"""What ``--outcome`` / ``?outcome=`` accept."""


def build_report(
    engine: sa.Engine,
    policy: Policy,
    *,
    today: date,
    rule: str | None = None,
    with_users: bool = False,
    outcome: str | None = None,
) -> dict[str, Any]:
    """The report; ``rule`` limits it to one rule, ``with_users`` lists the users behind the counts (only those
    with ``outcome``, if given). ``ReportFilterError`` names the choices for an unknown rule or outcome."""
    names = [r.name for r in policy.rules]
    if rule is not None and rule not in names:
        raise ReportFilterError(f"no rule {rule!r}; the rules are: {', '.join(names) or 'none'}")
    if outcome is not None and outcome not in OUTCOMES:
        raise ReportFilterError(f"no outcome {outcome!r}; the outcomes are: {', '.join(OUTCOMES)}")
    report = compliance(
        engine,
        {r.name: r.mode for r in policy.rules},
        only_rule=rule,
        with_users=with_users,
        outcome=outcome,
        today=today,
    )
    expired = [
        {
            "rule": r.name,
            "reason": exception.reason,
            "users": list(exception.users),
            "groups": list(exception.groups),
            "expired": exception.expires.isoformat() if exception.expires else None,
        }
        for r in policy.rules
        if rule in (None, r.name)
        for exception in r.exceptions
        if exception.is_expired(today)
    ]
    return {
        **report,
        "categories": list(CATEGORIES),
        "inactive_statuses": list(INACTIVE_STATUSES),
        "expired_exceptions": expired,
        "as_of": today.isoformat(),
        "brakes": _brakes(engine),
        "webhook_log": last_read(engine),
        "long_in_audit": _long_in_audit(engine, policy, today=today, rule=rule),
    }


AUDIT_STEP_DAYS = 30
"""A rule in ``mode: audit`` for longer than this is flagged: audit is a rollout step, not a destination."""


def _long_in_audit(engine: sa.Engine, policy: Policy, *, today: date, rule: str | None) -> list[dict[str, Any]]:
    """The audit-mode rules that have been in audit for more than ``AUDIT_STEP_DAYS``, with since when.

    Since when comes from the audit trail's ``policy-reload`` records (``service.store.audit``), newest first:
    the latest record in which the rule was added or switched to audit (``modes``: ``enforce->audit``); the
    first policy loaded lists every rule as added. A rule no kept record mentions is in audit since at least
    the oldest record (the trail is never pruned), or unknown when there is none."""
    in_audit = [r.name for r in policy.rules if r.is_audit and rule in (None, r.name)]
    if not in_audit:
        return []
    records = audit_records(engine, action=POLICY_RELOAD, limit=10000)
    flagged = []
    for name in in_audit:
        since = next(
            (
                entry.at
                for entry in reversed(records)
                if name in entry.scope.get("added", ()) or entry.scope.get("modes", {}).get(name, "").endswith("audit")
            ),
            records[0].at if records else None,
        )
        if since is None:
            continue
        started = datetime.fromtimestamp(since, UTC).date()
        days = (today - started).days
        if days > AUDIT_STEP_DAYS:
            flagged.append({"rule": name, "since": started.isoformat(), "days": days})
    return flagged


def _brakes(engine: sa.Engine) -> dict[str, Any]:
    """Whether writes are paused, and how many users' writes are held (``mfa-enforcer holds``)."""
    shown = brake_readiness(engine)
    return {"paused": shown["paused"], "held": shown["holding"]}
