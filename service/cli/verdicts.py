"""The dry run's verdict on one user (``mfa-enforcer reconcile --dry-run``): each chosen rule's own outcome,
what the worker would do, worded for a run that writes nothing, and how to fix a user who cannot be given a
factor.

Each rule's outcome is bucketed as ``report`` buckets it once the worker has decided the user
(``service.policy.outcomes.bucket``), and named the dry run's way (``OUTCOMES``: ``to_enforce`` is ``enforced``
plus ``would-enforce`` there). An archived user is ``removed``, as the worker records them; a suspended (or
otherwise inactive) one is ``inactive``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.enforcement.explaining import unsatisfiable_fix
from service.enforcement.merging import ordered_factors
from service.enforcement.reconciling import Plan
from service.policy.outcomes import factors_to_add
from service.vocabulary import INACTIVE_STATUSES, Action, Bucket, bucket, worst

OUTCOMES = (
    "compliant",
    "to_enforce",
    "unsatisfiable",
    "exempt",
    "protected",
    "failed",
    "not_matched",
    "inactive",
    "removed",
)


def outcome_name(where: Bucket) -> str:
    """A bucket as the dry run names it (``OUTCOMES``): ``to_enforce`` is what the worker would enforce."""
    return "to_enforce" if where in (Bucket.ENFORCED, Bucket.WOULD_ENFORCE) else where.value.replace("-", "_")


@dataclass
class Verdict:
    """One user in a dry run: where each chosen rule counts them, what the worker would do, and why."""

    user_id: str
    outcomes: dict[str, Bucket]
    username: str | None = None
    email: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    before: tuple[str, ...] | None = None
    reason: str = ""

    @property
    def overall(self) -> str:
        """The user's outcome over the chosen rules (``OUTCOMES``): the worst of them (``not_matched`` when none
        matched)."""
        return outcome_name(worst(self.outcomes.values()))

    def change(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "email": self.email,
            "outcome": self.overall,
            "rules": self.labels,
            "required": list(self.required),
            "before": None if self.before is None else list(self.before),
            "reason": self.reason,
        }


def verdict_of(user_id: str, plan: Plan | None, chosen: tuple[str, ...]) -> Verdict:
    """The dry-run verdict for ``plan`` over the chosen rules, worded for a run that writes nothing."""
    if plan is None:
        return Verdict(user_id, dict.fromkeys(chosen, Bucket.NOT_MATCHED), reason="the user does not exist in GenAuth")
    facts = plan.facts
    results = {result.rule: result for result in plan.evaluation.results if result.rule in chosen}
    if plan.removal is not None:  # archived: the worker records it as removed, under the rules it matches
        return Verdict(
            user_id,
            {name: Bucket.REMOVED if result.matched else Bucket.NOT_MATCHED for name, result in results.items()},
            username=facts.username,
            email=facts.email,
            reason=f"the user is {plan.removal} in GenAuth: counted as removed, nothing to enforce",
        )
    if plan.protected is not None:  # a break-glass account: the worker never writes them
        return Verdict(
            user_id,
            {name: Bucket.PROTECTED if result.matched else Bucket.NOT_MATCHED for name, result in results.items()},
            username=facts.username,
            email=facts.email,
            labels={name: str(Bucket.PROTECTED) for name, result in results.items() if result.matched},
            reason=plan.protected,
        )
    inactive = facts.status in INACTIVE_STATUSES
    outcomes: dict[str, Bucket] = {}
    labels: dict[str, str] = {}
    parts: list[str] = []
    for name, result in results.items():
        outcome = plan.outcomes.get(name)
        if outcome is None or not result.matched:
            outcomes[name] = Bucket.NOT_MATCHED
            continue
        # As the report would count it once the worker decided; a dry run writes nothing.
        outcomes[name] = bucket(  # the label: it says overdue
            outcome.label, action=Action.NONE, mode="audit", rule_mode=result.mode, status=facts.status
        )
        labels[name] = outcome.label
        details = "; ".join(outcome.details)
        parts.append(f"{name}: {outcome.label}" + (f" ({details})" if details else ""))
        fix = unsatisfiable_fix(outcome, result)
        if fix:
            parts.append(f"to fix: {fix.split(': ', 1)[1]}")
    chosen_outcomes = [plan.outcomes[name] for name in labels]
    enforce = factors_to_add(chosen_outcomes, "enforce")
    audit = tuple(f for f in factors_to_add(chosen_outcomes, "audit") if f not in enforce)
    if enforce:
        parts.append(f"would enable {', '.join(enforce)} (dry run)")
    if audit:
        parts.append(f"would enable {', '.join(audit)} (audit: the worker only records it)")
    if inactive and labels:
        parts.append(f"account {facts.status}: not counted as compliant or not")
    required = ordered_factors({f for name in labels for f in results[name].require_mfa if not results[name].exempt})
    return Verdict(
        user_id,
        outcomes,
        username=facts.username,
        email=facts.email,
        labels=labels,
        required=required,
        before=plan.merged.before if plan.merged is not None else None,
        reason="; ".join(parts),
    )
