"""What each rule would do to one user, given the user's current MFA data: the per-rule outcome.

``rule_outcomes(evaluation, facts, enabled, mfa_phone, mfa_email)`` is pure. The enforcer uses it for the
decision record and the report, and ``policy test`` compares it with the expectations of a test suite.
For each rule, in file order, the ``Outcome`` is one of:

- ``not-matched``: the rule does not match the user.
- ``exempt``: it matches, but one of its exceptions covers the user.
- ``compliant``: every factor it requires is already enabled, or (for a factor the user cannot be given)
  one of its fallbacks is.
- ``enforce [X, Y]``: enabling X and Y makes the user compliant with it; ``add`` lists them.
- ``unsatisfiable [X]``: X is required, the user cannot be given it, and no fallback can stand in.
  ``add`` still lists the factors that could be enabled; ``unsatisfiable`` says why X cannot.

Factor by factor, for a required factor that is not enabled yet:

1. if the user can be given it, it is added: SMS needs a phone number (the MFA phone, else the profile
   phone); EMAIL needs an address (the MFA email, else the profile email); OTP and FACE need nothing;
2. otherwise, if one of the rule's fallbacks is already enabled, that one stands in (nothing is added);
3. otherwise the first fallback, in the rule's order, that the user can be given stands in and is added;
4. otherwise the factor is unsatisfiable.

An outcome's ``label`` reads as test suites write expectations: ``enforce [EMAIL] (fallback for SMS)``.
The outcome does not depend on ``mode``: an audit rule's ``enforce`` is what it would do; ``mode`` is
carried so callers can tell ``enforced`` from ``would-enforce``. ``factors_to_add`` unites the ``add`` of
the outcomes in one mode: what to write with ``set-mfa-status`` (enforce) or report only (audit).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from service.policy.evaluation import Evaluation, RuleResult
from service.policy.facts import UserFacts
from service.policy.rules import FACTORS

#: The outcome kinds, in the order a report lists them.
OUTCOME_KINDS: tuple[str, ...] = ("not-matched", "exempt", "compliant", "enforce", "unsatisfiable")

NO_PHONE = "no phone number on record"
NO_EMAIL = "no email address on record"


@dataclass(frozen=True)
class Outcome:
    """What one rule would do to one user.

    ``add``: factors to enable, in ``FACTORS`` order. ``fallbacks``: required factor -> the fallback that
    stands in for it. ``unsatisfiable``: required factor -> why the user cannot be given it (nor any of its
    fallbacks). ``exemption``: the evaluation's exemption text, for ``exempt``.
    """

    rule: str
    kind: str
    mode: str = "enforce"
    add: tuple[str, ...] = ()
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    unsatisfiable: Mapping[str, str] = field(default_factory=dict)
    exemption: str | None = None

    @property
    def label(self) -> str:
        """``not-matched``, ``exempt``, ``compliant``, ``enforce [SMS]``, ``unsatisfiable [SMS]``, with
        `` (fallback for SMS)`` when a fallback stands in."""
        text = self.kind
        if self.kind == "enforce":
            text += f" [{', '.join(self.add)}]"
        elif self.kind == "unsatisfiable":
            text += f" [{', '.join(self.unsatisfiable)}]"
        if self.fallbacks and self.kind in ("compliant", "enforce"):
            text += f" (fallback for {', '.join(self.fallbacks)})"
        return text

    @property
    def details(self) -> tuple[str, ...]:
        """Lines that explain the label: substitutions, why a factor cannot be given, the exemption."""
        lines = [f"{fallback} stands in for {factor}" for factor, fallback in self.fallbacks.items()]
        lines += [f"{factor}: {why}" for factor, why in self.unsatisfiable.items()]
        if self.exemption:
            lines.append(self.exemption)
        return tuple(lines)


def rule_outcomes(
    evaluation: Evaluation,
    facts: UserFacts,
    enabled: Collection[str],
    mfa_phone: str | None = None,
    mfa_email: str | None = None,
) -> dict[str, Outcome]:
    """Rule name -> ``Outcome`` for every rule of ``evaluation``, in file order.

    ``enabled`` holds the factors enabled now (``get-mfa-status``: entries with status 1); ``mfa_phone`` and
    ``mfa_email`` the MFA contacts stored there (the profile's ``facts.phone``/``facts.email`` count too).
    """
    current = {factor.upper() for factor in enabled}
    return {
        result.rule: _outcome(result, facts, current, mfa_phone=mfa_phone, mfa_email=mfa_email)
        for result in evaluation.results
    }


def factors_to_add(outcomes: Iterable[Outcome], mode: str = "enforce") -> tuple[str, ...]:
    """The factors the outcomes of rules in ``mode`` add, united, in ``FACTORS`` order."""
    wanted = {factor for outcome in outcomes if outcome.mode == mode for factor in outcome.add}
    return tuple(factor for factor in FACTORS if factor in wanted)


def contact_problem(
    factor: str, facts: UserFacts, mfa_phone: str | None = None, mfa_email: str | None = None
) -> str | None:
    """Why the user cannot be given ``factor`` (no phone for SMS, no address for EMAIL), or None if they can."""
    if factor == "SMS" and not (_has_text(mfa_phone) or _has_text(facts.phone)):
        return NO_PHONE
    if factor == "EMAIL" and not (_has_text(mfa_email) or _has_text(facts.email)):
        return NO_EMAIL
    return None


def _outcome(
    result: RuleResult, facts: UserFacts, enabled: set[str], *, mfa_phone: str | None, mfa_email: str | None
) -> Outcome:
    if not result.matched:
        return Outcome(rule=result.rule, kind="not-matched", mode=result.mode)
    if result.exempt:
        return Outcome(rule=result.rule, kind="exempt", mode=result.mode, exemption=result.exemption)
    add: set[str] = set()
    fallbacks: dict[str, str] = {}
    unsatisfiable: dict[str, str] = {}
    for factor in result.require_mfa:
        if factor in enabled:
            continue
        problem = contact_problem(factor, facts, mfa_phone, mfa_email)
        if problem is None:
            add.add(factor)
            continue
        stand_in = next((fallback for fallback in result.fallback if fallback in enabled), None)
        if stand_in is None:
            stand_in = next(
                (fb for fb in result.fallback if contact_problem(fb, facts, mfa_phone, mfa_email) is None), None
            )
            if stand_in is not None:
                add.add(stand_in)
        if stand_in is not None:
            fallbacks[factor] = stand_in
            continue
        tried = [f"{fb}: {contact_problem(fb, facts, mfa_phone, mfa_email)}" for fb in result.fallback]
        unsatisfiable[factor] = problem + (f"; fallback {', '.join(tried)}" if tried else "")
    kind = "unsatisfiable" if unsatisfiable else "enforce" if add else "compliant"
    return Outcome(
        rule=result.rule,
        kind=kind,
        mode=result.mode,
        add=tuple(factor for factor in FACTORS if factor in add),
        fallbacks=fallbacks,
        unsatisfiable=unsatisfiable,
    )


def _has_text(value: str | None) -> bool:
    return isinstance(value, str) and bool(value.strip())
