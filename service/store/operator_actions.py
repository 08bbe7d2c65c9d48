"""The brakes an operator works by hand, and what they read, in one place for the two ways to reach them: the
commands (``service.cli.holds``, ``service.cli.audit``, ``service.cli.revert``) and the admin API
(``service.intake.admin``).

Each action (release, discard, pause, resume, revert) changes the store and appends its audit record
(``service.store.audit``) naming who acted: the ``--actor`` or OS user of a command, ``admin-api:<fingerprint>``
for the API. The shapes ``holds --json`` and ``audit --json`` print are made here too, so the API answers with
the same fields. Checking the request (a reason is given, a release says which users) is here as well; each
caller says no in its own way (exit 2, HTTP 400).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from service.store import audit, budget, holds, reverts

REASON_REQUIRED = "a reason is required: say why (it is kept with the action)"


def reason_problem(reason: str | None) -> str | None:
    """Why ``reason`` will not do (missing or blank), or None."""
    return REASON_REQUIRED if reason is None or not reason.strip() else None


@dataclass(frozen=True)
class ReleaseScope:
    """Which held users a release lets through: every one, the oldest ``most``, and/or those under ``rule``."""

    release_all: bool = False
    most: int | None = None
    rule: str | None = None

    def problem(self) -> str | None:
        """Why this scope names no users or contradicts itself (in the CLI's option names), or None."""
        if not (self.release_all or self.most or self.rule):
            return "say which: --all, --max N or --rule R"
        if self.release_all and self.most:
            return "--all and --max exclude each other"
        if self.most is not None and self.most < 1:
            return "--max must be at least 1"
        return None

    def as_scope(self) -> dict[str, Any]:
        return {"all": self.release_all, "max": self.most, "rule": self.rule}


def holds_view(engine: sa.Engine) -> dict[str, Any]:
    """What ``holds --json`` prints and ``GET /api/holds`` answers."""
    summary = holds.summary(engine)
    with engine.connect() as connection:
        pause = budget.pause_state(connection)
    return {
        "held": summary.held,
        "released_pending": summary.released,
        "paused": pause.paused,
        "per_rule": summary.per_rule,
        "per_cause": summary.per_cause,
        "sample": summary.sample,
    }


def audit_view(engine: sa.Engine, *, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """What ``audit --json`` prints and ``GET /api/audit`` answers: records oldest first, ``at`` in ISO 8601
    UTC and ``at_unix`` in seconds."""
    return [
        {**entry.as_dict(), "at": iso_time(entry.at), "at_unix": entry.at}
        for entry in audit.audit_records(engine, since=since, limit=limit)
    ]


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_moment(text: str, *, now: float | None = None) -> float:
    """A point in time as UNIX seconds, from ISO 8601 (UTC unless it says otherwise), UNIX seconds, or an age
    such as 2h or 7d (before ``now``); ``ValueError`` with a one-line message for anything else."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return (time.time() if now is None else now) - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2026-11-28T10:00:00Z, UNIX seconds, or an age like 2h") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release(engine: sa.Engine, scope: ReleaseScope, *, reason: str, actor: str, now: float) -> list[str]:
    """Let the held users in ``scope`` through (``holds.release``) and record it; the ids released."""
    released = holds.release(engine, reason=reason, now=now, rule=scope.rule, limit=scope.most)
    _record(engine, audit.RELEASE, actor=actor, reason=reason, scope=scope.as_scope(), count=len(released))
    return released


def discard(engine: sa.Engine, *, reason: str, actor: str, rule: str | None = None) -> list[str]:
    """Drop held users' planned changes (``holds.discard``) and record it; the ids dropped."""
    dropped = holds.discard(engine, rule=rule)
    _record(engine, audit.DISCARD, actor=actor, reason=reason, scope={"rule": rule}, count=len(dropped))
    return dropped


def pause(engine: sa.Engine, *, reason: str, actor: str, now: float) -> bool:
    """Stop every write (the switch every process reads); False, and no record, when already paused."""
    changed = budget.set_paused(engine, True, reason=reason, actor=actor, now=now)
    if changed:
        _record(engine, audit.PAUSE, actor=actor, reason=reason, scope={}, count=0)
    return changed


def resume(engine: sa.Engine, *, reason: str, actor: str, now: float, settle: float) -> int | None:
    """Let writes flow again and put the users the pause held back on the queue: how many, or None (and no
    record) when writes were not paused. They are due ``settle`` seconds from now: a process trusts the switch
    it read for that long (``service.enforcement.brakes.PAUSE_TTL``), and one that took them sooner would
    hold them again, with nothing left to requeue them."""
    if not budget.set_paused(engine, False, reason=reason, actor=actor, now=now):
        return None
    requeued = holds.requeue_paused(engine, now=now + settle)
    _record(engine, audit.RESUME, actor=actor, reason=reason, scope={}, count=requeued)
    return requeued


@dataclass(frozen=True)
class RevertPlan:
    """What a revert covers: per user, the writes it undoes (with what undoing each does), the writes in scope
    it cannot undo, and, when refused, why."""

    users: dict[str, dict[str, Any]]
    not_revertible: list[dict[str, Any]]
    already: int
    """Writes in scope an earlier revert already claimed (each write is undone once)."""
    refused: str | None = None

    @property
    def writes(self) -> int:
        return sum(len(user["writes"]) for user in self.users.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "users": len(self.users),
            "writes": self.writes,
            "already_reverted": self.already,
            "not_revertible": self.not_revertible,
            "plan": list(self.users.values()),
        }


def revert_problem(scope: reverts.RevertScope) -> str | None:
    """Why a revert of ``scope`` is refused before looking (in the CLI's option names), or None."""
    if scope.is_empty:
        return "say which writes: --since TIME, --until TIME, --rule R, --user U and/or --sweep ID"
    return None


def plan_revert(engine: sa.Engine, scope: reverts.RevertScope, *, enforcing: frozenset[str], force: bool) -> RevertPlan:
    """The revert of ``scope`` (nothing claimed yet). Refused while a rule in ``enforcing`` (the policy's
    enforce-mode rules) still covers a user in scope, unless ``force``: it would write them again. A rule
    covers a user when it matched them at their latest decision, or at the write being undone."""
    found = reverts.writes_in_scope(engine, scope)
    users: dict[str, dict[str, Any]] = {}
    not_revertible: list[dict[str, Any]] = []
    already = 0
    for write in found:
        if write.claimed is not None:
            already += 1
            continue
        if write.changes is None:
            not_revertible.append(
                {
                    "user_id": write.user_id,
                    "decision_id": write.decision_id,
                    "why": "written before revision 0015: what it changed was not recorded",
                }
            )
            continue
        user = users.setdefault(
            write.user_id, {"user_id": write.user_id, "username": write.username, "rules": [], "writes": []}
        )
        user["rules"] = list(dict.fromkeys([*user["rules"], *write.rules]))
        at, undo = iso_time(write.decided_at), reverts.describe(write.changes)
        user["writes"].append({"decision_id": write.decision_id, "decided_at": at, "undo": undo})
    refused = None
    if users and not force:
        latest = reverts.latest_rules(engine, users)
        covering: dict[str, int] = {}
        for user_id, user in users.items():
            for rule in dict.fromkeys([*user["rules"], *latest.get(user_id, ())]):
                if rule in enforcing:
                    covering[rule] = covering.get(rule, 0) + 1
        if covering:
            named = ", ".join(f"{rule} ({count} user(s))" for rule, count in sorted(covering.items()))
            refused = (
                f"refused: enforce-mode rule(s) still cover users in scope and would enforce them again: {named}; "
                "set `mode: audit` on them first (or --force)"
            )
    return RevertPlan(users=users, not_revertible=not_revertible, already=already, refused=refused)


def revert(
    engine: sa.Engine,
    scope: reverts.RevertScope,
    plan: RevertPlan,
    *,
    reason: str,
    actor: str,
    now: float,
    force: bool,
) -> list[int]:
    """Claim the writes of ``plan`` and queue their users (``reverts.claim``), and record it; the decision ids
    this call claimed (a write a concurrent revert claimed first is not among them)."""
    wanted = [
        write
        for write in reverts.writes_in_scope(engine, scope)
        if write.user_id in plan.users and write.claimed is None and write.changes is not None
    ]
    claimed = reverts.claim(engine, wanted, reason=reason, now=now)
    users = {write.user_id for write in claimed}
    audit.record(
        engine,
        audit.REVERT,
        reason=reason,
        actor=actor,
        scope={**scope.as_scope(), "force": force},
        counts={
            "users": len(users),
            "writes": len(claimed),
            "not_revertible": len(plan.not_revertible),
            "already_reverted": plan.already + len(wanted) - len(claimed),
        },
    )
    return [write.decision_id for write in claimed]


def _record(engine: sa.Engine, action: str, *, actor: str, reason: str, scope: dict[str, Any], count: int) -> None:
    """The one place a brake action enters the audit trail (one record and its ``audit_record`` log line)."""
    audit.record(engine, action, reason=reason, actor=actor, scope=scope, counts={"users": count})
