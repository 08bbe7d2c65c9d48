"""`Journal`: what the emulator's management API received and answered, for tests to assert on.

`app.py` records one `Entry` per `/api/v3/*` request after answering it (faulted ones included). Tests read it
directly (in-process) or through `GET /_emulator/journal`, and wait for a request with `wait_for`, which blocks
on a condition variable instead of polling with sleeps.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SECRET_BODY_FIELDS = ("accessKeySecret",)


@dataclass(frozen=True)
class Entry:
    """One request: header names are lower-case and the bearer token is redacted."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status_code: int | None
    http_status: int | None
    time: float

    def __getitem__(self, key: str) -> Any:
        """Allow `entry["body"]` as well as `entry.body`."""
        if key not in {field.name for field in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as a JSON-ready dict."""
        return dataclasses.asdict(self)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names and hide the management token."""
    cleaned = {name.lower(): value for name, value in headers.items()}
    if "authorization" in cleaned:
        scheme = cleaned["authorization"].split(" ", 1)[0]
        cleaned["authorization"] = f"{scheme} <redacted>" if scheme else "<redacted>"
    return cleaned


def redact_body(body: Any) -> Any:
    """Hide the access key secret `get-management-token` receives."""
    if isinstance(body, dict) and any(name in body for name in _SECRET_BODY_FIELDS):
        return {key: ("<redacted>" if key in _SECRET_BODY_FIELDS else value) for key, value in body.items()}
    return body


class Journal:
    """A thread-safe, append-only list of `Entry` with a condition to wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._entries: list[Entry] = []

    def record(self, entry: Entry) -> None:
        """Append an entry and wake anyone waiting."""
        with self._condition:
            self._entries.append(entry)
            self._condition.notify_all()

    def entries(self, path: str | None = None) -> list[Entry]:
        """Return the entries so far, oldest first, optionally only those for `path`."""
        with self._condition:
            return [entry for entry in self._entries if path is None or entry.path == path]

    def count(self, path: str | None = None) -> int:
        """Return how many requests were made to `path` (or at all)."""
        return len(self.entries(path))

    def clear(self) -> None:
        """Forget every entry."""
        with self._condition:
            self._entries.clear()

    def wait_for(
        self, predicate: Callable[[Entry], bool] | str, timeout: float = 10.0, *, count: int = 1
    ) -> list[Entry]:
        """Block until `count` entries match, then return all matching entries.

        `predicate` is called with each entry; a string means "the entry's path equals this". Raises
        `AssertionError` describing what did arrive if `timeout` seconds pass first.
        """
        matches = _as_predicate(predicate)
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = [entry for entry in self._entries if matches(entry)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._timeout_message(predicate, timeout, count, len(found)))
                self._condition.wait(remaining)

    def _timeout_message(self, predicate: object, timeout: float, count: int, found: int) -> str:
        seen = [f"{e.method} {e.path} -> {e.http_status}/{e.status_code}" for e in self._entries[-20:]]
        return (
            f"waited {timeout}s for {count} journal entries matching {predicate!r}, found {found}; "
            f"last {len(seen)} of {len(self._entries)} requests: {seen}"
        )


def _as_predicate(predicate: Callable[[Entry], bool] | str) -> Callable[[Entry], bool]:
    if isinstance(predicate, str):
        path = predicate
        return lambda entry: entry.path == path
    return predicate
