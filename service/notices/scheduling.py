"""Which user notices are due: the ones ahead of a deadline (``notify_users.before``) and the one after the
service enforced a rule for the user (``notify_users.on_enforce``). Pure: they turn what is known into outbox
rows (``Notice``), and the outbox's keys make each one go out once, however often this runs.

A notice is keyed by user, rule, kind and period (the deadline it warns of), so a moved deadline is a new
notice and an unchanged one is never sent twice. When a user's deadline is closer than several ``before``
thresholds at once (first seen a day ahead), only the nearest threshold's notice is made: one e-mail, not two.
What a notice keeps is only what the templates may show: the user's name, the rule's description and factors,
and the dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from service.enforcement.decisions import Decision
from service.policy import Policy, Rule
from service.store.outbox import EMAIL, Notice
from service.vocabulary import Action

BEFORE = "before"
ON_ENFORCE = "on-enforce"
READY = {
    "SMS": "a mobile phone number on your account, and the phone itself",
    "EMAIL": "access to the e-mail address on your account",
    "OTP": "an authenticator app on your phone",
    "FACE": "a device with a camera",
}
"""What a user needs at hand for each factor (the notices' ``ready``)."""


@dataclass(frozen=True)
class Deadline:
    """From when one rule is enforced for one user (the rollout's stored deadline), with the user's name and
    address on record."""

    userpool_id: str
    user_id: str
    rule: str
    deadline: date
    name: str | None = None
    email: str | None = None


def user_key(userpool_id: str, user_id: str, rule: str, kind: str, period: str) -> str:
    """The outbox key of a user notice: who, which rule, which notice, which deadline (``-``: none)."""
    return f"user:{userpool_id}:{user_id}|{rule}|{kind}|{period}|{EMAIL}"


def before_notices(deadlines: Iterable[Deadline], policy: Policy, *, today: date) -> list[Notice]:
    """The ``before`` notices due ``today`` for these deadlines: one per user and rule whose deadline is at most
    the largest threshold away and still ahead (the nearest threshold reached names the notice)."""
    notices = []
    for entry in deadlines:
        rule = _notifying(policy, entry.rule)
        if rule is None or rule.notify_users is None or not entry.email:
            continue
        days_left = (entry.deadline - today).days
        reached = [days for days in rule.notify_users.before if days >= days_left]
        if days_left <= 0 or not reached:
            continue
        days = min(reached)
        fields = _fields(rule, entry.name or entry.user_id) | {
            "deadline": entry.deadline.isoformat(),
            "days": "tomorrow" if days_left == 1 else f"in {days_left} days",
            "date": today.isoformat(),
        }
        key = user_key(entry.userpool_id, entry.user_id, rule.name, f"{BEFORE}-{days}d", entry.deadline.isoformat())
        notices.append(Notice(key=key, kind=BEFORE, channel=EMAIL, recipient=entry.email, fields=fields))
    return notices


def on_enforce_notices(decision: Decision, policy: Policy, *, today: date) -> list[Notice]:
    """The notices a decision calls for: one per rule with ``on_enforce`` that this decision wrote (GenAuth
    read back the factors when writes are verified), to the address on record; once per user and rule."""
    if decision.action != Action.ENFORCED or not decision.email:
        return []
    notices = []
    for name, label in decision.outcomes.items():
        rule = _notifying(policy, name)
        if rule is None or rule.notify_users is None or not rule.notify_users.on_enforce:
            continue
        if not label.startswith("enforce"):
            continue
        fields = _fields(rule, decision.username or decision.user_id) | {"date": today.isoformat()}
        key = user_key(decision.userpool_id, decision.user_id, name, ON_ENFORCE, "-")
        notices.append(Notice(key=key, kind=ON_ENFORCE, channel=EMAIL, recipient=decision.email, fields=fields))
    return notices


def _notifying(policy: Policy, name: str) -> Rule | None:
    return next((rule for rule in policy.notifying_rules if rule.name == name), None)


def _fields(rule: Rule, name: str) -> dict[str, str]:
    return {
        "name": name,
        "rule": rule.name,
        "description": rule.description,
        "factors": " and ".join(rule.require_mfa),
        "ready": "; ".join(READY[factor] for factor in rule.require_mfa),
    }
