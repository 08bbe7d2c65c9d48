"""The decision: given the policy and what is known about one user, which MFA factors must the user have?

Pure and deterministic; the worker calls ``evaluate`` after gathering the facts ``facts_needed`` names, and
records the returned ``Evaluation`` (rules matched, why, factors required) as the decision.

Matching, per rule (every key given must hold; each list means any-of):

- ``departments``: a selector matches a department of the user by id (exact), code or name (case-insensitive),
  or matches one of that department's ancestors the same way, so members of sub-departments are included.
- ``email_domains``: the domain of the user's email equals one of them, ignoring case. Subdomains do not
  match (``eu.corp.example.com`` is not ``corp.example.com``): a rule lists every domain it means.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.policy.errors import MissingFactError
from service.policy.facts import Department, Fact, UserFacts
from service.policy.rules import FACTORS, Match, Policy, Rule


@dataclass(frozen=True)
class RuleResult:
    """How one rule judged the user, with the reasons in words (why it matched, or why not).

    ``mode`` is the mode the rule counted in: its own, or ``audit`` when the evaluation forced it;
    ``require_mfa`` repeats the rule's factors so a decision record reads on its own.
    """

    rule: str
    matched: bool
    reasons: tuple[str, ...]
    mode: str = "enforce"
    require_mfa: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """The decision for one user.

    ``required`` holds the factors of matched enforce-mode rules; ``audit_only`` those that only matched
    audit-mode rules want (never repeating ``required``). Both are ordered as ``FACTORS``.
    """

    user_id: str
    results: tuple[RuleResult, ...]
    required: tuple[str, ...]
    audit_only: tuple[str, ...]

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """Names of the rules that matched, in file order."""
        return tuple(result.rule for result in self.results if result.matched)


def facts_needed(policy: Policy) -> frozenset[Fact]:
    """The facts to gather for a user before ``evaluate``; the user record alone needs none."""
    return policy.needs


def evaluate(policy: Policy, facts: UserFacts, *, force_audit: bool = False) -> Evaluation:
    """Decide which factors ``facts.user_id`` must have. ``force_audit`` counts every rule as audit-only.

    Raises ``MissingFactError`` when a rule needs a fact that ``facts`` does not carry.
    """
    _check_facts(policy, facts)
    results = tuple(_judge(rule, facts, force_audit=force_audit) for rule in policy.rules)
    enforced = {f for result in results if result.matched and result.mode == "enforce" for f in result.require_mfa}
    audited = {f for result in results if result.matched and result.mode == "audit" for f in result.require_mfa}
    return Evaluation(
        user_id=facts.user_id,
        results=results,
        required=tuple(factor for factor in FACTORS if factor in enforced),
        audit_only=tuple(factor for factor in FACTORS if factor in audited - enforced),
    )


def _check_facts(policy: Policy, facts: UserFacts) -> None:
    # Checked up front, not when a rule reaches the fact: whether the error shows must not depend on
    # whether an earlier key of the rule already failed.
    for rule in policy.rules:
        if Fact.DEPARTMENTS in rule.needs and facts.departments is None:
            raise MissingFactError(Fact.DEPARTMENTS, rule=rule.name, user_id=facts.user_id)


def _judge(rule: Rule, facts: UserFacts, *, force_audit: bool) -> RuleResult:
    held: list[str] = []
    failed: list[str] = []
    for holds, reasons in _conditions(rule.match, facts):
        (held if holds else failed).extend(reasons)
    return RuleResult(
        rule=rule.name,
        matched=not failed,
        reasons=tuple(failed or held),
        mode="audit" if force_audit else rule.mode,
        require_mfa=rule.require_mfa,
    )


def _conditions(match: Match, facts: UserFacts) -> list[tuple[bool, list[str]]]:
    """Each key the match gives, as (holds, reasons)."""
    conditions: list[tuple[bool, list[str]]] = []
    if match.departments:
        assert facts.departments is not None  # guaranteed by _check_facts
        conditions.append(_match_departments(match.departments, facts.departments))
    if match.email_domains:
        conditions.append(_match_email_domain(match.email_domains, facts.email))
    return conditions


def _match_departments(selectors: tuple[str, ...], departments: tuple[Department, ...]) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    for department in departments:
        reason = _department_reason(selectors, department)
        if reason is not None and reason not in reasons:
            reasons.append(reason)
    if reasons:
        return True, reasons
    return False, [f"not in any of departments [{', '.join(selectors)}]"]


def _department_reason(selectors: tuple[str, ...], department: Department) -> str | None:
    """Why ``department`` is selected, preferring the department itself over its ancestors."""
    for selector in selectors:
        if _is_selected(selector, (department.department_id,), (department.code, department.name)):
            return f"department {selector}"
    for selector in selectors:
        if _is_selected(selector, department.ancestor_ids, (*department.ancestor_codes, *department.ancestor_names)):
            return f"department {selector} (via ancestor of {_label(department)})"
    return None


def _is_selected(selector: str, ids: tuple[str, ...], codes_and_names: tuple[str | None, ...]) -> bool:
    """Ids compare exactly (they are opaque); codes and names ignoring case and surrounding spaces."""
    folded = selector.strip().casefold()
    return selector in ids or any(text is not None and text.strip().casefold() == folded for text in codes_and_names)


def _label(department: Department) -> str:
    return department.code or department.name or department.department_id


def _match_email_domain(domains: tuple[str, ...], email: str | None) -> tuple[bool, list[str]]:
    local, at, domain = (email or "").strip().rpartition("@")
    if not (local and at and domain):
        return False, [f"no email address, so not in any of email domains [{', '.join(domains)}]"]
    domain = domain.casefold()
    if domain in {allowed.casefold() for allowed in domains}:
        return True, [f"email domain {domain}"]
    return False, [f"email domain {domain} is not one of [{', '.join(domains)}]"]
