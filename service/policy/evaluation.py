"""The decision: given the policy and what is known about one user, which MFA factors must the user have?

Pure and deterministic; the worker calls ``evaluate`` after gathering the facts ``policy.needs`` names (and
the roles in ``policy.role_namespaces``), passing today's date for exception expiry, and records the
returned ``Evaluation`` (rules matched, why, exemptions, factors required) as the decision.

Per rule: the match decides whether the rule applies (see ``conditions`` for how each condition compares).
A matching rule whose exception covers the user (listed by id, or a member of a listed group, and not past
its ``expires`` date) is *exempt*: it counts as matched but contributes no factors. What each rule then does
(which factors to enable, which fallback stands in) needs the user's current MFA data, so it is decided by
``outcomes.rule_outcomes``, not here: the evaluation only carries the declarations.

A matching rule with a rollout (``rollout``: ``enforce_from``, ``waves``, ``grace``) carries the user's deadline
(``RuleResult.schedule``) and, before it, ``pending``: its factors are not written yet.

Before any rule, the policy's ``protected`` block (``Protection``): a user it names (by id, username or email)
or a member of a group it lists is ``Evaluation.protected``, and the enforcer writes nothing for them whatever
the rules say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from service.policy.conditions import CONDITIONS, judge
from service.policy.errors import MissingFactError
from service.policy.facts import Fact, UserFacts
from service.policy.rollout import Schedule, Sighting, schedule
from service.policy.rules import Exemption, Policy, Protection, Rule


@dataclass(frozen=True)
class RuleResult:
    """How one rule judged the user, with the reasons in words (why it matched, or why not).

    ``mode`` is the mode the rule counted in: its own, or ``audit`` when the evaluation forced it;
    ``require_mfa`` and ``fallback`` repeat the rule's factors so a decision record reads on its own.
    ``exempt`` rules matched (``matched`` is True) but an exception covers the user; ``exemption`` says which
    and why. ``expired_exemptions`` lists exceptions that would have covered the user but have expired.
    """

    rule: str
    matched: bool
    reasons: tuple[str, ...]
    mode: str = "enforce"
    require_mfa: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    """The applications the rule is about (``Rule.apps``): where its factors must be effective."""
    exempt: bool = False
    exemption: str | None = None
    expired_exemptions: tuple[str, ...] = ()
    schedule: Schedule | None = None
    """The user's deadline under the rule's rollout and where it came from (None: no rollout, or not matched)."""
    pending: bool = False
    """True before that deadline: the rule writes nothing for the user yet (``outcomes``: ``pending``)."""

    @property
    def applies(self) -> bool:
        """True when the rule matched and no exception covers the user: its factors count."""
        return self.matched and not self.exempt


@dataclass(frozen=True)
class Evaluation:
    """The decision for one user: how each rule of the policy, in file order, judged them."""

    user_id: str
    results: tuple[RuleResult, ...]
    protected: str | None = None
    """``protected: <reason> (user <who>)`` when the policy's ``protected`` block names the user: nothing is written."""


def evaluate(
    policy: Policy,
    facts: UserFacts,
    *,
    today: date,
    force_audit: bool = False,
    sightings: Mapping[str, Sighting] | None = None,
) -> Evaluation:
    """Decide which factors ``facts.user_id`` must have.

    ``today`` decides which exceptions have expired and whether a rule's rollout has reached the user (the
    caller passes the date; this function reads no clock). ``sightings``: per rule, what the store holds of
    when the user was first seen in its scope (``rollout.Sighting``; a rule missing: first seen today).
    ``force_audit`` counts every rule as audit-only. Raises ``MissingFactError`` when a rule needs a fact that
    ``facts`` does not carry.
    """
    _check_facts(policy, facts)
    seen = sightings or {}
    results = tuple(
        _judge(rule, facts, today=today, force_audit=force_audit, sighting=seen.get(rule.name)) for rule in policy.rules
    )
    protected = protected_reason(policy.protected, facts) if policy.rules else None  # no rules: nothing to write
    return Evaluation(user_id=facts.user_id, results=results, protected=protected)


def protected_reason(protection: Protection | None, facts: UserFacts) -> str | None:
    """``protected: <reason> (user <entry>)`` or ``(group <code>)`` when ``protection`` names the user, else
    None. Ids compare exactly; usernames, emails and group codes ignoring case. ``MissingFactError`` when the
    block lists groups and ``facts`` carries none (``Policy.needs`` asks for them)."""
    if protection is None:
        return None
    if facts.user_id in protection.users:
        return f"protected: {protection.reason} (user {facts.user_id})"
    names = {name.strip().casefold() for name in (facts.username, facts.email) if name}
    for entry in protection.users:
        if entry.strip().casefold() in names:
            return f"protected: {protection.reason} (user {entry})"
    if protection.groups:
        if facts.groups is None:
            raise MissingFactError(Fact.GROUPS, rule="protected", user_id=facts.user_id)
        held = {code.strip().casefold() for code in facts.groups}
        for code in protection.groups:
            if code.strip().casefold() in held:
                return f"protected: {protection.reason} (group {code})"
    return None


def _check_facts(policy: Policy, facts: UserFacts) -> None:
    # Checked up front, not when a rule reaches the fact: whether the error shows must not depend on
    # whether an earlier condition of the rule already failed.
    for rule in policy.rules:
        for fact in sorted(rule.needs, key=[c.fact for c in CONDITIONS].index):
            if facts.fetched.get(fact) is None:
                raise MissingFactError(fact, rule=rule.name, user_id=facts.user_id)


def _judge(rule: Rule, facts: UserFacts, *, today: date, force_audit: bool, sighting: Sighting | None) -> RuleResult:
    matched, reasons = judge(rule.match, facts)
    planned = schedule(rule.rollout, facts, today=today, sighting=sighting) if matched else None
    exemption: str | None = None
    expired: list[str] = []
    if matched:
        for exception in rule.exceptions:
            subject = _covers(exception, facts)
            if subject is None:
                continue
            if exception.is_expired(today):
                expired.append(f"exception expired {exception.expires}: {exception.reason} ({subject})")
            elif exemption is None:
                until = f" until {exception.expires}" if exception.expires else ""
                exemption = f"exempt{until}: {exception.reason} ({subject})"
    return RuleResult(
        rule=rule.name,
        matched=matched,
        reasons=tuple(reasons),
        mode="audit" if force_audit else rule.mode,
        require_mfa=rule.require_mfa,
        fallback=rule.fallback,
        apps=rule.apps,
        exempt=exemption is not None,
        exemption=exemption,
        expired_exemptions=tuple(expired),
        schedule=planned,
        pending=planned is not None and planned.is_pending(today),
    )


def _covers(exception: Exemption, facts: UserFacts) -> str | None:
    """``user <id>`` or ``group <code>`` when ``exception`` names the user, else None."""
    if facts.user_id in exception.users:
        return f"user {facts.user_id}"
    held = {code.strip().casefold() for code in facts.groups or ()}
    for code in exception.groups:
        if code.strip().casefold() in held:
            return f"group {code}"
    return None
