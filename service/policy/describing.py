"""Rules in words, as ``policy check`` prints them: one line per rule, one more per exception, e.g.
``finance-sms (enforce): users with departments any of [finance], not (groups any of [contractors]) must
have SMS (fallback EMAIL)``.
"""

from __future__ import annotations

from datetime import date

from service.policy.conditions import describe_match
from service.policy.rules import Exemption, Rule


def describe_rule(rule: Rule, *, today: date | None = None) -> list[str]:
    """The rule's line, then one indented line per exception (marked expired when ``today`` is past it)."""
    fallback = f" (fallback {', '.join(rule.fallback)})" if rule.fallback else ""
    lines = [
        f"{rule.name} ({rule.mode}): users with {describe_match(rule.match)} "
        f"must have {', '.join(rule.require_mfa)}{fallback}"
    ]
    lines += [f"  {_describe_exemption(exemption, today)}" for exemption in rule.exceptions]
    return lines


def _describe_exemption(exemption: Exemption, today: date | None) -> str:
    who = []
    if exemption.users:
        who.append(f"users [{', '.join(exemption.users)}]")
    if exemption.groups:
        who.append(f"groups [{', '.join(exemption.groups)}]")
    until = ""
    if exemption.expires is not None:
        expired = " (expired)" if today is not None and exemption.is_expired(today) else ""
        until = f" until {exemption.expires}{expired}"
    return f"except {' and '.join(who)}{until}: {exemption.reason}"
