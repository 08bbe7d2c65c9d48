"""One daemon-thread loop for the checks a process repeats while it runs (GenAuth's answer to the access key in
``service.genauth.access``, the policy's references in ``service.enforcement.references``), so that both start,
stop and survive a crash the same way; and the one backoff every retry waits by (``backoff_delay``: the worker's
retries, the event listener's reconnects)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import ClassVar, Self


def backoff_delay(attempt: int, base: float, maximum: float, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with equal jitter: attempt 1 waits between ``base / 2`` and ``base``, each further
    attempt doubles that, up to ``maximum``; the random half keeps many clients from retrying in step."""
    ceiling = min(maximum, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + float(rng()) * ceiling / 2


class Repeating:
    """Runs ``tick`` now and then every ``interval`` seconds in a daemon thread, until ``stop`` or until a tick
    returns True (nothing left to check); a tick that raises is logged as ``crash_event`` and the next runs."""

    thread_name: ClassVar[str]
    crash_event: ClassVar[str]
    interval: float
    _thread: threading.Thread | None = None

    def tick(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the ticks use; ``stop`` calls it once the thread has ended (or after five seconds)."""

    def start(self) -> Self:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=5)
        self.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.tick():
                    return
            except Exception:
                logging.getLogger(type(self).__module__).exception(self.crash_event, extra={"fields": {}})
            self._stopping.wait(self.interval)
