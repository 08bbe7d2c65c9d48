"""Rules in words, as ``policy check`` prints them: one line per rule, one more per exception, e.g.
``finance-sms (enforce): users with departments any of [finance], not (groups any of [contractors]) must
have SMS (fallback EMAIL)``.
"""

from __future__ import annotations

from datetime import date

from service.policy.matching import role_label, show
from service.policy.rules import Exemption, Match, Rule, ValueTest


def describe_rule(rule: Rule, *, today: date | None = None) -> list[str]:
    """The rule's line, then one indented line per exception (marked expired when ``today`` is past it)."""
    fallback = f" (fallback {', '.join(rule.fallback)})" if rule.fallback else ""
    lines = [
        f"{rule.name} ({rule.mode}): users with {describe_match(rule.match)} "
        f"must have {', '.join(rule.require_mfa)}{fallback}"
    ]
    lines += [f"  {_describe_exemption(exemption, today)}" for exemption in rule.exceptions]
    return lines


def describe_match(match: Match) -> str:
    """``departments any of [finance], groups any of [contractors], customData.level in [L5, L6]``."""
    parts: list[str] = []
    if match.departments:
        direct = "" if match.include_subdepartments else " (direct members only)"
        parts.append(f"departments any of [{', '.join(match.departments)}]{direct}")
    if match.groups:
        parts.append(f"groups any of [{', '.join(match.groups)}]")
    if match.roles:
        parts.append(f"roles any of [{', '.join(role_label(role) for role in match.roles)}]")
    if match.email_domains:
        parts.append(f"email_domains any of [{', '.join(match.email_domains)}]")
    if match.status:
        parts.append(f"status any of [{', '.join(match.status)}]")
    if match.external_id is not None:
        parts.append(_describe_test("externalId", match.external_id))
    if match.user_source_type:
        parts.append(f"userSourceType any of [{', '.join(match.user_source_type)}]")
    if match.register_source:
        parts.append(f"registerSource any of [{', '.join(match.register_source)}]")
    parts += [_describe_test(f"customData.{key}", test) for key, test in match.custom_data]
    if match.all_of:
        parts.append(f"all of ({'; '.join(describe_match(block) for block in match.all_of)})")
    if match.any_of:
        parts.append(f"any of ({'; '.join(describe_match(block) for block in match.any_of)})")
    if match.negated is not None:
        parts.append(f"not ({describe_match(match.negated)})")
    return ", ".join(parts)


def _describe_test(subject: str, test: ValueTest) -> str:
    if test.operator == "exists":
        return f"{subject} {'set' if test.present else 'not set'}"
    if test.operator == "equals":
        return f"{subject} = {show(test.values[0])}"
    return f"{subject} in [{', '.join(show(value) for value in test.values)}]"


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
