"""A rule's rollout: from when it is enforced for each user, so switching a rule on is never binary and sudden.

Three optional keys of a rule make it (``Rollout``):

- ``enforce_from: 2027-01-15``: nothing is written for the rule before that day;
- ``waves: [{name, match, from}]``: a user's start day is the ``from`` of the first wave whose ``match`` holds
  for them (a wave without ``match`` takes everyone left); users in no wave start at ``enforce_from``. The
  match is a match block like a rule's, judged by the one registry (``conditions.judge``);
- ``grace: 14d``: each user has that long from the day the service first saw them in scope of the rule.

A user's deadline is the latest of their start day (wave or ``enforce_from``) and their grace deadline; before
it the rule's ``enforce`` is ``pending`` (``outcomes``), from it on the rule is enforced. Pure: ``schedule``
gets today and what the store knows of the user (``Sighting``: first seen, the grace deadline fixed then); the
enforcement layer (``service.store.deadlines``) stores the sighting once and never moves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from service.policy.conditions import describe_match, judge
from service.policy.facts import UserFacts
from service.policy.rules import Match


def show_duration(duration: timedelta) -> str:
    """``14d``."""
    return f"{duration.days}d"


@dataclass(frozen=True)
class Wave:
    """One step of a rollout: the users ``match`` holds for (everyone left when None) start on ``start``."""

    name: str
    start: date
    match: Match | None = None


@dataclass(frozen=True)
class Rollout:
    """When a rule starts for each user (see the module docstring); every key optional, at least one given."""

    enforce_from: date | None = None
    grace: timedelta | None = None
    waves: tuple[Wave, ...] = ()

    def __post_init__(self) -> None:
        if self.enforce_from is None and self.grace is None and not self.waves:
            raise ValueError("a rollout needs enforce_from, grace or waves")
        late = [wave.name for wave in self.waves if self.enforce_from and wave.start > self.enforce_from]
        if late:
            raise ValueError(f"waves {late} start after enforce_from {self.enforce_from}")
        if self.waves and self.waves[-1].match is not None and self.enforce_from is None:
            raise ValueError("users in no wave would never start: end with a wave without match, or set enforce_from")

    def grace_deadline(self, first_seen: date) -> date | None:
        """The grace deadline of a user first seen on ``first_seen`` (None: no grace)."""
        return first_seen + self.grace if self.grace is not None else None

    @property
    def needs(self) -> frozenset[str]:
        """The facts deciding the waves requires."""
        return frozenset().union(*(wave.match.needs for wave in self.waves if wave.match is not None))


@dataclass(frozen=True)
class Sighting:
    """What the store holds of a user under one rule: first seen in scope, and the grace deadline fixed then."""

    first_seen: date
    grace_until: date | None = None


@dataclass(frozen=True)
class Schedule:
    """A user's deadline under one rule and where it came from (``enforce_from``, ``wave pilot``, ``grace``)."""

    deadline: date
    source: str

    def is_pending(self, today: date) -> bool:
        """True before the deadline: nothing is written for the rule yet."""
        return today < self.deadline


def schedule(rollout: Rollout | None, facts: UserFacts, *, today: date, sighting: Sighting | None) -> Schedule | None:
    """The user's deadline under a rule with ``rollout`` (None: no rollout, enforced at once). ``sighting``
    None: not seen before, so first seen ``today`` (what the store records when it records)."""
    if rollout is None:
        return None
    candidates: list[Schedule] = []
    wave = _wave_of(rollout, facts)
    if wave is not None:
        candidates.append(Schedule(wave.start, f"wave {wave.name}"))
    elif rollout.enforce_from is not None:
        candidates.append(Schedule(rollout.enforce_from, "enforce_from"))
    if rollout.grace is not None:
        seen = sighting or Sighting(today)
        until = seen.grace_until or rollout.grace_deadline(seen.first_seen)
        assert until is not None
        candidates.append(Schedule(until, f"grace {show_duration(rollout.grace)} from first seen {seen.first_seen}"))
    return max(candidates, key=lambda found: found.deadline)  # the later date wins; ties: the first named


def _wave_of(rollout: Rollout, facts: UserFacts) -> Wave | None:
    for wave in rollout.waves:
        if wave.match is None or judge(wave.match, facts)[0]:
            return wave
    return None


def timeline(rollout: Rollout | None) -> list[str]:
    """The rollout as ``policy check`` prints it, one line per step in date order."""
    if rollout is None:
        return ["enforced at once (no enforce_from, waves or grace)"]
    steps: list[tuple[date, str]] = []
    for wave in rollout.waves:
        who = "everyone left" if wave.match is None else f"users with {describe_match(wave.match)}"
        steps.append((wave.start, f"wave {wave.name}: {who}"))
    if rollout.enforce_from is not None:
        left = "everyone in no wave" if rollout.waves else "everyone in scope"
        steps.append((rollout.enforce_from, f"enforce_from: {left}"))
    lines = [f"{day.isoformat()}  {what}" for day, what in sorted(steps, key=lambda step: step[0])]
    if rollout.grace is not None:
        grace = show_duration(rollout.grace)
        lines.append(f"+ grace {grace} from when each user is first seen in scope (the later date wins)")
    return lines
