"""Reconcile one user against the policy and return the decision to record.

The worker calls ``Reconciler.reconcile`` for each claimed job. It reads the user's current state from GenAuth
(so the event that caused the job does not matter: level-triggered), evaluates the pure policy, and writes
``set-mfa-status`` only when a required factor is missing. Temporary GenAuth errors propagate to the worker,
which retries; a user who no longer exists is a decision, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

from service.enforcement.facts import gather_facts
from service.enforcement.merging import MergeResult, enabled_factors, merge_factors, ordered_factors
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthUserNotFoundError
from service.logs import log_event
from service.policy import Policy, evaluate
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
            id=0, userpool_id=userpool_id, user_id=user_id, version=0, attempts=0, reason=trigger, first_enqueued_at=0.0
        )
        return self.reconcile(job, dry_run=True)

    def reconcile(self, job: Job, *, dry_run: bool = False) -> Decision:
        policy = self.get_policy()
        mode = "audit" if self.force_audit or dry_run else "enforce"

        def decide(action: str, reason: str, **values: tuple[str, ...]) -> Decision:
            return Decision(
                userpool_id=job.userpool_id,
                user_id=job.user_id,
                trigger=job.reason,
                mode=mode,
                action=action,
                reason=reason,
                attempt=job.attempts,
                rules=values.get("rules", ()),
                required=values.get("required", ()),
                before=values.get("before", ()),
                after=values.get("after", ()),
            )

        try:
            facts = gather_facts(self.client, job.user_id, policy.needs)
        except GenAuthUserNotFoundError:
            return decide("none", "the user does not exist in GenAuth (deleted?)")
        evaluation = evaluate(policy, facts, force_audit=self.force_audit, today=self.today())
        rules = tuple(result.rule for result in evaluation.results if result.matched)
        if not rules:
            return decide("none", "no rule matches this user")
        required = evaluation.required
        wanted = ordered_factors({*evaluation.required, *evaluation.audit_only})
        why = "; ".join(
            f"{result.rule}: {', '.join(result.reasons) or 'matched'}"
            for result in evaluation.results
            if result.matched
        )
        current = self.client.get_mfa_status(job.user_id)
        if dry_run:
            required, wanted = (), wanted
        enforced = merge_factors(current, required, facts)
        if enforced.is_changed:
            self.client.set_mfa_status(job.user_id, enforced.trigger_data)
            log_event(logger, "mfa_enforced", user_id=job.user_id, factors=list(enforced.added))
        audited = merge_factors(enforced.trigger_data, wanted, facts)
        action, outcome = _describe(enforced, audited)
        return decide(
            action,
            f"{why}. {outcome}",
            rules=rules,
            required=wanted,
            before=enforced.before,
            after=enabled_factors(enforced.trigger_data),
        )


def _describe(enforced: MergeResult, audited: MergeResult) -> tuple[str, str]:
    """The decision's action and the sentence that explains it."""
    parts = []
    if enforced.added:
        parts.append(f"enabled {', '.join(enforced.added)}")
    if audited.added:
        parts.append(f"would enable {', '.join(audited.added)} (audit)")
    unsatisfiable = {**enforced.unsatisfiable, **audited.unsatisfiable}
    if unsatisfiable:
        parts.append("cannot enable " + ", ".join(f"{factor} ({why})" for factor, why in unsatisfiable.items()))
    if unsatisfiable:
        action = "unsatisfiable"
    elif enforced.added:
        action = "enforced"
    elif audited.added:
        action = "would-enforce"
    else:
        action = "none"
    if not parts:
        parts.append("already compliant")
    return action, "; ".join(parts) + "."
