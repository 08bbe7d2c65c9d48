"""`Faults`: programmable failures the emulator's management API injects before answering.

Tests (or `POST /_emulator/faults`) queue faults; `app.py` asks `take(path)` once per `/api/v3/*` request,
before authentication, so a fault also hits `get-management-token` unless it names another path. Kinds:

* `status_429` / `status_500`: HTTP 200 with the GenAuth body `{"statusCode": 429|500, "message": ...}`.
* `http_429` (with `Retry-After` when `retry_after` is given), `http_500`, `http_503`: a real HTTP error.
* `latency`: wait `seconds`, then answer normally.
* `disconnect`: close the connection without any HTTP response.
* `drop_write`: answer the success envelope (`{"success": true}`) without calling the handler: the write
  GenAuth says it made is not stored (tests of verified writes).
* `null_data`: answer the success envelope with `data: null` without calling the handler (a read that
  returns nothing for a user who exists).

`latency` (the attribute) is a delay in seconds added to every management API request.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

FAULT_KINDS = (
    "status_429",
    "status_500",
    "http_429",
    "http_500",
    "http_503",
    "latency",
    "disconnect",
    "drop_write",
    "null_data",
)
API_PREFIX = "/api/v3/"


@dataclass
class Fault:
    """One queued fault; `remaining` None means it fires until cleared, `path` None means any path."""

    kind: str
    path: str | None
    remaining: int | None
    retry_after: int | str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fault as a JSON-ready dict."""
        return asdict(self)


def api_path(path: str) -> str:
    """Accept `set-mfa-status` or `/api/v3/set-mfa-status` and return the latter."""
    return path if path.startswith("/") else API_PREFIX + path


class Faults:
    """A thread-safe queue of faults, matched first-queued-first against each request path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self.latency = 0.0

    def add(
        self,
        kind: str,
        *,
        path: str | None = None,
        times: int | None = 1,
        retry_after: int | str | None = None,
        seconds: float | None = None,
    ) -> Fault:
        """Queue a fault for the next `times` matching requests (None: until `clear()`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for until cleared")
        if kind == "latency" and (seconds is None or seconds < 0):
            raise ValueError("a latency fault needs seconds >= 0")
        fault = Fault(
            kind=kind,
            path=None if path is None else api_path(path),
            remaining=times,
            retry_after=retry_after,
            seconds=seconds,
        )
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, path: str) -> Fault | None:
        """Return the first fault matching `path`, using up one of its `times`."""
        with self._lock:
            for fault in self._pending:
                if fault.path is not None and fault.path != path:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._pending.remove(fault)
                return fault
        return None

    def pending(self) -> list[Fault]:
        """Return copies of the faults still queued."""
        with self._lock:
            return [Fault(**fault.to_dict()) for fault in self._pending]

    def clear(self) -> None:
        """Drop every queued fault and reset the default latency to zero."""
        with self._lock:
            self._pending.clear()
            self.latency = 0.0
