"""The compliance report as people and scripts read it: decision counts plus what the policy file says
(rule modes, exceptions that have expired). Shared by ``mfa-enforcer report`` and ``GET /api/report``."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa

from service.policy import Policy
from service.store.reporting import CATEGORIES, compliance


def build_report(engine: sa.Engine, policy: Policy, *, today: date, rule: str | None = None) -> dict[str, Any]:
    """The report; ``rule`` limits it to one rule (ValueError naming the rules if unknown)."""
    names = [r.name for r in policy.rules]
    if rule is not None and rule not in names:
        raise ValueError(f"no rule {rule!r}; the rules are: {', '.join(names) or 'none'}")
    report = compliance(engine, {r.name: r.mode for r in policy.rules}, only_rule=rule)
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
    return {**report, "categories": list(CATEGORIES), "expired_exceptions": expired, "as_of": today.isoformat()}
