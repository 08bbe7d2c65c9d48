"""The one vocabulary of what happened to a user: ``OutcomeKind`` per rule, ``Action`` per decision, and
``Bucket``, where the report, the dry run, ``reconcile --wait`` and explain count a user under a rule
(``bucket``; over several rules, the ``worst``).

It sits below the policy and the store (it imports nothing of the service), so both speak it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any


class OutcomeKind(enum.StrEnum):
    """What one rule would do to one user (``Outcome.kind``)."""

    NOT_MATCHED = "not-matched"
    EXEMPT = "exempt"
    COMPLIANT = "compliant"
    ENFORCE = "enforce"
    UNSATISFIABLE = "unsatisfiable"
    PROTECTED = "protected"
    """The rule matches, but the policy's ``protected`` block names the user: it adds nothing, ever."""
    PENDING = "pending"
    """The rule would enforce, but its rollout has not reached the user: nothing is written before the date."""


class Action(enum.StrEnum):
    """What reconciling a user once did, over all the rules: a decision's ``action``."""

    NONE = "none"
    """Nothing to do: no rule matched, or every matching rule is satisfied."""
    ENFORCED = "enforced"
    WOULD_ENFORCE = "would-enforce"
    """An audit rule (or an audit run) would enable factors; nothing was written."""
    UNSATISFIABLE = "unsatisfiable"
    EXEMPT = "exempt"
    FAILED = "failed"
    REMOVED = "removed"
    """GenAuth confirmed the user is deleted or archived (the last known status is kept with it)."""
    UNKNOWN = "unknown"
    """A write's answer was lost and the read after it could not tell; the next attempt confirms."""
    HELD = "held"
    """A write was due, but the change budget was spent or writes are paused: nothing was written, the planned
    change is kept (``mfa-enforcer holds``) until released, discarded or (after a pause) resumed."""
    PROTECTED = "protected"
    """The policy's ``protected`` block names the user (a break-glass account): nothing is planned or written,
    whatever the rules say, and the write gate refuses them too (``service.enforcement.brakes``)."""
    REVERTED = "reverted"
    """An operator's ``revert`` undid what earlier writes of the service changed (``service.enforcement.reverting``)."""
    PENDING = "pending"
    """A rule would enforce, but not before the user's deadline (its rollout): nothing was written."""


class Bucket(enum.StrEnum):
    """Where a user counts under one rule, in the report, the dry run and ``reconcile --wait``; from the least
    to the most severe, so a user's overall bucket is the worst of their rules' (``worst``)."""

    NOT_MATCHED = "not-matched"
    REMOVED = "removed"
    INACTIVE = "inactive"
    """The account cannot sign in (``INACTIVE_STATUSES``): not counted as compliant or not."""
    EXEMPT = "exempt"
    PROTECTED = "protected"
    """A break-glass account (``Action.PROTECTED``): never written, counted apart under every rule it matches."""
    COMPLIANT = "compliant"
    ENFORCED = "enforced"
    PENDING = "pending"
    """The rule would enforce, but the user's deadline (its rollout) has not come: nothing written yet."""
    NOT_EFFECTIVE = "not-effective"
    """Compliant or enforced in the user's trigger data, but GenAuth will not challenge a factor the rule relies
    on (the pool or the rule's app does not enable it): what to switch on is in the decision."""
    WOULD_ENFORCE = "would-enforce"
    HELD = "held"
    """A write was due but the brakes hold it (``Action.HELD``): nothing written until it is released."""
    UNSATISFIABLE = "unsatisfiable"
    OVERDUE = "overdue"
    """Past the user's deadline under a rule with a rollout, and still not compliant (unsatisfiable)."""
    FAILED = "failed"


#: GenAuth account states whose users cannot sign in. (``Archived`` is not one: GenAuth confirming it makes
#: the worker record a ``removed`` decision.)
INACTIVE_STATUSES = ("Suspended", "Deactivated", "Resigned")

_PENDING_UNTIL = re.compile(r" until ([0-9]{4}-[0-9]{2}-[0-9]{2}) ")
_OVERDUE = "overdue since"


def pending_label(deadline: date, source: str) -> str:
    """How a ``pending`` label says the deadline: ``until 2027-01-15 (enforce_from)``."""
    return f"until {deadline.isoformat()} ({source})"


def overdue_label(deadline: date) -> str:
    """What an ``unsatisfiable`` label past the user's deadline adds: ``overdue since 2027-01-15``."""
    return f"{_OVERDUE} {deadline.isoformat()}"


def pending_until(label: str) -> date | None:
    """The deadline a ``pending`` label names (None: not a pending label)."""
    if not label.startswith(OutcomeKind.PENDING):
        return None
    found = _PENDING_UNTIL.search(label)
    return date.fromisoformat(found.group(1)) if found else None


#: Actions that leave the user's state unknown until the worker succeeds: counted as failed.
FAILED_ACTIONS = (Action.FAILED, Action.UNKNOWN)


def bucket(
    label: str,
    *,
    action: str,
    mode: str,
    rule_mode: str,
    status: str | None = None,
    not_effective: bool = False,
) -> Bucket:
    """Where one rule's outcome (its ``label`` or kind) in one decision counts: a protected user counts as
    protected under every rule they match; a failed, removed or inactive
    user counts as such whatever the rule said; ``enforce`` is ``enforced`` only when an enforce-mode rule's
    factors were written in an enforcing run, else ``would-enforce``; ``not_effective`` (a factor the rule
    relies on GenAuth will not challenge) turns ``compliant`` and ``enforced`` into ``not-effective``. A
    ``pending`` label counts as pending; a held write (``Action.HELD``) of an ``enforce`` as held; an
    ``unsatisfiable`` past the user's rollout deadline (``overdue since``) as overdue."""
    kind = label.split(" ", 1)[0]
    if kind == OutcomeKind.NOT_MATCHED:
        return Bucket.NOT_MATCHED
    if action == Action.PROTECTED or kind == OutcomeKind.PROTECTED:
        return Bucket.PROTECTED
    if action in FAILED_ACTIONS:
        return Bucket.FAILED
    if action == Action.REMOVED:
        return Bucket.REMOVED
    if status in INACTIVE_STATUSES:
        return Bucket.INACTIVE
    if kind == OutcomeKind.PENDING:
        return Bucket.PENDING
    if kind == OutcomeKind.ENFORCE:
        if action == Action.HELD:
            return Bucket.HELD
        enforced = action == Action.ENFORCED and mode == rule_mode == "enforce"
        if not enforced:
            return Bucket.WOULD_ENFORCE
        return Bucket.NOT_EFFECTIVE if not_effective else Bucket.ENFORCED
    if kind == OutcomeKind.UNSATISFIABLE and _OVERDUE in label:
        return Bucket.OVERDUE
    if kind in (OutcomeKind.EXEMPT, OutcomeKind.UNSATISFIABLE):
        return Bucket(kind)
    return Bucket.NOT_EFFECTIVE if not_effective else Bucket.COMPLIANT


def not_effective_rules(gaps: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The rules a decision's ``not_effective`` gaps concern (a gap names the rules that rely on its factor)."""
    return frozenset(str(rule) for gap in gaps if isinstance(gap, Mapping) for rule in gap.get("rules", ()))


def worst(buckets: Iterable[Bucket], default: Bucket = Bucket.NOT_MATCHED) -> Bucket:
    """The most severe of ``buckets``: where a user counts over several rules."""
    return max(buckets, key=list(Bucket).index, default=default)
