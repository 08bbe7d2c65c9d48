"""Management API endpoints for webhooks (docs/genauth.md §3.14): create, list, get, update, delete, the event
list, delivery logs, and `trigger-webhook`, which really POSTs the test event to the webhook's URL with GenAuth's
headers (§1.2) and answers with what the receiver returned; also `list-events`, the event codes the event
WebSocket publishes. Registered by `app.api_routes`.

`delete-webhook` answers `{success: true}` (the SDKs type it `IsSuccessRespDto`); `get-webhook-logs` takes
`{webhookId, page, limit}` in the body and pages the log newest first, at most 50 entries a page.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from genauth_emulator import event_socket
from genauth_emulator.parsing import ApiCall, json_object, page_and_limit, paginated, query_page_and_limit, required
from genauth_emulator.payloads import event_body
from genauth_emulator.responses import ApiError
from genauth_emulator.webhook_delivery import attempt
from genauth_emulator.webhooks import CONTENT_TYPES, EVENT_VALUES, UnknownWebhookError, event_catalogue

DELIVERY_TIMEOUT = 10.0


def create_webhook(call: ApiCall) -> dict[str, Any]:
    """Create a webhook from `name`, `url`, `contentType`, `events` and optional `enabled`, `secret`."""
    body = json_object(call.body)
    for name in ("name", "url", "contentType", "events"):
        if body.get(name) is None:
            raise ApiError(400, f"{name} is required")
    fields = _checked_fields(body)
    return call.state.webhooks.create(
        name=fields["name"],
        url=fields["url"],
        content_type=fields["contentType"],
        events=fields["events"],
        enabled=fields.get("enabled", True),
        secret=fields.get("secret"),
    )


def list_webhooks(call: ApiCall) -> dict[str, Any]:
    """Answer one page of webhooks, oldest first."""
    page, limit = query_page_and_limit(call.args)
    return paginated(call.state.webhooks.all(), page, limit)


def get_webhook(call: ApiCall) -> dict[str, Any]:
    """Answer one `WebhookDto`."""
    webhook_id = required(call.args, "webhookId")
    try:
        return call.state.webhooks.get(webhook_id)
    except UnknownWebhookError:
        raise _not_found(webhook_id) from None


def update_webhook(call: ApiCall) -> dict[str, Any]:
    """Change the fields given (a partial update) and answer the webhook."""
    body = json_object(call.body)
    webhook_id = body.get("webhookId")
    if not isinstance(webhook_id, str) or not webhook_id:
        raise ApiError(400, "webhookId is required")
    try:
        return call.state.webhooks.update(webhook_id, _checked_fields(body))
    except UnknownWebhookError:
        raise _not_found(webhook_id) from None


def delete_webhook(call: ApiCall) -> dict[str, bool]:
    """Delete the webhooks in `webhookIds`; unknown ids are no error."""
    body = json_object(call.body)
    webhook_ids = body.get("webhookIds")
    if not isinstance(webhook_ids, list) or not all(isinstance(item, str) for item in webhook_ids):
        raise ApiError(400, "webhookIds must be an array of strings")
    call.state.webhooks.delete(webhook_ids)
    return {"success": True}


def get_webhook_event_list(call: ApiCall) -> dict[str, Any]:
    """Answer the event categories and the subscribable events."""
    return event_catalogue()


def get_webhook_logs(call: ApiCall) -> dict[str, Any]:
    """Answer one page of a webhook's delivery logs, newest first (none for an unknown id)."""
    body = json_object(call.body)
    webhook_id = body.get("webhookId")
    if not isinstance(webhook_id, str) or not webhook_id:
        raise ApiError(400, "webhookId is required")
    page, limit = page_and_limit(body.get("page"), body.get("limit"))
    total, entries = call.state.webhooks.log_page(webhook_id, page, limit)
    return {"totalCount": total, "list": entries}


def trigger_webhook(call: ApiCall) -> dict[str, Any]:
    """Deliver the test event (or `requestBody`) to the webhook now; answer `{response: <receiver's answer>}`."""
    body = json_object(call.body)
    webhook_id = body.get("webhookId")
    if not isinstance(webhook_id, str) or not webhook_id:
        raise ApiError(400, "webhookId is required")
    try:
        webhook = call.state.webhooks.get(webhook_id)
    except UnknownWebhookError:
        raise _not_found(webhook_id) from None
    payload = _optional_object(body, "requestBody") or event_body(call.state, "test")
    extra_headers = {str(key): str(value) for key, value in (_optional_object(body, "requestHeaders") or {}).items()}
    log, answer = attempt(
        webhook,
        payload,
        userpool_id=call.state.userpool_id,
        timeout=DELIVERY_TIMEOUT,
        now=time.time,
        extra_headers=extra_headers,
    )
    call.state.webhooks.add_log(webhook_id, log)
    return {"response": answer}


def list_events(call: ApiCall) -> dict[str, Any]:
    """Answer one page of the event codes the emulator publishes on its WebSocket (`OpenEventDto`s)."""
    page, limit = query_page_and_limit(call.args)
    return paginated(event_socket.event_catalogue(), page, limit)


def _checked_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The `WebhookDto` fields present in `body`, validated; `ApiError(400)` names the first bad one."""
    fields: dict[str, Any] = {}
    for name in ("name", "url", "secret"):
        if body.get(name) is not None:
            if not isinstance(body[name], str) or (name != "secret" and not body[name].strip()):
                raise ApiError(400, f"{name} must be a non-empty string")
            fields[name] = body[name]
    if "url" in fields and not fields["url"].startswith(("http://", "https://")):
        raise ApiError(400, "url must be an http(s) URL")
    if body.get("contentType") is not None:
        if body["contentType"] not in CONTENT_TYPES:
            raise ApiError(400, f"contentType must be one of {', '.join(CONTENT_TYPES)}")
        fields["contentType"] = body["contentType"]
    if body.get("events") is not None:
        events = body["events"]
        if not isinstance(events, list) or not events or not all(isinstance(event, str) for event in events):
            raise ApiError(400, "events must be a non-empty array of event names")
        unknown = sorted(set(events) - EVENT_VALUES)
        if unknown:
            raise ApiError(400, f"unknown events {unknown}; see get-webhook-event-list")
        fields["events"] = list(dict.fromkeys(events))
    if body.get("enabled") is not None:
        if not isinstance(body["enabled"], bool):
            raise ApiError(400, "enabled must be a boolean")
        fields["enabled"] = body["enabled"]
    return fields


def _optional_object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, f"{name} must be an object")
    return value


def _not_found(webhook_id: str) -> ApiError:
    return ApiError(404, f"Webhook {webhook_id} does not exist")
