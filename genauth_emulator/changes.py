"""`ChangeFeed`: how the pool tells its observers that something happened, named by GenAuth's webhook event.

`state.EmulatorState` emits a `Change` for every event GenAuth would send (a user created or updated, a member
added or removed, an app's MFA factors switched, ...), while it still holds its lock, so observers see the
pool exactly as the change left it. The observers are the webhook dispatcher (`webhook_delivery`) and the
event WebSocket (`event_socket`); each must return quickly (queue the work) and must not block on anything
but the state's own re-entrant lock. A change builds its webhook body only when an observer asks for it, so a
pool with no webhooks and no subscribers pays nothing per change (bulk seeding stays fast).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]


@dataclass
class Change:
    """One event: its webhook `eventName`, the user it is about (if one), and its webhook body on demand."""

    event: str
    user_id: str | None
    build: Callable[[], Body]
    _body: Body | None = field(default=None, repr=False)

    def body(self) -> Body:
        """The enveloped webhook body `{eventName, data}`, built once."""
        if self._body is None:
            self._body = self.build()
        return self._body


Observer = Callable[[Change], None]


class ChangeFeed:
    """Observers called, in subscription order, with each change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: tuple[Observer, ...] = ()  # replaced, never changed: emit reads it without the lock

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer` for every change from now on; returns the function that stops it."""
        with self._lock:
            self._observers = (*self._observers, observer)

        def unsubscribe() -> None:
            with self._lock:
                self._observers = tuple(item for item in self._observers if item is not observer)

        return unsubscribe

    def emit(self, change: Change) -> None:
        """Tell every observer about the change (the caller holds the state's lock)."""
        for observer in self._observers:
            observer(change)
