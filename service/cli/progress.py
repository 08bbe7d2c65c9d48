"""Progress of a long command on stderr: a redrawn bar with count, rate and ETA on a terminal, and a plain
line every ``PLAIN_EVERY_USERS`` users or ``PLAIN_EVERY_SECONDS`` seconds otherwise (CronJob logs)."""

from __future__ import annotations

import time
from typing import Any, TextIO

from service.enforcement.scoping import Progress

PLAIN_EVERY_USERS = 500
PLAIN_EVERY_SECONDS = 10.0
BAR_WIDTH = 24


class ProgressDisplay:
    """Progress on ``stream``: a redrawn bar with count, rate and ETA on a terminal; plain lines otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool = True, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.enabled = enabled
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        self.clock = clock
        self._last_drawn = 0.0
        self._last_line_at = clock()
        self._last_line_listed = 0
        self._latest: Progress | None = None

    def update(self, progress: Progress) -> None:
        if not self.enabled:
            return
        self._latest = progress
        now = self.clock()
        if self.is_tty:
            if now - self._last_drawn >= 0.1:
                self._last_drawn = now
                self.stream.write("\r" + _bar(progress) + "\x1b[K")
                self.stream.flush()
            return
        if (
            progress.listed - self._last_line_listed >= PLAIN_EVERY_USERS
            or now - self._last_line_at >= PLAIN_EVERY_SECONDS
        ):
            self._last_line_listed, self._last_line_at = progress.listed, now
            self.stream.write("reconcile: " + _counts(progress) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Show where it ended: the bar once more (then a newline), or a last line."""
        latest, self._latest = self._latest, None
        if latest is None:
            return
        if self.is_tty:
            self.stream.write("\r" + _bar(latest) + "\x1b[K\n")
        elif latest.listed != self._last_line_listed:
            self.stream.write("reconcile: " + _counts(latest) + "\n")
        self.stream.flush()


def _bar(progress: Progress) -> str:
    fraction = min(1.0, progress.listed / progress.expected) if progress.expected else 0.0
    filled = int(fraction * BAR_WIDTH)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] " + _counts(progress)


def _counts(progress: Progress) -> str:
    expected = "?" if progress.expected is None else str(progress.expected)
    eta = "-" if progress.eta is None else _duration(progress.eta)
    return f"{progress.listed}/{expected} listed, {progress.in_scope} in scope, {progress.rate:.1f} users/s, ETA {eta}"


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class WaitDisplay:
    """``reconcile --wait`` progress on ``stream``: a redrawn line on a terminal, a line every
    ``PLAIN_EVERY_SECONDS`` otherwise."""

    def __init__(self, stream: TextIO, *, enabled: bool = True, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.enabled = enabled
        self.is_tty = bool(getattr(stream, "isatty", lambda: False)())
        self.clock = clock
        self._last_line_at: float | None = None
        self._latest = ""

    def update(self, decided: int, total: int, failed: int, elapsed: float) -> None:
        if not self.enabled:
            return
        self._latest = f"waiting for the worker: {decided}/{total} decided, {failed} failed, {_duration(elapsed)}"
        if self.is_tty:
            self.stream.write("\r" + self._latest + "\x1b[K")
            self.stream.flush()
            return
        now = self.clock()
        if self._last_line_at is None or now - self._last_line_at >= PLAIN_EVERY_SECONDS or decided == total:
            self._last_line_at = now
            self.stream.write("reconcile: " + self._latest + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(("\n" if self.is_tty else "") + f"reconcile: {text}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.is_tty and self._latest:
            self.stream.write("\n")
            self.stream.flush()
