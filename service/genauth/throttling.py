"""A token bucket for outbound GenAuth calls, shared by every client in one process, that backs off on 429.

GenAuth throttles with ``statusCode: 429`` and documents no quota, so the service paces itself: at most
``rate`` calls per second on average with bursts of ``burst``. With N worker processes the pool sees at most
N times rate (docs/operations.md, "Scale"). A caller that would exceed the rate waits (it is a worker thread;
nothing else is waiting on it). The admin API's ``explain`` takes its tokens from the same bucket, so an
operator's questions and the workers together stay within the rate.

A 429 means GenAuth's quota is below the configured rate (or other callers share it), so the process slows
down on its own (``throttled``): the rate halves, the tokens in hand are dropped, and the bucket's size shrinks
in proportion. It then grows back additively, ``RECOVERY_STEP`` of the configured rate per
``RECOVERY_INTERVAL`` seconds without a 429 (from half to full in ten seconds), never above
``GENAUTH_RATE_LIMIT`` and never below ``MIN_RATE``. 429s within ``RECOVERY_INTERVAL`` of a cut are the same
signal (the calls that were in flight together), so a burst of them halves the rate once. The rate in force is
``mfa_enforcer_genauth_rate`` (``service.metrics``), updated at every call and cut. A 429's ``Retry-After``
is still honoured by the job that met it (``service.worker.loop.retry_delay``).

``acquire(n)`` takes several tokens with one wait: the enforcer takes the tokens for a re-read, its write and
the read after it at once, so that no wait falls between reading a user's MFA data and writing it back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service import metrics

RECOVERY_INTERVAL = 1.0
"""Seconds between additive steps back up after a cut; also how long 429s count as the same signal."""
RECOVERY_STEP = 0.05
"""Share of the configured rate regained per ``RECOVERY_INTERVAL``."""
MIN_RATE = 0.5
"""Calls per second a process never goes below (or the configured rate, when that is lower)."""


class RateLimiter:
    """Blocking token bucket whose rate halves on a 429 and recovers additively; ``rate <= 0`` turns it off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        recovery_interval: float = RECOVERY_INTERVAL,
        recovery_step: float = RECOVERY_STEP,
    ) -> None:
        self.limit = rate
        """The configured rate (``GENAUTH_RATE_LIMIT``): the ceiling the rate recovers to."""
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._interval = recovery_interval
        self._step = recovery_step * rate
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._updated = clock()
        self._cut_rate = rate
        """The rate the last cut left (the configured one before any)."""
        self._cut_at: float | None = None
        self.cuts = 0
        """Times a 429 halved the rate (for tests and benchmarks)."""
        self.waited = 0.0
        """Seconds callers have spent waiting, for metrics and benchmarks."""
        metrics.GENAUTH_RATE.set(rate)

    @property
    def rate(self) -> float:
        """The rate in force now, in calls per second."""
        with self._lock:
            return self._rate_at(self._clock())

    def _rate_at(self, now: float) -> float:
        if self._cut_at is None:
            return self.limit
        steps = int((now - self._cut_at) / self._interval)
        rate = min(self.limit, self._cut_rate + steps * self._step)
        if rate >= self.limit:
            self._cut_at = None  # fully recovered
        return rate

    def acquire(self, tokens: int = 1) -> None:
        """Take ``tokens`` tokens, waiting once for all of them if the bucket holds too few."""
        if self.limit <= 0 or tokens <= 0:
            return
        with self._lock:
            now = self._clock()
            rate = self._rate_at(now)
            size = max(1.0, self.burst * rate / self.limit)
            self._tokens = min(size, self._tokens + (now - self._updated) * rate)
            self._updated = now
            self._tokens -= tokens
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
            self.waited += wait
        metrics.GENAUTH_RATE.set(rate)
        if wait > 0:
            self._sleep(wait)

    def throttled(self) -> None:
        """GenAuth answered 429: halve the rate (once per ``RECOVERY_INTERVAL``) and drop the tokens in hand."""
        if self.limit <= 0:
            return
        with self._lock:
            now = self._clock()
            if self._cut_at is not None and now - self._cut_at < self._interval:
                return  # the same burst of 429s
            rate = self._rate_at(now)
            self._tokens = min(self._tokens + (now - self._updated) * rate, 0.0)
            self._updated = now
            self._cut_rate = max(min(MIN_RATE, self.limit), rate / 2)
            self._cut_at = now
            self.cuts += 1
            rate = self._cut_rate
        metrics.GENAUTH_RATE.set(rate)
