"""`WebhookRegistry`: the webhooks configured in the emulated user pool, and the log of their deliveries.

`state.EmulatorState` owns one (`state.webhooks`) and shares its lock with it; `webhook_endpoints` serves it as
GenAuth's webhook management API (docs/genauth.md §3.14) and `webhook_delivery` writes the log. Records are
`WebhookDto`-shaped dicts; every method hands out copies. The event catalogue (`EVENTS`) is what
`get-webhook-event-list` answers and what create/update accept. Logs are kept newest first, as a delivery log
is read (GenAuth does not document the order or how long it keeps them; the emulator keeps them all).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from genauth_emulator.records import iso_timestamp, new_object_id

CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")

#: (value, English name) of each event category.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("user", "User"),
    ("organization", "Organization"),
    ("group", "Group"),
    ("role", "Role"),
    ("mfa", "MFA"),
    ("application", "Application"),
    ("other", "Other"),
)

#: (value, English name, category) of each subscribable event (docs/genauth.md §1.7, SDK enum subset).
EVENTS: tuple[tuple[str, str, str], ...] = (
    ("login", "Login", "user"),
    ("register", "Register", "user"),
    ("user:created", "Create User", "user"),
    ("user:updated", "Update User", "user"),
    ("user:deleted", "Delete User", "user"),
    ("user:blocked", "Block User", "user"),
    ("user:unblocked", "Unblock User", "user"),
    ("user:archived", "Archive User", "user"),
    ("user:unarchived", "Unarchive User", "user"),
    ("user:password-changed", "Password Changed", "user"),
    ("user:email-verified", "Email Verified", "user"),
    ("organization:member-added", "Member Added", "organization"),
    ("organization:member-removed", "Member Removed", "organization"),
    ("organization:node-added", "Department Added", "organization"),
    ("organization:node-updated", "Department Updated", "organization"),
    ("organization:node-deleted", "Department Deleted", "organization"),
    ("organization:node-moved", "Department Moved", "organization"),
    ("organization:created", "Organization Created", "organization"),
    ("organization:deleted", "Organization Deleted", "organization"),
    ("organization:imported", "Organization Imported", "organization"),
    ("organization:tree-updated", "Organization Tree Updated", "organization"),
    ("organization:udv-changed", "Department Custom Field Changed", "organization"),
    ("group:member-added", "Group Member Added", "group"),
    ("group:member-removed", "Group Member Removed", "group"),
    ("role:assigned", "Role Assigned", "role"),
    ("role:unassigned", "Role Unassigned", "role"),
    ("mfa:verified", "MFA Verified", "mfa"),
    ("application:mfa:enabled", "Application MFA Enabled", "application"),
    ("application:mfa:disabled", "Application MFA Disabled", "application"),
    ("test", "Test", "other"),
)
EVENT_VALUES = frozenset(value for value, _, _ in EVENTS)


class UnknownWebhookError(LookupError):
    """No webhook has the id given."""


def event_catalogue() -> dict[str, list[dict[str, str]]]:
    """`get-webhook-event-list`'s `data`: the categories and the events in each."""
    return {
        "categories": [{"name": name, "nameEn": name, "value": value} for value, name in CATEGORIES],
        "events": [
            {"name": name, "nameEn": name, "value": value, "category": category} for value, name, category in EVENTS
        ],
    }


class WebhookRegistry:
    """Thread-safe webhooks by id (in creation order) and their delivery logs, newest log first.

    `lock` is the lock to guard them with (the state's, so the pool has one); a registry of its own makes one.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, lock: threading.RLock | None = None) -> None:
        self._lock = lock if lock is not None else threading.RLock()
        self._logged = threading.Condition(self._lock)
        self._clock = clock
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._logs: dict[str, list[dict[str, Any]]] = {}

    def create(
        self,
        *,
        name: str,
        url: str,
        content_type: str,
        events: Sequence[str],
        enabled: bool = True,
        secret: str | None = None,
    ) -> dict[str, Any]:
        """Add a webhook and return it as `WebhookDto`."""
        with self._lock:
            now = iso_timestamp(self._clock())
            webhook_id = new_object_id(self._clock())
            while webhook_id in self._webhooks:
                webhook_id = new_object_id(self._clock())
            self._webhooks[webhook_id] = {
                "webhookId": webhook_id,
                "createdAt": now,
                "updatedAt": now,
                "name": name,
                "url": url,
                "contentType": content_type,
                "enabled": enabled,
                "events": list(events),
                "secret": secret,
            }
            return copy.deepcopy(self._webhooks[webhook_id])

    def update(self, webhook_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a partial update (`WebhookDto` keys) and return the webhook."""
        with self._lock:
            webhook = self._find(webhook_id)
            webhook.update(copy.deepcopy(dict(changes)))
            webhook["updatedAt"] = iso_timestamp(self._clock())
            return copy.deepcopy(webhook)

    def get(self, webhook_id: str) -> dict[str, Any]:
        """Return one webhook."""
        with self._lock:
            return copy.deepcopy(self._find(webhook_id))

    def all(self) -> list[dict[str, Any]]:
        """Return every webhook, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self._webhooks.values()))

    def delete(self, webhook_ids: Sequence[str]) -> None:
        """Remove webhooks; unknown ids are ignored, as GenAuth does."""
        with self._lock:
            for webhook_id in webhook_ids:
                self._webhooks.pop(webhook_id, None)
                self._logs.pop(webhook_id, None)

    def subscribed(self, event: str) -> list[dict[str, Any]]:
        """The enabled webhooks whose events include `event`, oldest first."""
        if not self._webhooks:  # the common case, checked without the lock: bulk seeding stays cheap
            return []
        with self._lock:
            return [
                copy.deepcopy(webhook)
                for webhook in self._webhooks.values()
                if webhook["enabled"] and event in webhook["events"]
            ]

    def add_log(self, webhook_id: str, entry: Mapping[str, Any]) -> None:
        """Record one delivery attempt (`WebhookLogDto`); a webhook deleted meanwhile keeps no log."""
        with self._lock:
            if webhook_id in self._webhooks:
                self._logs.setdefault(webhook_id, []).append(copy.deepcopy(dict(entry)))
            self._logged.notify_all()

    def logs(self, webhook_id: str) -> list[dict[str, Any]]:
        """Return the webhook's delivery logs, newest first (none for an unknown id)."""
        with self._lock:
            return copy.deepcopy(self._logs.get(webhook_id, [])[::-1])

    def log_page(self, webhook_id: str, page: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """`(totalCount, one page of the logs, newest first)` without copying the rest."""
        with self._lock:
            entries = self._logs.get(webhook_id, [])
            end = len(entries) - (page - 1) * limit
            start = max(0, end - limit)
            return len(entries), copy.deepcopy(entries[start : max(0, end)][::-1])

    def wait_for_logs(self, webhook_id: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until the webhook has `count` log entries, then return them newest first.

        Raises `AssertionError` saying how many arrived if `timeout` seconds pass first.
        """
        deadline = time.monotonic() + timeout
        with self._logged:
            while len(self._logs.get(webhook_id, [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    found = len(self._logs.get(webhook_id, []))
                    raise AssertionError(f"waited {timeout}s for {count} log entries of {webhook_id}, found {found}")
                self._logged.wait(remaining)
            return self.logs(webhook_id)

    def _find(self, webhook_id: str) -> dict[str, Any]:
        webhook = self._webhooks.get(webhook_id)
        if webhook is None:
            raise UnknownWebhookError(webhook_id)
        return webhook
