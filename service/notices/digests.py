"""The admin digest: once a day, what needs an administrator, gathered from what the service already keeps.

Each part is a ``Section`` (a title and its lines); a part with nothing to say is left out, and a digest with
nothing in it says so in its headline, so a quiet day still proves the notifications work. The parts: users
held by the change budget or a pause and the budget's state (``service.store.holds``, ``budget``), dead
letters (``service.store.replaying``), users who became unsatisfiable since the last digest with the reason
(which says what to fix), policy exceptions expiring in the next 7 days, factors that are not effective
with what to switch on (``service.store.effectiveness``), names the rules use that GenAuth does not know
(``service.enforcement.references``), and notices the outbox could not send. ``rollout_sections`` is where
the rollout's "deadlines in the next 7 days" and "overdue" go.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from service.policy import Policy
from service.settings import ChangeBudget
from service.store import budget, holds, outbox
from service.store.effectiveness import not_effective_summary
from service.store.replaying import dead_letters
from service.store.reporting import latest_with_action
from service.vocabulary import Action

DAY = 86400.0
SOON_DAYS = 7
LISTED = 10
"""Entries a section lists by name before it says "and N more"."""


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "lines": list(self.lines)}


@dataclass(frozen=True)
class Digest:
    day: date
    sections: tuple[Section, ...]

    @property
    def headline(self) -> str:
        if not self.sections:
            return "all clear"
        return f"{len(self.sections)} thing(s) to look at: " + ", ".join(s.title for s in self.sections)

    def as_fields(self) -> dict[str, Any]:
        """What the digest's outbox row keeps."""
        return {"day": self.day.isoformat(), "sections": [s.as_json() for s in self.sections]}


def rollout_sections(engine: sa.Engine, policy: Policy, *, today: date) -> list[Section]:
    """The rollout's part of the digest: "deadlines in the next 7 days" (users per rule) and "overdue" (past the
    deadline and still not compliant, with the fix). Empty until per-user deadlines are stored (issue #16's
    rollout half fills this in)."""
    return []


def build_digest(
    engine: sa.Engine,
    policy: Policy,
    *,
    today: date,
    now: float,
    change_budget: ChangeBudget,
    unresolved: Callable[[], Sequence[str]] = lambda: (),
) -> Digest:
    """The digest for ``today``; ``unresolved`` gives the names the rules use that GenAuth does not know (or why
    they could not be checked)."""
    parts = [
        *rollout_sections(engine, policy, today=today),
        _unsatisfiable(engine, since=now - DAY),
        _held(engine, change_budget, now=now),
        _dead_letters(engine),
        _expiring(policy, today=today),
        _not_effective(engine),
        Section("references that no longer resolve", tuple(unresolved())),
        _unsent(engine),
    ]
    return Digest(day=today, sections=tuple(part for part in parts if part.lines))


def _more(lines: list[str], count: int) -> tuple[str, ...]:
    return (*lines[:LISTED], *((f"... and {count - LISTED} more",) if count > LISTED else ()))


def _unsatisfiable(engine: sa.Engine, *, since: float) -> Section:
    count, rows = latest_with_action(engine, Action.UNSATISFIABLE, since=since, limit=LISTED)
    lines = [f"{row.username or row.user_id} ({row.user_id}): {row.reason[:300]}" for row in rows]
    return Section("users who became unsatisfiable", _more(lines, count) if count else ())


def _held(engine: sa.Engine, change_budget: ChangeBudget, *, now: float) -> Section:
    held = holds.summary(engine, sample=LISTED)
    slot = budget.used_slots(engine, change_budget, now=now)
    with engine.connect() as connection:
        pause = budget.pause_state(connection)
    if not held.held and not pause.paused:
        return Section("held users", ())
    lines = [
        f"{held.held} user(s) held ({', '.join(f'{c} {n}' for c, n in held.per_cause.items())}); "
        f"budget {change_budget}: {slot.used} of {slot.limit if slot.limit is not None else 'unlimited'} used"
    ]
    if pause.paused:
        lines.append(f"writes are paused: {pause.reason or 'no reason given'} (`mfa-enforcer resume --reason TEXT`)")
    lines += [f"{row.get('username') or row['user_id']}: rules {', '.join(row['rules'])}" for row in held.sample]
    lines.append("review with `mfa-enforcer holds`; release with `mfa-enforcer holds release`")
    return Section("held users", tuple(lines))


def _dead_letters(engine: sa.Engine) -> Section:
    rows = dead_letters(engine, limit=LISTED + 1)
    lines = [
        f"{row.get('username') or row['user_id']} ({row['kind']}): {row['last_error'] or ''}"[:300] for row in rows
    ]
    if rows:
        lines = [*lines[:LISTED], "put them back with `mfa-enforcer replay --all --reason TEXT`"]
    return Section("dead letters", tuple(lines))


def _expiring(policy: Policy, *, today: date) -> Section:
    until = today + timedelta(days=SOON_DAYS)
    lines = [
        f"rule {rule.name}: {', '.join((*exception.users, *exception.groups))} until {exception.expires} "
        f"({exception.reason})"
        for rule in policy.rules
        for exception in rule.exceptions
        if exception.expires is not None and today <= exception.expires <= until
    ]
    return Section(f"exceptions expiring in the next {SOON_DAYS} days", tuple(lines))


def _not_effective(engine: sa.Engine) -> Section:
    summary = not_effective_summary(engine)
    if not summary["users"]:
        return Section("not effective", ())
    lines = [f"{summary['users']} user(s) have a factor GenAuth will not ask for"]
    lines += [f"{fix['fix']} ({fix['users']} user(s))" for fix in summary["fixes"][:LISTED]]
    return Section("not effective", tuple(lines))


def _unsent(engine: sa.Engine) -> Section:
    count, rows = outbox.unsent(engine, limit=LISTED)
    lines = [
        f"{row['kind']} by {row['channel']}: {row['state']} after {row['attempts']} attempt(s): {row['last_error']}"
        for row in rows
    ]
    return Section("notices not sent", _more(lines, count) if count else ())
