"""GenAuth's webhook management API (docs/genauth.md §3.14).

``mfa-enforcer webhooks …`` (``service.cli.webhooks``) calls these: ``subscribe`` creates our webhook, or
updates the one it manages (found by id, else by name, else by URL), so running it twice leaves one webhook
and a new URL moves the webhook instead of leaving the old one delivering. ``deliveries`` sums up GenAuth's
delivery log (``get-webhook-logs``) without ever keeping what the log holds besides outcomes: the logged
request carries the webhook secret and user data. Which events to subscribe to is the caller's
(``service.cli.webhooks.events_for``): this module knows GenAuth, not the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import GenAuthNotFoundError, GenAuthUnavailableError, trim
from service.genauth.paging import PAGE_LIMIT, Page, get_all, page_of

WEBHOOK_NAME = "mfa-enforcer"
WEBHOOK_PATH = "/webhooks/genauth"
"""Where the service receives deliveries."""
LOG_ENDPOINT = "/api/v3/get-webhook-logs"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Webhook:
    """A webhook as GenAuth describes it (``WebhookDto``); the secret never shows in ``repr``."""

    webhook_id: str
    name: str
    url: str
    content_type: str
    enabled: bool
    events: tuple[str, ...]
    secret: str | None = field(default=None, repr=False)
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_api(cls, data: Any, endpoint: str = "webhook") -> Webhook:
        if not isinstance(data, dict) or not isinstance(data.get("webhookId"), str):
            raise GenAuthUnavailableError(endpoint, "the answer is not a webhook")
        events = data.get("events")
        return cls(
            webhook_id=data["webhookId"],
            name=str(data.get("name") or ""),
            url=str(data.get("url") or ""),
            content_type=str(data.get("contentType") or ""),
            enabled=data.get("enabled") is True,
            events=tuple(event for event in events if isinstance(event, str)) if isinstance(events, list) else (),
            secret=data.get("secret") if isinstance(data.get("secret"), str) else None,
            created_at=data.get("createdAt") if isinstance(data.get("createdAt"), str) else None,
            updated_at=data.get("updatedAt") if isinstance(data.get("updatedAt"), str) else None,
        )


def is_managed(webhook: Webhook) -> bool:
    """One of ours: named ``WEBHOOK_NAME``, or sending to the service's path."""
    return webhook.name == WEBHOOK_NAME or urlsplit(webhook.url).path.rstrip("/") == WEBHOOK_PATH


def list_webhooks(client: GenAuthClient) -> list[Webhook]:
    """Every webhook of the pool, paging through ``list-webhooks``."""
    endpoint = "/api/v3/list-webhooks"
    return [Webhook.from_api(item, endpoint) for item in get_all(client, endpoint)]


def create_webhook(client: GenAuthClient, **fields: Any) -> Webhook:
    """Create a webhook with the given ``WebhookDto`` fields."""
    endpoint = "/api/v3/create-webhook"
    return Webhook.from_api(client.call("POST", endpoint, json_body=fields), endpoint)


def update_webhook(client: GenAuthClient, webhook_id: str, **changes: Any) -> Webhook:
    """Change the given ``WebhookDto`` fields (``name``, ``events``, ``contentType``, ``enabled``, ``secret``…)."""
    endpoint = "/api/v3/update-webhook"
    body = {"webhookId": webhook_id, **changes}
    return Webhook.from_api(client.call("POST", endpoint, json_body=body), endpoint)


def delete_webhooks(client: GenAuthClient, webhook_ids: list[str]) -> None:
    client.call("POST", "/api/v3/delete-webhook", json_body={"webhookIds": webhook_ids})


def trigger_webhook(client: GenAuthClient, webhook_id: str) -> Any:
    """Make GenAuth deliver its test event now; returns what the receiver answered (GenAuth's ``response``)."""
    data = client.call("POST", "/api/v3/trigger-webhook", json_body={"webhookId": webhook_id})
    return data.get("response") if isinstance(data, dict) else None


@dataclass(frozen=True)
class Subscription:
    """What ``subscribe`` did: ``created``, ``updated`` or ``unchanged``, and the webhook as it now is."""

    outcome: str
    webhook: Webhook
    duplicates: tuple[Webhook, ...] = ()
    """Other webhooks with the same URL (left alone; GenAuth would deliver each event to us more than once)."""
    previous_url: str | None = None
    """The URL the webhook sent to before this update, when it moved."""


def subscribe(
    client: GenAuthClient, *, url: str, events: list[str], secret: str, name: str, webhook_id: str | None = None
) -> Subscription:
    """Create our webhook for ``url``, or bring the one we manage up to date (its URL included).

    The webhook we manage is ``webhook_id`` if given, else the one named ``name`` (preferring one that already
    has ``url``), else one that already sends to ``url``. Other webhooks that send to ``url`` are duplicates.
    """
    found = list_webhooks(client)
    ours = _managed(found, url=url, name=name, webhook_id=webhook_id)
    duplicates = tuple(webhook for webhook in found if webhook.url == url and webhook is not ours)
    wanted: Json = {
        "name": name,
        "url": url,
        "contentType": JSON_CONTENT_TYPE,
        "events": events,
        "enabled": True,
        "secret": secret,
    }
    if ours is None:
        return Subscription("created", create_webhook(client, **wanted), duplicates)
    current: Json = {
        "name": ours.name,
        "url": ours.url,
        "contentType": ours.content_type,
        "events": events if sorted(ours.events) == sorted(events) else list(ours.events),  # order is no change
        "enabled": ours.enabled,
        "secret": ours.secret,
    }
    if current == wanted:
        return Subscription("unchanged", ours, duplicates)
    updated = update_webhook(client, ours.webhook_id, **wanted)
    return Subscription("updated", updated, duplicates, previous_url=ours.url if ours.url != url else None)


def _managed(found: list[Webhook], *, url: str, name: str, webhook_id: str | None) -> Webhook | None:
    if webhook_id is not None:
        chosen = next((webhook for webhook in found if webhook.webhook_id == webhook_id), None)
        if chosen is None:
            raise GenAuthNotFoundError("/api/v3/list-webhooks", f"no webhook {webhook_id}")
        return chosen
    named = [webhook for webhook in found if webhook.name == name]
    same_url = [webhook for webhook in found if webhook.url == url]
    return next((w for w in named if w.url == url), None) or next(iter(named), None) or next(iter(same_url), None)


@dataclass(frozen=True)
class Delivery:
    """One logged delivery attempt, reduced to its outcome (never its request or headers)."""

    at: str | None
    event: str | None
    success: bool
    status: int | None
    error: str | None

    def as_json(self) -> Json:
        return {"at": self.at, "event": self.event, "success": self.success, "status": self.status, "error": self.error}


@dataclass(frozen=True)
class DeliveryLog:
    """What GenAuth's delivery log says of recent deliveries: the newest success and the newest failure."""

    logged: int
    last_success: Delivery | None
    last_failure: Delivery | None


def deliveries(client: GenAuthClient, webhook_id: str) -> DeliveryLog:
    """The newest page of ``get-webhook-logs`` (newest first), summed up."""
    page = log_page(client, webhook_id, 1)
    entries = [_delivery(item) for item in page.items]
    return DeliveryLog(
        logged=len(entries) if page.total is None else page.total,
        last_success=next((entry for entry in entries if entry.success), None),
        last_failure=next((entry for entry in entries if not entry.success), None),
    )


def log_page(client: GenAuthClient, webhook_id: str, number: int) -> Page:
    """Page ``number`` (from 1) of the webhook's delivery log, ``PAGE_LIMIT`` entries, newest first; each entry
    is a ``WebhookLogDto`` (docs/genauth.md §3.14), request body and headers included: callers keep none of it."""
    body = {"webhookId": webhook_id, "page": number, "limit": PAGE_LIMIT}
    return page_of(client.call("POST", LOG_ENDPOINT, json_body=body), LOG_ENDPOINT)


def _delivery(item: Json) -> Delivery:
    status = item.get("responseStatusCode")
    status = status if isinstance(status, int) and not isinstance(status, bool) else None
    success = item.get("success")
    if not isinstance(success, bool):
        success = status is not None and 200 <= status < 300
    error = item.get("errorMessage") if isinstance(item.get("errorMessage"), str) else None
    body = item.get("responseBody")
    if not success and error is None:
        said = body.get("message") or body.get("code") if isinstance(body, dict) else None
        error = f"HTTP {status}" + (f": {said}" if isinstance(said, str) else "") if status else "no answer"
    return Delivery(
        at=item.get("timestamp") if isinstance(item.get("timestamp"), str) else None,
        event=item.get("eventName") if isinstance(item.get("eventName"), str) else None,
        success=success,
        status=status,
        error=trim(error) if error else None,
    )
