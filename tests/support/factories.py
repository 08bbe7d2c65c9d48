"""Things tests make: work on the queue as a delivery would put it there, a clock moved by hand, and a policy
switched by hand (``CurrentPolicy``); ``written`` reads who the emulator saw written."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from service.enforcement.decisions import Decision
from service.policy import Policy
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject


def enqueue(engine: sa.Engine, *user_ids: str, pool: str = "pool", now: float | None = None) -> None:
    """Record a ``login`` delivery naming ``user_ids`` (at ``now``, default the real time), queueing each."""
    delivery = Delivery("login", pool, tuple(map(Subject.user, user_ids)), "0" * 64, "application/json", "queued")
    record_delivery(engine, delivery, now=time.time() if now is None else now)


class FakeClock:
    """A clock tests move by hand, so backoff, leases and token expiry need no waiting."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CurrentPolicy:
    """The policy a worker reads, switched by the test (as a reload would)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self) -> Policy:
        return self.policy


def written(emulator: Any) -> list[str]:
    """The user ids of every ``set-mfa-status`` the emulator received, in order."""
    return [entry.body["userId"] for entry in emulator.journal.entries("/api/v3/set-mfa-status")]


def enforced_decision(user_id: str, *, userpool_id: str = "pool", **fields: Any) -> Decision:
    """A decision that enabled SMS for ``user_id`` under the rule ``finance-sms``; ``fields`` override any field."""
    values: dict[str, Any] = {
        "userpool_id": userpool_id,
        "user_id": user_id,
        "trigger": "login",
        "mode": "enforce",
        "action": "enforced",
        "rules": ("finance-sms",),
        "required": ("SMS",),
        "before": (),
        "after": ("SMS",),
        "reason": "enabled SMS.",
        "outcomes": {"finance-sms": "enforce [SMS]"},
    }
    return Decision(**(values | fields))
