"""Where the reconciler gets and keeps a user's rollout sightings: the pure policy is handed what the store
holds (``service.policy.rollout.Sighting``), and the deadlines a decision finds go back to the store
(``service.store.deadlines``), so the worker can bring a pending user back when their day comes.

Recording is for enforcing runs only: ``explain`` and dry runs read what is stored and record nothing (a user
never seen yet counts as first seen today).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import date, timedelta

import sqlalchemy as sa

from service.policy import Evaluation
from service.policy.rollout import Sighting
from service.store import deadlines


class DeadlineBook:
    """The rollout sightings and deadlines of users, in the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def sightings(
        self, userpool_id: str | None, user_id: str, graces: Mapping[str, timedelta | None], *, today: date
    ) -> dict[str, Sighting]:
        """Per rule, what is stored of the user; ``userpool_id`` None: read only (explain, dry runs)."""
        record = userpool_id is not None
        with self.engine.begin() if record else self.engine.connect() as connection:
            found = deadlines.sightings(
                connection, userpool_id or "", user_id, graces, today=today, now=time.time(), record=record
            )
        return {rule: Sighting(seen.first_seen, seen.grace_until) for rule, seen in found.items()}

    def note(self, userpool_id: str, evaluation: Evaluation) -> None:
        """Record each scheduled rule's deadline, where it came from and whether it is still pending."""
        found = {
            result.rule: (result.schedule.deadline, result.schedule.source, result.pending)
            for result in evaluation.results
            if result.schedule is not None
        }
        if found:
            with self.engine.begin() as connection:
                deadlines.note(connection, userpool_id, evaluation.user_id, found, now=time.time())
