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
  ``add`` still lists the factors that could be enabled; ``unsatisfiable`` says why X cannot. Past the user's
  deadline under a rule with a rollout the label adds ``(overdue since <date>)``.
- ``pending [X] until <date> (<where the date came from>)``: the rule would enforce X, but its rollout has
  not reached the user yet (``rollout``): nothing is added (``deferred`` lists X).

Factor by factor, for a required factor that is not enabled yet:

1. if the user can be given it, it is added: SMS needs a phone number (the MFA phone, else the profile
   phone); EMAIL needs an address (the MFA email, else the profile email); OTP and FACE need nothing.
   A contact counts only when it is well-formed (a phone in E.164 form or with its country code, an address
   with a domain) and, for the profile's contact, not marked unverified by GenAuth (``phoneVerified`` /
   ``emailVerified`` false): codes sent to a number nobody proved they hold protect nothing;
2. otherwise, if one of the rule's fallbacks is already enabled, that one stands in (nothing is added);
3. otherwise the first fallback, in the rule's order, that the user can be given stands in and is added;
4. otherwise the factor is unsatisfiable.

An outcome's ``label`` reads as test suites write expectations: ``enforce [EMAIL] (fallback for SMS)``.
The outcome does not depend on ``mode``: an audit rule's ``enforce`` is what it would do; ``mode`` is
carried so callers can tell ``enforced`` from ``would-enforce``. ``factors_to_add`` unites the ``add`` of
the outcomes in one mode: what to write with ``set-mfa-status`` (enforce) or report only (audit).

``action_of`` sums up a decision's outcomes as an ``Action``; the vocabulary itself (``OutcomeKind``,
``Action``, ``Bucket``) is ``service.vocabulary``, which the store's report reads too.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from service.policy.evaluation import Evaluation, RuleResult
from service.policy.facts import UserFacts
from service.policy.rollout import Schedule
from service.policy.rules import FACTORS
from service.vocabulary import Action, OutcomeKind, overdue_label, pending_label


def action_of(outcomes: Iterable[Outcome], *, wrote: bool, would: bool) -> Action:
    """A decision's action from its rules' outcomes, whether factors were written, and whether audit rules
    would enable some."""
    kinds = {outcome.kind for outcome in outcomes}
    if OutcomeKind.UNSATISFIABLE in kinds:
        return Action.UNSATISFIABLE
    if wrote:
        return Action.ENFORCED
    if would:
        return Action.WOULD_ENFORCE
    if OutcomeKind.PENDING in kinds:
        return Action.PENDING
    if kinds - {OutcomeKind.NOT_MATCHED} == {OutcomeKind.PROTECTED}:
        return Action.PROTECTED
    if kinds - {OutcomeKind.NOT_MATCHED} == {OutcomeKind.EXEMPT}:
        return Action.EXEMPT
    return Action.NONE


NO_PHONE = "no phone number on record"
NO_EMAIL = "no email address on record"
PHONE_NOT_VERIFIED = "phone not verified"
EMAIL_NOT_VERIFIED = "email address not verified"
PHONE_MALFORMED = "phone number is not well-formed (it needs its country code, or E.164 like +8613800138000)"
EMAIL_MALFORMED = "email address is not well-formed (it needs a domain, like name@example.com)"
MFA_PHONE_MALFORMED = "the MFA phone stored in GenAuth is not well-formed (it needs its country code, or E.164)"
MFA_EMAIL_MALFORMED = "the MFA email stored in GenAuth is not well-formed (it needs a domain)"

_E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
_NATIONAL_NUMBER = re.compile(r"[0-9]{4,14}\Z")
_COUNTRY_CODE = re.compile(r"\+?[1-9][0-9]{0,3}\Z")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+\Z")


@dataclass(frozen=True)
class Outcome:
    """What one rule would do to one user.

    ``add``: factors to enable, in ``FACTORS`` order. ``fallbacks``: required factor -> the fallback that
    stands in for it. ``unsatisfiable``: required factor -> why the user cannot be given it (nor any of its
    fallbacks). ``exemption``: the evaluation's exemption text, for ``exempt``.
    """

    rule: str
    kind: OutcomeKind
    mode: str = "enforce"
    add: tuple[str, ...] = ()
    fallbacks: Mapping[str, str] = field(default_factory=dict)
    unsatisfiable: Mapping[str, str] = field(default_factory=dict)
    exemption: str | None = None
    deferred: tuple[str, ...] = ()
    """For ``pending``: the factors the rule will add at the user's deadline (``add`` stays empty)."""
    schedule: Schedule | None = None
    """For ``pending``, the user's deadline and where it came from; otherwise the deadline an enforce-mode rule
    has passed (an ``unsatisfiable`` user is then overdue); None: no rollout, or no such deadline."""

    @property
    def label(self) -> str:
        """``not-matched``, ``exempt``, ``compliant``, ``enforce [SMS]``, ``unsatisfiable [SMS]``,
        ``pending [SMS] until 2027-01-15 (enforce_from)``, with `` (fallback for SMS)`` when a fallback stands
        in, and `` (overdue since 2027-01-15)`` on ``unsatisfiable`` past the user's deadline."""
        text = str(self.kind)
        if self.kind == OutcomeKind.ENFORCE:
            text += f" [{', '.join(self.add)}]"
        elif self.kind == OutcomeKind.UNSATISFIABLE:
            text += f" [{', '.join(self.unsatisfiable)}]"
        elif self.kind == OutcomeKind.PENDING and self.schedule is not None:
            text += f" [{', '.join(self.deferred)}] {pending_label(self.schedule.deadline, self.schedule.source)}"
        if self.fallbacks and self.kind in (OutcomeKind.COMPLIANT, OutcomeKind.ENFORCE):
            text += f" (fallback for {', '.join(self.fallbacks)})"
        if self.kind == OutcomeKind.UNSATISFIABLE and self.schedule is not None:
            text += f" ({overdue_label(self.schedule.deadline)})"
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
    mfa_phone_country_code: str | None = None,
) -> dict[str, Outcome]:
    """Rule name -> ``Outcome`` for every rule of ``evaluation``, in file order.

    ``enabled`` holds the factors enabled now (``get-mfa-status``: entries with status 1); ``mfa_phone``,
    ``mfa_phone_country_code`` and ``mfa_email`` the MFA contacts stored there (the profile's
    ``facts.phone``/``facts.email`` count when none is stored). A user the policy protects is ``protected``
    under every rule that matches them, adding nothing.
    """
    current = {factor.upper() for factor in enabled}
    contacts = _Contacts(mfa_phone, mfa_email, mfa_phone_country_code)
    protected = evaluation.protected
    return {
        result.rule: Outcome(result.rule, OutcomeKind.PROTECTED, mode=result.mode, exemption=protected)
        if protected is not None and result.matched
        else _outcome(result, facts, current, contacts)
        for result in evaluation.results
    }


def factors_to_add(outcomes: Iterable[Outcome], mode: str = "enforce") -> tuple[str, ...]:
    """The factors the outcomes of rules in ``mode`` add, united, in ``FACTORS`` order."""
    wanted = {factor for outcome in outcomes if outcome.mode == mode for factor in outcome.add}
    return tuple(factor for factor in FACTORS if factor in wanted)


def contact_problem(
    factor: str,
    facts: UserFacts,
    mfa_phone: str | None = None,
    mfa_email: str | None = None,
    mfa_phone_country_code: str | None = None,
) -> str | None:
    """Why the user cannot be given ``factor``, or None if they can.

    SMS goes to the MFA phone when one is stored (it is never replaced), else to the profile phone; EMAIL
    likewise. The contact must be well-formed, and the profile's must not be marked unverified.
    """
    if factor == "SMS":
        return _phone_problem(facts, mfa_phone, mfa_phone_country_code)
    if factor == "EMAIL":
        return _email_problem(facts, mfa_email)
    return None


def is_well_formed_phone(phone: str, country_code: str | None = None) -> bool:
    """E.164 (``+8613800138000``), or national digits with a country code (``13800138000`` and ``+86``)."""
    phone = phone.strip()
    if _E164.match(phone):
        return True
    return bool(
        _NATIONAL_NUMBER.match(phone)
        and country_code is not None
        and _COUNTRY_CODE.match(country_code.strip())
        and len(country_code.strip().lstrip("+")) + len(phone) <= 15
    )


def is_well_formed_email(address: str) -> bool:
    """``name@domain.tld``: one ``@``, no spaces, a domain with a dot."""
    return bool(_EMAIL.match(address.strip()))


def _phone_problem(facts: UserFacts, mfa_phone: str | None, mfa_country_code: str | None) -> str | None:
    if _has_text(mfa_phone):
        assert mfa_phone is not None
        is_profile_phone = _has_text(facts.phone) and mfa_phone.strip() == (facts.phone or "").strip()
        country_code = mfa_country_code if _has_text(mfa_country_code) else None
        if country_code is None and is_profile_phone:
            country_code = facts.phone_country_code
        if not is_well_formed_phone(mfa_phone, country_code):
            return MFA_PHONE_MALFORMED
        return PHONE_NOT_VERIFIED if is_profile_phone and facts.phone_verified is False else None
    if not _has_text(facts.phone):
        return NO_PHONE
    assert facts.phone is not None
    if not is_well_formed_phone(facts.phone, facts.phone_country_code):
        return PHONE_MALFORMED
    return PHONE_NOT_VERIFIED if facts.phone_verified is False else None


def _email_problem(facts: UserFacts, mfa_email: str | None) -> str | None:
    if _has_text(mfa_email):
        assert mfa_email is not None
        if not is_well_formed_email(mfa_email):
            return MFA_EMAIL_MALFORMED
        is_profile_email = mfa_email.strip().casefold() == (facts.email or "").strip().casefold()
        return EMAIL_NOT_VERIFIED if is_profile_email and facts.email_verified is False else None
    if not _has_text(facts.email):
        return NO_EMAIL
    assert facts.email is not None
    if not is_well_formed_email(facts.email):
        return EMAIL_MALFORMED
    return EMAIL_NOT_VERIFIED if facts.email_verified is False else None


@dataclass(frozen=True)
class _Contacts:
    """The MFA contacts stored in the user's trigger data."""

    phone: str | None
    email: str | None
    phone_country_code: str | None

    def problem(self, factor: str, facts: UserFacts) -> str | None:
        return contact_problem(factor, facts, self.phone, self.email, self.phone_country_code)


def _outcome(result: RuleResult, facts: UserFacts, enabled: set[str], contacts: _Contacts) -> Outcome:
    if not result.matched:
        return Outcome(rule=result.rule, kind=OutcomeKind.NOT_MATCHED, mode=result.mode)
    if result.exempt:
        return Outcome(rule=result.rule, kind=OutcomeKind.EXEMPT, mode=result.mode, exemption=result.exemption)
    add: set[str] = set()
    fallbacks: dict[str, str] = {}
    unsatisfiable: dict[str, str] = {}
    for factor in result.require_mfa:
        if factor in enabled:
            continue
        problem = contacts.problem(factor, facts)
        if problem is None:
            add.add(factor)
            continue
        stand_in = next((fallback for fallback in result.fallback if fallback in enabled), None)
        if stand_in is None:
            stand_in = next((fb for fb in result.fallback if contacts.problem(fb, facts) is None), None)
            if stand_in is not None:
                add.add(stand_in)
        if stand_in is not None:
            fallbacks[factor] = stand_in
            continue
        tried = [f"{fb}: {contacts.problem(fb, facts)}" for fb in result.fallback]
        unsatisfiable[factor] = problem + (f"; fallback {', '.join(tried)}" if tried else "")
    kind = OutcomeKind.UNSATISFIABLE if unsatisfiable else OutcomeKind.ENFORCE if add else OutcomeKind.COMPLIANT
    ordered = tuple(factor for factor in FACTORS if factor in add)
    if kind == OutcomeKind.ENFORCE and result.pending:  # before the user's deadline: nothing is written yet
        return Outcome(
            rule=result.rule,
            kind=OutcomeKind.PENDING,
            mode=result.mode,
            deferred=ordered,
            fallbacks=fallbacks,
            schedule=result.schedule,
        )
    return Outcome(
        rule=result.rule,
        kind=kind,
        mode=result.mode,
        add=ordered,
        fallbacks=fallbacks,
        unsatisfiable=unsatisfiable,
        # overdue (the label says so): past the deadline of a rule that enforces
        schedule=result.schedule if result.mode == "enforce" and not result.pending else None,
    )


def _has_text(value: str | None) -> bool:
    return isinstance(value, str) and bool(value.strip())
