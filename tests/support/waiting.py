"""Waiting for what another thread or process does: poll a check until it holds, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float = 20.0, what: str = "condition", interval: float = 0.02) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something true, and return that.

    Raises ``AssertionError`` naming ``what`` when ``timeout`` seconds pass first. The timeout is a bound for
    a loaded machine, not an expected duration: a passing test returns as soon as the check holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
