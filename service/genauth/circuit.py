"""A circuit breaker for GenAuth, shared by every client in one process.

When GenAuth is down for everyone (every call times out, answers 5xx, 429 or refuses the credentials), each
pending user would otherwise spend its retry budget on the outage and be dead-lettered. The clients report
each call's result here; after ``failures`` failures in a row the circuit *opens*: workers stop claiming rows
(the rows stay as they are, attempts untouched) and a job that fails while it is open goes back without
counting the attempt. After ``cooldown`` seconds one worker may claim a single row as a *probe*: its first
call that GenAuth answers closes the circuit and everyone resumes; a failure reopens it with the cool-down
doubled (up to ``max_cooldown``). Any answer from GenAuth counts as success, a 404 or a refused request too:
GenAuth is up, the problem is the user's.
"""

from __future__ import annotations

import logging
import threading

from service import metrics
from service.logs import log_event

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Counts consecutive GenAuth failures across threads; ``failures <= 0`` turns it off."""

    def __init__(
        self,
        failures: int,
        cooldown: float,
        *,
        max_cooldown: float = 300.0,
    ) -> None:
        self.threshold = failures
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._cooldown = cooldown
        self._opened_at: float | None = None
        """When a worker first saw the circuit open (by the workers' clock, which tests control)."""
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def is_open(self) -> bool:
        """True while an outage is in progress (open, or half-open waiting for its probe)."""
        with self._lock:
            return self._state != CLOSED

    def record_success(self) -> None:
        """GenAuth answered a call."""
        with self._lock:
            self._failures = 0
            if self._state == CLOSED:
                return
            self._state, self._probing, self._cooldown = CLOSED, False, self.base_cooldown
        log_event(logger, "genauth_circuit_closed")

    def record_failure(self) -> None:
        """A call failed in a way that says GenAuth itself is unavailable."""
        if self.threshold <= 0:
            return
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN:
                self._cooldown = min(self.max_cooldown, self._cooldown * 2)
            elif self._state == OPEN or self._failures < self.threshold:
                return
            self._state, self._probing, self._opened_at = OPEN, False, None
            cooldown, failures = self._cooldown, self._failures
        metrics.GENAUTH_CIRCUIT_OPENED.inc()
        log_event(
            logger, "genauth_circuit_opened", level=logging.WARNING, failures=failures, retry_in=round(cooldown, 1)
        )

    def claim_limit(self, now: float) -> int | None:
        """How many rows a worker may claim at ``now``: None for no limit, 1 for the probe, 0 for none."""
        with self._lock:
            if self._state == CLOSED:
                return None
            if self._opened_at is None:
                self._opened_at = now
            if self._state == OPEN and now - self._opened_at >= self._cooldown:
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._probing:
                self._probing = True
                return 1
            return 0

    def probe_unused(self) -> None:
        """The worker given the probe found nothing to claim; the next one may probe."""
        with self._lock:
            self._probing = False
