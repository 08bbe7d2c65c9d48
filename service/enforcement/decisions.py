"""Decisions: what reconciling one user once concluded, the trail every evaluation leaves (docs/architecture.md,
principle 7).

The reconciler (``service.enforcement.reconciling``) makes them and the worker records them, through
``service.store.decisions``, in the transaction that finishes the job; the helpers here settle a new
decision against the user's previous one before it is recorded.
``before``/``after`` are None ("not read") when the MFA data was never read (no rule matched, the user is
removed) or when the state after a write is not known yet (``unknown``); ``[]`` means "read: no factors".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from service import __version__


@dataclass(frozen=True)
class Decision:
    """The outcome of reconciling one user once."""

    userpool_id: str
    user_id: str
    trigger: str
    mode: str
    action: str
    """An ``Action`` (``service.policy.outcomes``): what reconciling the user did."""
    rules: tuple[str, ...]
    required: tuple[str, ...]
    before: tuple[str, ...] | None
    """Factors enabled before; None when the MFA data was not read."""
    after: tuple[str, ...] | None
    """Factors enabled after; None when not read (or not known: ``unknown``)."""
    reason: str
    attempt: int = 1
    outcomes: dict[str, str] = field(default_factory=dict)
    """Rule -> its outcome for this user (``enforce [SMS]``, ``compliant``, ``exempt`` …), matching rules only."""
    not_effective: tuple[dict[str, Any], ...] = ()
    """The required factors GenAuth will not challenge the user for (``effective.Gap.as_json``: factor, rules,
    app, why, fix); empty: every factor relied on is effective, or nothing was required."""
    username: str | None = None
    email: str | None = None
    status: str | None = None
    """The user's username, email and account status as read for this decision (None: not read)."""
    policy_digest: str | None = None
    """SHA-256 of the policy file the decision was made under (``Policy.digest``); None: no policy was read
    (the user is gone, the job failed before planning) or the rules did not come from a file."""
    service_version: str | None = __version__
    """The version of mfa-enforcer that made the decision (``mfa-enforcer --version``); None: recorded before
    decisions said (revision 0013)."""
    changes: dict[str, Any] | None = None
    """Exactly what a write changed in the user's trigger data (``merging.write_changes``), so ``revert`` can
    undo it and nothing else; None: nothing written (or written before revision 0015)."""


def with_last_known_status(decision: Decision, previous: Decision | None) -> Decision:
    """A ``removed`` decision carrying the rules and per-rule outcomes of the user's last decision before it,
    so the report keeps showing where the user stood (as removed, never as compliant) after older decisions
    are pruned; a deleted user (not read) keeps the username and email last recorded, for listings."""
    if previous is None:
        return decision
    if decision.username is None and decision.email is None:
        decision = replace(decision, username=previous.username, email=previous.email)
    if not previous.outcomes:
        return decision
    last = ", ".join(f"{rule} {label}" for rule, label in previous.outcomes.items())
    return replace(
        decision,
        rules=previous.rules,
        required=previous.required,
        outcomes=dict(previous.outcomes),
        reason=f"{decision.reason}; last known: {last}",
    )


def confirm_lost_write(decision: Decision, previous: Decision | None) -> Decision:
    """A compliant decision after a ``write outcome unknown`` one: the factors the earlier write was to enable
    are there, so the trail says the service enforced them (not "already compliant")."""
    if previous is None or previous.action != "unknown" or decision.action != "none" or decision.after is None:
        return decision
    enabled_since = [factor for factor in decision.after if factor not in (previous.before or ())]
    if not enabled_since:
        return decision
    settled = decision.reason.removesuffix(".").removesuffix("already compliant").rstrip(". ")
    return replace(
        decision,
        action="enforced",
        reason=f"{settled}. enabled {', '.join(enabled_since)}: GenAuth's answer to the earlier write was lost, "
        "this read confirms the change.",
    )
