"""The gate every GenAuth write passes (docs/architecture.md, principle 12): protected accounts, the pause
switch, then the change budget. The reconciler asks ``Brakes.admit`` just before ``set-mfa-status``; an answer
other than None is a ``Refusal``: the user is protected (the decision says ``protected``), or the write is held
instead (the decision says ``held`` with the reason, and the plan is kept in ``service.store.holds``).

- Protected (the policy's ``protected`` block, ``service.policy.Protection``): never written, whatever the
  plan, a release or a revert asks. The reconciler already stops such a user before planning a write; the gate
  decides it again from the policy and the user's facts, so no later path to a write can skip it.

- Paused (``mfa-enforcer pause``): every write is held with cause ``paused``. Each process reads the switch
  from the database at most every ``PAUSE_TTL`` seconds, so a pause stops every process within that time.
- Released (``holds release``): the operator let this user's write through, so it goes outside the budget;
  the reconciler has just re-planned it against GenAuth as it is now.
- Otherwise the write takes a slot of ``ENFORCER_CHANGE_BUDGET`` (``service.store.budget.take_slot``, one
  budget for the deployment); with none left it is held with cause ``budget`` until an operator acts.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa

from service import metrics
from service.policy import Protection, UserFacts
from service.policy.evaluation import protected_reason
from service.settings import ChangeBudget
from service.store import budget as budget_store
from service.store import holds
from service.store.keys import deployment_key
from service.vocabulary import Action

CONTACT_KEY = "contact-digest"
"""The deployment key of the digests a write's ``changes`` keep of the contacts it filled."""
PAUSE_TTL = 2.0
"""Seconds a process trusts the pause switch it read."""


@dataclass(frozen=True)
class Refusal:
    """Why the gate let no write through: ``action`` is ``held`` or ``protected``, ``reason`` the decision's."""

    action: Action
    reason: str


def refuse_protected(protection: Protection | None, facts: UserFacts) -> Refusal | None:
    """The refusal of a write to a protected user (None: not protected); needs no process state."""
    reason = protected_reason(protection, facts)
    if reason is None:
        return None
    metrics.BRAKE_CHECKS.labels(result="protected").inc()
    return Refusal(Action.PROTECTED, f"{reason}: nothing written")


def unkeyed_digest(value: str) -> str:
    """The contact digest of a process with no database (tests, dry runs): nothing it records is kept."""
    return hashlib.sha256(value.encode()).hexdigest()


class Brakes:
    """The write gate of one process (its workers share it)."""

    def __init__(
        self,
        engine: sa.Engine,
        budget: ChangeBudget,
        *,
        clock: Callable[[], float] = time.time,
        pause_ttl: float = PAUSE_TTL,
    ) -> None:
        self.engine = engine
        self.budget = budget
        self.clock = clock
        self.pause_ttl = pause_ttl
        self._lock = threading.Lock()
        self._pause: tuple[float, budget_store.PauseState] | None = None
        self._contact_key: bytes | None = None

    def contact_digest(self, value: str) -> str:
        """A keyed digest of a contact the service filled (HMAC-SHA-256 under the deployment's key, as
        ``service.store.keys`` explains): ``revert`` can tell whether GenAuth still holds what was written,
        and the decisions table never holds the phone number or address."""
        if self._contact_key is None:
            self._contact_key = deployment_key(self.engine, CONTACT_KEY)
        return hmac.digest(self._contact_key, value.encode(), hashlib.sha256).hex()

    def pause_state(self) -> budget_store.PauseState:
        """The pause switch, read at most every ``pause_ttl`` seconds."""
        with self._lock:
            now = time.monotonic()
            if self._pause is None or now - self._pause[0] >= self.pause_ttl:
                with self.engine.connect() as connection:
                    self._pause = (now, budget_store.pause_state(connection))
            return self._pause[1]

    def admit(self, entry: holds.Hold, facts: UserFacts, protection: Protection | None) -> Refusal | None:
        """None: write. Otherwise why not: the user is protected (a release does not change that), or the hold
        is recorded and this is why (the decision's reason)."""
        refused = refuse_protected(protection, facts)
        if refused is not None:
            return refused
        pause = self.pause_state()
        if pause.paused:
            return self._hold(entry, holds.PAUSED, f"held: writes are paused ({pause.reason or 'no reason given'})")
        if holds.is_released(self.engine, entry.userpool_id, entry.user_id):
            metrics.BRAKE_CHECKS.labels(result="released").inc()
            return None
        if self.budget.is_off:
            return None
        slot = budget_store.take_slot(self.engine, self.budget, entry.userpool_id, entry.user_id, now=self.clock())
        if slot.taken:
            metrics.BRAKE_CHECKS.labels(result="within_budget").inc()
            return None
        return self._hold(
            entry,
            holds.BUDGET,
            f"held: change budget {self.budget} spent ({slot.used} of {slot.limit} users written in the window)",
        )

    def _hold(self, entry: holds.Hold, cause: str, reason: str) -> Refusal:
        holds.hold(self.engine, replace(entry, cause=cause, reason=reason), now=self.clock())
        metrics.BRAKE_CHECKS.labels(result=f"held_{cause}").inc()
        return Refusal(Action.HELD, reason)
