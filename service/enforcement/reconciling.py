"""Reconcile one user against the policy and return the decision to record.

The worker calls ``Reconciler.reconcile`` for each claimed job. It reads the user's current state from GenAuth
(so the event that caused the job does not matter: level-triggered), evaluates the pure policy, works out
each matching rule's outcome (``service.policy.outcomes``: fallbacks, exemptions, unsatisfiable factors), and
writes ``set-mfa-status`` only when an enforce-mode rule needs a factor the user lacks. Temporary GenAuth
errors propagate to the worker, which retries; a user who no longer exists is a decision, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from service.enforcement.facts import gather_facts
from service.enforcement.merging import MergeResult, enabled_factors, merge_factors, ordered_factors
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthUserNotFoundError
from service.logs import log_event
from service.policy import Evaluation, Outcome, Policy, RuleResult, UserFacts, evaluate, factors_to_add, rule_outcomes
from service.store.decisions import Decision
from service.store.queue import Job

logger = logging.getLogger(__name__)


class Reconciler:
    """Brings one user in line with the policy; one instance per worker thread (it owns a client)."""

    def __init__(
        self,
        client: GenAuthClient,
        get_policy: Callable[[], Policy],
        *,
        force_audit: bool,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self.client = client
        self.get_policy = get_policy
        self.force_audit = force_audit
        self.today = today
        """Today's date (UTC) for exception expiry; tests pass a fixed one."""

    def preview(self, userpool_id: str, user_id: str, *, trigger: str = "preview") -> Decision:
        """What reconciling the user would decide, with nothing written (``enforced`` reads ``would-enforce``)."""
        job = Job(
            id=0,
            userpool_id=userpool_id,
            user_id=user_id,
            version=0,
            attempts=0,
            reason=trigger,
            first_enqueued_at=0.0,
        )
        return self.reconcile(job, dry_run=True)

    def plan(self, user_id: str, *, dry_run: bool = False) -> Plan:
        """Everything reconciling the user would read and decide, without writing anything."""
        policy = self.get_policy()
        is_audit = self.force_audit or dry_run
        facts = gather_facts(self.client, user_id, policy)
        evaluation = evaluate(policy, facts, force_audit=self.force_audit, today=self.today())
        matched = tuple(result for result in evaluation.results if result.matched)
        if not matched:
            return Plan(facts=facts, evaluation=evaluation, matched=(), is_audit=is_audit)
        current = self.client.get_mfa_status(user_id)
        before = enabled_factors(current)
        mfa_phone, mfa_email = _text(current.get("mfaPhone")), _text(current.get("mfaEmail"))
        outcomes = rule_outcomes(evaluation, facts, before, mfa_phone=mfa_phone, mfa_email=mfa_email)
        to_enforce = () if is_audit else factors_to_add(outcomes.values(), "enforce")
        wanted = {*factors_to_add(outcomes.values(), "audit"), *factors_to_add(outcomes.values(), "enforce")}
        to_audit = tuple(factor for factor in ordered_factors(wanted) if factor not in to_enforce)
        return Plan(
            facts=facts,
            evaluation=evaluation,
            matched=matched,
            is_audit=is_audit,
            current=current,
            outcomes=outcomes,
            to_audit=to_audit,
            merged=merge_factors(current, to_enforce, facts),
        )

    def reconcile(self, job: Job, *, dry_run: bool = False) -> Decision:
        try:
            plan = self.plan(job.user_id, dry_run=dry_run)
        except GenAuthUserNotFoundError:
            plan = None
        if plan is not None and plan.merged is not None and plan.merged.is_changed:
            self.client.set_mfa_status(job.user_id, plan.merged.trigger_data)
            log_event(logger, "mfa_enforced", user_id=job.user_id, factors=list(plan.merged.added))
        return decision_of(plan, job, is_audit=self.force_audit or dry_run)


@dataclass(frozen=True)
class Plan:
    """What the policy says about one user and what enforcing it would change (read, not yet written)."""

    facts: UserFacts
    evaluation: Evaluation
    matched: tuple[RuleResult, ...]
    is_audit: bool
    current: dict[str, Any] = field(default_factory=dict)
    """The MFA trigger data read from GenAuth (empty when no rule matched: not read)."""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    to_audit: tuple[str, ...] = ()
    merged: MergeResult | None = None
    """The object ``set-mfa-status`` would receive; ``merged.added`` are the factors it enables."""


def decision_of(plan: Plan | None, job: Job, *, is_audit: bool) -> Decision:
    """The decision record for a plan (None: the user no longer exists)."""

    def decide(action: str, reason: str, **values: Any) -> Decision:
        return Decision(
            userpool_id=job.userpool_id,
            user_id=job.user_id,
            trigger=job.reason,
            mode="audit" if is_audit else "enforce",
            attempt=job.attempts,
            action=action,
            reason=reason,
            rules=values.get("rules", ()),
            required=values.get("required", ()),
            before=values.get("before", ()),
            after=values.get("after", ()),
            outcomes=values.get("outcomes", {}),
        )

    if plan is None:
        return decide("none", "the user does not exist in GenAuth (deleted?)")
    if not plan.matched or plan.merged is None:
        return decide("none", "no rule matches this user")
    matched, outcomes, merged = plan.matched, plan.outcomes, plan.merged
    return decide(
        _action(outcomes.values(), wrote=merged.is_changed, would=bool(plan.to_audit)),
        _reason(
            matched_outcomes=[outcomes[result.rule] for result in matched],
            reasons={result.rule: result.reasons for result in matched},
            wrote=merged.added,
            would=plan.to_audit,
        ),
        rules=tuple(result.rule for result in matched),
        required=ordered_factors({f for result in matched if not result.exempt for f in result.require_mfa}),
        before=merged.before,
        after=enabled_factors(merged.trigger_data),
        outcomes={result.rule: outcomes[result.rule].label for result in matched},
    )


def _action(outcomes: Iterable[Outcome], *, wrote: bool, would: bool) -> str:
    kinds = {outcome.kind for outcome in outcomes}
    if "unsatisfiable" in kinds:
        return "unsatisfiable"
    if wrote:
        return "enforced"
    if would:
        return "would-enforce"
    if kinds - {"not-matched"} == {"exempt"}:
        return "exempt"
    return "none"


def _reason(
    *,
    matched_outcomes: list[Outcome],
    reasons: dict[str, tuple[str, ...]],
    wrote: tuple[str, ...],
    would: tuple[str, ...],
) -> str:
    """One sentence per matching rule (why it matched, its outcome), then what was done."""
    parts = []
    for outcome in matched_outcomes:
        why = ", ".join(reasons.get(outcome.rule, ())) or "matched"
        details = "; ".join(outcome.details)
        parts.append(f"{outcome.rule} ({why}): {outcome.label}" + (f" — {details}" if details else ""))
    if wrote:
        parts.append(f"enabled {', '.join(wrote)}")
    if would:
        parts.append(f"would enable {', '.join(would)} (audit)")
    if not wrote and not would and all(o.kind in ("compliant", "exempt") for o in matched_outcomes):
        parts.append("already compliant" if any(o.kind == "compliant" for o in matched_outcomes) else "exempt")
    return ". ".join(parts) + "."


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
