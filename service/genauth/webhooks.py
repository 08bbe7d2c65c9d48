"""GenAuth's webhook management API (contract §3.14), and which events the loaded rules need.

``mfa-enforcer webhooks …`` (``service.cli.webhooks``) calls these: ``subscribe`` creates our webhook, or
updates the one already pointing at the same URL, so running it twice leaves one webhook. ``events_for``
is the one place that says which events the service must hear about for a policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthUnavailableError
from service.policy.facts import Fact
from service.policy.rules import Policy

WEBHOOK_NAME = "mfa-enforcer"
JSON_CONTENT_TYPE = "application/json"
PAGE_LIMIT = 50
MAX_PAGES = 100

#: Events every policy needs: a user appears, signs in, changes, or goes away.
BASE_EVENTS: tuple[str, ...] = (
    "user:created",
    "register",
    "login",
    "user:updated",
    "user:deleted",
    "user:archived",
)

#: Events that change a fact a rule reads.
FACT_EVENTS: dict[Fact, tuple[str, ...]] = {
    Fact.DEPARTMENTS: ("organization:member-added", "organization:member-removed", "organization:node-moved"),
    Fact.GROUPS: ("group:member-added", "group:member-removed"),
    Fact.ROLES: ("role:assigned", "role:unassigned"),
}

Json = dict[str, Any]


def events_for(policy: Policy) -> list[str]:
    """The events our webhook must subscribe to for ``policy``, in a stable order."""
    events = list(BASE_EVENTS)
    for fact, fact_events in FACT_EVENTS.items():
        if fact in policy.needs:
            events.extend(fact_events)
    return events


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
            error = GenAuthUnavailableError(f"GenAuth {endpoint}: the answer is not a webhook")
            error.endpoint = endpoint
            raise error
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


def list_webhooks(client: GenAuthClient) -> list[Webhook]:
    """Every webhook of the pool, paging through ``list-webhooks``."""
    endpoint = "/api/v3/list-webhooks"
    webhooks: list[Webhook] = []
    for number in range(1, MAX_PAGES + 1):
        data = client.call("GET", endpoint, params={"page": str(number), "limit": str(PAGE_LIMIT)})
        items = data.get("list") if isinstance(data, dict) else None
        if not isinstance(items, list):
            items = []
        webhooks.extend(Webhook.from_api(item, endpoint) for item in items)
        total = data.get("totalCount") if isinstance(data, dict) else None
        if len(items) < PAGE_LIMIT or (isinstance(total, int) and len(webhooks) >= total):
            break
    return webhooks


def get_webhook(client: GenAuthClient, webhook_id: str) -> Webhook:
    endpoint = "/api/v3/get-webhook"
    return Webhook.from_api(client.call("GET", endpoint, params={"webhookId": webhook_id}), endpoint)


def create_webhook(
    client: GenAuthClient, *, name: str, url: str, events: list[str], secret: str, enabled: bool = True
) -> Webhook:
    endpoint = "/api/v3/create-webhook"
    body = {
        "name": name,
        "url": url,
        "contentType": JSON_CONTENT_TYPE,
        "events": events,
        "enabled": enabled,
        "secret": secret,
    }
    return Webhook.from_api(client.call("POST", endpoint, json_body=body), endpoint)


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


def subscribe(client: GenAuthClient, *, url: str, events: list[str], secret: str, name: str) -> Subscription:
    """Create our webhook for ``url``, or bring the existing one with that URL up to date."""
    same_url = [webhook for webhook in list_webhooks(client) if webhook.url == url]
    if not same_url:
        return Subscription("created", create_webhook(client, name=name, url=url, events=events, secret=secret))
    ours = next((webhook for webhook in same_url if webhook.name == name), same_url[0])
    duplicates = tuple(webhook for webhook in same_url if webhook is not ours)
    wanted: Json = {
        "name": name,
        "events": events,
        "contentType": JSON_CONTENT_TYPE,
        "enabled": True,
        "secret": secret,
    }
    current: Json = {
        "name": ours.name,
        "events": events if sorted(ours.events) == sorted(events) else list(ours.events),  # order is no change
        "contentType": ours.content_type,
        "enabled": ours.enabled,
        "secret": ours.secret,
    }
    if current == wanted:
        return Subscription("unchanged", ours, duplicates)
    return Subscription("updated", update_webhook(client, ours.webhook_id, **wanted), duplicates)
