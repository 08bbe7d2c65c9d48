"""Undo the service's own writes for one user, when an operator asks (``mfa-enforcer revert``; docs/operations.md,
"Revert").

This is the one path on which the service removes or disables anything in a user's MFA data, and it removes
only what the service itself wrote: each write's decision recorded exactly what it changed
(``merging.write_changes``: an entry added, an entry's status it set to enabled, a contact it filled), and
``undo`` takes back just that, and only where GenAuth still holds what the service wrote. An entry someone
disabled since, a phone someone replaced: left alone and listed. Everything else (the ``mfaToken``, factors the
user or an admin set, entries the service cannot read) is written back exactly as read.

``revert_user`` runs in the worker, for a ``revert`` work row (``service.store.reverts``): it reads the user as a
reconcile does, passes the write gate like any other write (a protected account is never written; a pause or a
spent change budget holds the revert, which a release or a resume lets through later), writes, and reads the
data back (``check_undo``): GenAuth not keeping it is ``WriteNotKeptError``, retried and then dead-lettered.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service import metrics
from service.enforcement.brakes import refuse_protected
from service.enforcement.decisions import Decision
from service.enforcement.errors import WriteNotKeptError
from service.enforcement.merging import (
    CONTACT_FIELDS,
    KEPT_FIELDS,
    all_entries,
    enabled_factors,
    stored_contact,
)
from service.genauth import users
from service.genauth.errors import GenAuthAnswerLostError, GenAuthUserNotFoundError
from service.logs import log_event
from service.store.holds import Hold
from service.store.reverts import REVERT_REASON, Write
from service.vocabulary import Action

if TYPE_CHECKING:  # the reconciler imports nothing from here; only the types are needed
    from service.enforcement.reconciling import Reconciler, Request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Undo:
    """What undoing a user's writes would write, and what it takes back or leaves alone (in words)."""

    trigger_data: dict[str, Any]
    undone: tuple[str, ...]
    left: tuple[str, ...]

    @property
    def is_changed(self) -> bool:
        return bool(self.undone)


def undo(current: dict[str, Any], writes: Sequence[dict[str, Any]], digest: Callable[[str], str]) -> Undo:
    """``current`` with what the ``writes`` (their recorded changes, newest first) changed taken back, where
    GenAuth still shows what the service wrote; everything else as read."""
    restored = copy.deepcopy(current)
    entries = all_entries(restored)
    undone: list[str] = []
    left: list[str] = []
    for changes in writes:
        for entry in changes.get("entries", ()):
            factor = str(entry["factor"])
            same = [
                e
                for e in entries
                if isinstance(e, dict)
                and str(e.get("mfaPolicy", "")).upper() == factor
                and enabled_factors({"applicationMfa": [e]}) == (factor,)
            ]
            if not same:
                left.append(f"{factor}: no longer enabled as the service wrote it (changed since)")
                continue
            if "was" not in entry:
                entries.remove(same[0])
                undone.append(f"removed the {factor} entry")
            else:
                same[0]["status"] = entry["was"]
                undone.append(f"set {factor} back to status {entry['was']!r}")
        for key, written in changes.get("fields", {}).items():
            if key not in CONTACT_FIELDS:
                continue
            value = stored_contact(restored, key)
            if value is None or digest(value) != written.get("digest"):
                left.append(f"{key}: not what the service filled in (changed since)")
                continue
            restored[key] = written.get("was")  # null when it was unset
            undone.append(f"cleared {key}")
    if "applicationMfa" in restored or entries:
        restored["applicationMfa"] = entries
    return Undo(restored, tuple(undone), tuple(left))


def check_undo(written: dict[str, Any], verified: dict[str, Any]) -> tuple[str, ...]:
    """What GenAuth does not show as written, read back after an undo (empty: kept)."""
    wrong = [f for f in enabled_factors(written) if f not in enabled_factors(verified)]
    wrong.extend(f"{f} still enabled" for f in enabled_factors(verified) if f not in enabled_factors(written))
    for key in KEPT_FIELDS:
        if (stored_contact(written, key) is None) != (stored_contact(verified, key) is None):
            wrong.append(key)
    return tuple(wrong)


def revert_user(reconciler: Reconciler, request: Request, writes: Sequence[Write]) -> Decision:
    """Undo ``writes`` (the user's claimed ones, newest first) through the write gate; the decision to record."""
    client = reconciler.client
    rules = tuple(dict.fromkeys(rule for write in writes for rule in write.rules))
    outcomes = {rule: label for write in reversed(writes) for rule, label in write.outcomes.items()}
    ids = [write.decision_id for write in writes]

    def decide(action: str, reason: str, **values: Any) -> Decision:
        return Decision(
            userpool_id=request.userpool_id,
            user_id=request.user_id,
            trigger=request.trigger,
            mode="enforce",
            action=action,
            rules=rules,
            required=(),
            before=values.get("before"),
            after=values.get("after"),
            reason=reason,
            attempt=request.attempt,
            outcomes=outcomes,
            username=values.get("username"),
            email=values.get("email"),
            status=values.get("status"),
            policy_digest=values.get("policy_digest"),
            changes={"undoes": ids, "undone": list(values.get("undone", ())), "left": list(values.get("left", ()))},
        )

    try:
        plan = reconciler.plan(request.user_id, dry_run=True)
    except GenAuthUserNotFoundError:
        return decide(Action.REMOVED, "removed: the user does not exist in GenAuth; nothing reverted")
    facts = plan.facts
    who = {
        "username": facts.username,
        "email": facts.email,
        "status": facts.status,
        "policy_digest": plan.policy_digest,
    }
    if plan.removal is not None:
        return decide(Action.REMOVED, f"removed: the user is {plan.removal} in GenAuth; nothing reverted", **who)
    current = plan.current
    if current is None:
        client.reserve_calls(1)
        current = users.get_mfa_status(client, request.user_id)
    before = enabled_factors(current)
    recorded = [write.changes for write in writes if write.changes is not None]
    planned = undo(current, recorded, reconciler.contact_digest)
    if not planned.is_changed:
        return decide(
            Action.REVERTED,
            "reverted nothing: " + ("; ".join(planned.left) or "nothing the service wrote is left"),
            before=before,
            after=before,
            left=planned.left,
            **who,
        )
    if plan.protected is not None:
        return decide(Action.PROTECTED, f"{plan.protected}; nothing reverted", before=before, after=before, **who)
    if reconciler.brakes is None:
        refused = refuse_protected(plan.protection, facts)
    else:
        entry = Hold(
            userpool_id=request.userpool_id,
            user_id=request.user_id,
            cause="",
            reason="",
            trigger=REVERT_REASON,
            rules=rules,
            before=before,
            add=(),
            outcomes=outcomes,
            username=facts.username,
        )
        refused = reconciler.brakes.admit(entry, facts, plan.protection)
    if refused is not None:
        action = Action.PROTECTED if refused.action == Action.PROTECTED else Action.HELD
        return decide(
            action,
            f"{refused.reason}: would revert ({'; '.join(planned.undone)})",
            before=before,
            after=before,
            **who,
        )
    verified = _write(reconciler, request.user_id, planned.trigger_data)
    after = enabled_factors(verified)
    log_event(logger, "mfa_reverted", user_id=request.user_id, undone=list(planned.undone))
    reason = "reverted: " + "; ".join(planned.undone)
    if planned.left:
        reason += ". left alone (changed since): " + "; ".join(planned.left)
    return decide(
        Action.REVERTED, reason + ".", before=before, after=after, undone=planned.undone, left=planned.left, **who
    )


def _write(reconciler: Reconciler, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``data`` and read it back (unless writes are not verified); what GenAuth holds after it."""
    client = reconciler.client
    client.reserve_calls(2 if reconciler.verify_writes else 1)
    try:
        users.set_mfa_status(client, user_id, data)
    except GenAuthAnswerLostError:
        if not reconciler.verify_writes:
            raise
    if not reconciler.verify_writes:
        return data
    verified = users.get_mfa_status(client, user_id)
    wrong = check_undo(data, verified)
    if wrong:
        metrics.WRITE_CHECKS.labels(result="not_kept").inc()
        raise WriteNotKeptError(f"GenAuth did not keep the revert: {', '.join(wrong)} when read back")
    metrics.WRITE_CHECKS.labels(result="kept").inc()
    return verified
