"""``explain``: why a user has (or would get) the MFA factors they have, read live from GenAuth.

Builds a JSON-ready explanation from a ``Plan`` (nothing is written): the user as the rules see them, every
rule with matched / not matched and why, its outcome and where the report will count the user under it
(``service.policy.outcomes.bucket``), the factors now (null when no rule matched, so MFA was
not read) and required, the exact change enforcement would make to the stored MFA data, and the required
factors GenAuth would not challenge (``not_effective``: the pool or the rule's app does not enable them),
and, under a rule with a rollout, the user's deadline and where it came from (``enforce_from``, the wave, or
the grace period from the day the service first saw them, as stored: explain records no sighting).
It says what the worker *would* do (explain writes nothing), and for a user who cannot be given a factor,
how to fix it. Phone numbers are masked; no secret is included.
"""

from __future__ import annotations

from typing import Any

from service.enforcement.reconciling import Plan, Reconciler, Request, decision_of
from service.genauth.errors import GenAuthUserNotFoundError
from service.policy import Outcome, RuleResult
from service.policy.conditions import CONDITIONS
from service.policy.outcomes import NO_EMAIL, NO_PHONE
from service.vocabulary import Action, OutcomeKind, bucket, not_effective_rules

MASKED_FIELDS = ("mfaPhone", "phone")


def explain_user(reconciler: Reconciler, user_id: str, *, userpool_id: str = "") -> dict[str, Any]:
    """The explanation of one user; raises ``GenAuthUserNotFoundError`` for an unknown user."""
    plan = reconciler.assess(reconciler.plan(user_id, dry_run=reconciler.force_audit))
    decision = decision_of(plan, Request(userpool_id, user_id, "explain"), is_audit=plan.is_audit)
    action, reason, worker_action = decision.action, decision.reason, decision.action
    if plan.merged is not None and plan.merged.is_changed:
        # The decision of a run that wrote; explain wrote nothing, so it says what the worker would do.
        action, worker_action = Action.WOULD_ENFORCE, Action.ENFORCED
        reason = f"the worker would enable {', '.join(plan.merged.added)} (nothing was written)" + (
            f"; audit rules would enable {', '.join(plan.to_audit)}" if plan.to_audit else ""
        )
    rules = [_rule(plan, result.rule, worker_action) for result in plan.evaluation.results]
    fixes = [rule["fix"] for rule in rules if rule["fix"]]
    fixes += [f"{gap.why}: {gap.fix}." for gap in plan.gaps]
    if fixes:
        reason += " To fix: " + " ".join(fixes)
    return {
        "user": _user(plan),
        "mode": "audit" if plan.is_audit else "enforce",
        "rules": rules,
        "current_factors": list(plan.merged.before) if plan.merged else None,
        "required_factors": list(decision.required),
        "change": _change(plan),
        "not_effective": list(decision.not_effective),
        "decision": {
            "action": action,
            "reason": reason,
            "policy_digest": decision.policy_digest,
            "service_version": decision.service_version,
        },
    }


def unsatisfiable_fix(outcome: Outcome, result: RuleResult) -> str | None:
    """How an admin makes an ``unsatisfiable`` outcome satisfiable: the missing contact, or a fallback."""
    if outcome.kind != OutcomeKind.UNSATISFIABLE:
        return None
    contacts = []
    for why in outcome.unsatisfiable.values():
        if why.startswith(NO_PHONE):
            contacts.append("add a phone number to the user in GenAuth")
        elif why.startswith(NO_EMAIL):
            contacts.append("add an email address to the user in GenAuth")
    if result.fallback:
        other = f"or give them a contact for the fallback ({', '.join(result.fallback)})"
    else:
        other = f"or declare a fallback the user can have in rule {result.rule} (for example `fallback: [OTP]`)"
    return (
        f"{result.rule}: "
        + (" and ".join(dict.fromkeys(contacts)) or "give the user the factor's contact")
        + (f", {other}.")
    )


def _user(plan: Plan) -> dict[str, Any]:
    facts = plan.facts
    described: dict[str, Any] = {
        "id": facts.user_id,
        "username": facts.username,
        "email": facts.email,
        "phone": mask_phone(facts.phone),
        "status": facts.status,
    }
    for condition in CONDITIONS:
        if condition.fact is not None and facts.fetched.get(condition.fact) is not None:
            described.update(condition.shown(facts.fetched[condition.fact]))
    return described


def _rule(plan: Plan, name: str, worker_action: str) -> dict[str, Any]:
    result = next(r for r in plan.evaluation.results if r.rule == name)
    outcome = plan.outcomes.get(name)
    label = outcome.label if outcome else OutcomeKind.NOT_MATCHED
    mode = "audit" if plan.is_audit else "enforce"
    return {
        "rule": name,
        "mode": result.mode,
        "matched": result.matched,
        "reasons": list(result.reasons),
        "requires": list(result.require_mfa),
        "outcome": label,
        # Where the report counts the user under this rule once the worker has decided them.
        "report": bucket(
            label,
            action=worker_action,
            mode=mode,
            rule_mode=result.mode,
            status=plan.facts.status,
            not_effective=name in not_effective_rules(gap.as_json() for gap in plan.gaps),
        ),
        "details": list(outcome.details) if outcome else [],
        "fix": unsatisfiable_fix(outcome, result) if outcome else None,
        "exempt": result.exempt,
        "expired_exemptions": list(result.expired_exemptions),
        "deadline": None
        if result.schedule is None
        else {
            "date": result.schedule.deadline.isoformat(),
            "source": result.schedule.source,
            "pending": result.pending,
        },
    }


def _change(plan: Plan) -> dict[str, Any]:
    merged, current = plan.merged, plan.current
    if merged is None or current is None or not merged.is_changed:
        return {"enable": [], "would_enable_in_audit": list(plan.to_audit), "fields": {}}
    fields = {
        key: {"before": _shown(key, current.get(key)), "after": _shown(key, value)}
        for key, value in merged.trigger_data.items()
        if current.get(key) != value
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
