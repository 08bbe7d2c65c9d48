"""A token bucket for outbound GenAuth calls, shared by every client in one process.

GenAuth throttles with ``statusCode: 429`` and documents no quota, so the service paces itself: at most
``rate`` calls per second on average with bursts of ``burst``. With N worker processes the pool sees at most
N times rate. A caller that would exceed the rate waits (it is a worker thread; nothing else is waiting on it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Blocking token bucket; ``rate <= 0`` turns it off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._updated = clock()
        self.waited = 0.0
        """Seconds callers have spent waiting, for metrics and benchmarks."""

    def acquire(self) -> None:
        """Take one token, waiting for it if the bucket is empty."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
