"""``explain``: why a user has (or would get) the MFA factors they have, read live from GenAuth.

Builds a JSON-ready explanation from a ``Plan`` (nothing is written): the user as the rules see them, every
rule with matched / not matched and why, its outcome, the factors now and required, and the exact change
enforcement would make to the stored MFA data. Phone numbers are masked; no secret is included.
"""

from __future__ import annotations

from typing import Any

from service.enforcement.reconciling import Plan, Reconciler, decision_of
from service.genauth.errors import GenAuthUserNotFoundError
from service.store.queue import Job

MASKED_FIELDS = ("mfaPhone", "phone")


def explain_user(reconciler: Reconciler, user_id: str, *, userpool_id: str = "") -> dict[str, Any]:
    """The explanation of one user; raises ``GenAuthUserNotFoundError`` for an unknown user."""
    plan = reconciler.plan(user_id, dry_run=reconciler.force_audit)
    job = Job(
        id=0, userpool_id=userpool_id, user_id=user_id, version=0, attempts=0, reason="explain", first_enqueued_at=0.0
    )
    decision = decision_of(plan, job, is_audit=plan.is_audit)
    return {
        "user": _user(plan),
        "mode": "audit" if plan.is_audit else "enforce",
        "rules": [_rule(plan, result.rule) for result in plan.evaluation.results],
        "current_factors": list(plan.merged.before if plan.merged else ()),
        "required_factors": list(decision.required),
        "change": _change(plan),
        "decision": {"action": decision.action, "reason": decision.reason},
    }


def _user(plan: Plan) -> dict[str, Any]:
    facts = plan.facts
    described: dict[str, Any] = {
        "id": facts.user_id,
        "email": facts.email,
        "phone": mask_phone(facts.phone),
        "status": facts.status,
    }
    if facts.departments is not None:
        described["departments"] = [
            {
                "code": d.code,
                "name": d.name,
                "id": d.department_id,
                "ancestors": list(d.ancestor_codes or d.ancestor_names),
            }
            for d in facts.departments
        ]
    if facts.groups is not None:
        described["groups"] = list(facts.groups)
    if facts.roles is not None:
        described["roles"] = [f"{role.code}@{role.namespace}" for role in facts.roles]
    if facts.custom_data is not None:
        described["custom_data_keys"] = sorted(facts.custom_data)
    return described


def _rule(plan: Plan, name: str) -> dict[str, Any]:
    result = next(r for r in plan.evaluation.results if r.rule == name)
    outcome = plan.outcomes.get(name)
    return {
        "rule": name,
        "mode": result.mode,
        "matched": result.matched,
        "reasons": list(result.reasons),
        "requires": list(result.require_mfa),
        "outcome": outcome.label if outcome else "not-matched",
        "details": list(outcome.details) if outcome else [],
        "exempt": result.exempt,
        "expired_exemptions": list(result.expired_exemptions),
    }


def _change(plan: Plan) -> dict[str, Any]:
    merged = plan.merged
    if merged is None or not merged.is_changed:
        return {"enable": [], "would_enable_in_audit": list(plan.to_audit), "fields": {}}
    fields = {
        key: {"before": _shown(key, plan.current.get(key)), "after": _shown(key, value)}
        for key, value in merged.trigger_data.items()
        if plan.current.get(key) != value
    }
    return {"enable": list(merged.added), "would_enable_in_audit": list(plan.to_audit), "fields": fields}


def _shown(key: str, value: Any) -> Any:
    return mask_phone(value) if key in MASKED_FIELDS and isinstance(value, str) else value


def mask_phone(phone: str | None) -> str | None:
    """Keep the first 3 and last 4 digits: enough to recognise, not to dial."""
    if not phone:
        return phone
    return phone[:3] + "*" * max(0, len(phone) - 7) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


__all__ = ["GenAuthUserNotFoundError", "explain_user", "mask_phone"]
