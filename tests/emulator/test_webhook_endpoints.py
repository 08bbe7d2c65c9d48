"""The emulator's webhook management API (docs/genauth.md §3.14): create, list, get, update, delete, the event list,
and trigger-webhook really delivering the test event with GenAuth's headers, logged in get-webhook-logs."""

from __future__ import annotations

import json
from typing import Any

from tests.support.emulator import Api, Receiver

EVENTS = ["user:created", "login", "organization:member-added"]


def create(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {"name": "hook", "url": "https://svc.example/webhooks/genauth", "contentType": "application/json"}
    body.update({"events": EVENTS, "secret": "s3cr3t", **overrides})
    envelope = api.post("create-webhook", body).json()
    assert envelope["statusCode"] == 200, envelope
    return envelope["data"]


def test_create_answers_a_webhook_dto_with_defaults(api: Api) -> None:
    """create-webhook answers the typed WebhookDto: enabled by default, events as an array, secret in clear."""
    webhook = create(api)
    assert len(webhook["webhookId"]) == 24
    assert webhook["enabled"] is True and webhook["events"] == EVENTS and webhook["secret"] == "s3cr3t"
    assert webhook["createdAt"] == webhook["updatedAt"] and webhook["createdAt"].endswith("Z")
    assert api.data("get-webhook", {"webhookId": webhook["webhookId"]}) == webhook


def test_create_refuses_missing_fields_unknown_events_and_bad_types(api: Api) -> None:
    """Required fields, known event names, the two content types and http(s) URLs are checked (400)."""
    base = {"name": "h", "url": "https://x.example/h", "contentType": "application/json", "events": ["login"]}
    for changes in (
        {"name": None},
        {"events": []},
        {"events": ["login", "user:exploded"]},
        {"contentType": "text/plain"},
        {"url": "ftp://x.example/h"},
        {"enabled": "yes"},
    ):
        envelope = api.post("create-webhook", {**base, **changes}).json()
        assert envelope["statusCode"] == 400, changes
    assert api.data("list-webhooks")["totalCount"] == 0


def test_list_pages_and_update_is_partial(api: Api) -> None:
    """list-webhooks pages (limit ≤ 50); update-webhook changes only the fields given."""
    made = [create(api, name=f"hook-{n}") for n in range(12)]
    first = api.data("list-webhooks")
    assert first["totalCount"] == 12 and len(first["list"]) == 10
    second = api.data("list-webhooks", {"page": 2, "limit": 10})
    assert [item["name"] for item in second["list"]] == ["hook-10", "hook-11"]
    assert api.get("list-webhooks", {"limit": 51}).json()["statusCode"] == 400
    envelope = api.post("update-webhook", {"webhookId": made[0]["webhookId"], "enabled": False, "events": ["login"]})
    updated = envelope.json()["data"]
    assert (updated["enabled"], updated["events"], updated["name"], updated["secret"]) == (
        False,
        ["login"],
        "hook-0",
        "s3cr3t",
    )
    missing = api.post("update-webhook", {"webhookId": "0" * 24, "name": "x"}).json()
    assert missing["statusCode"] == 404


def test_delete_ignores_unknown_ids_and_get_answers_404_after(api: Api) -> None:
    """delete-webhook removes the listed webhooks (unknown ids are no error); get-webhook then says 404."""
    webhook = create(api)
    envelope = api.post("delete-webhook", {"webhookIds": [webhook["webhookId"], "0" * 24]}).json()
    assert envelope["statusCode"] == 200
    assert api.get("get-webhook", {"webhookId": webhook["webhookId"]}).json()["statusCode"] == 404
    assert api.post("delete-webhook", {"webhookIds": "nope"}).json()["statusCode"] == 400


def test_event_list_has_categories_and_every_event_the_service_subscribes_to(api: Api) -> None:
    """get-webhook-event-list answers categories and events, including every event the service may ask for."""
    data = api.data("get-webhook-event-list")
    values = {event["value"] for event in data["events"]}
    categories = {category["value"] for category in data["categories"]}
    assert {event["category"] for event in data["events"]} <= categories
    wanted = {
        "user:created",
        "register",
        "login",
        "user:updated",
        "user:deleted",
        "user:archived",
        "organization:member-added",
        "organization:member-removed",
        "organization:node-moved",
        "group:member-added",
        "group:member-removed",
        "role:assigned",
        "role:unassigned",
    }
    assert wanted <= values


def test_trigger_delivers_the_test_event_with_the_secret_and_answers_the_response(api: Api, receiver: Receiver) -> None:
    """trigger-webhook POSTs {eventName: test} with GenAuth's headers and answers {response: <receiver's JSON>}."""
    webhook = create(api, url=receiver.url)
    data = api.post("trigger-webhook", {"webhookId": webhook["webhookId"]}).json()["data"]
    assert data == {"response": {"success": True}}
    [delivery] = receiver.deliveries
    assert json.loads(delivery.raw) == {"eventName": "test", "data": {"description": "A test from GenAuth Webhook"}}
    assert delivery.headers["x-authing-webhook-secret"] == "s3cr3t" == delivery.headers["x-authing-token"]
    assert delivery.headers["user-agent"] == "authing-webhook@2.0"
    assert delivery.headers["x-authing-userpool-id"] == api.server.state.userpool_id
    logs = api.post("get-webhook-logs", {"webhookId": webhook["webhookId"]}).json()["data"]
    assert logs["totalCount"] == 1
    assert logs["list"][0]["success"] is True and logs["list"][0]["responseStatusCode"] == 200


def test_trigger_honours_form_content_type_request_body_and_headers(api: Api, receiver: Receiver) -> None:
    """A form webhook gets a form body; requestBody and requestHeaders replace the test body and add headers."""
    webhook = create(api, url=receiver.url, contentType="application/x-www-form-urlencoded")
    body = {"webhookId": webhook["webhookId"], "requestBody": {"eventName": "login", "data": {"id": "u1"}}}
    api.post("trigger-webhook", {**body, "requestHeaders": {"x-extra": "1"}})
    [delivery] = receiver.deliveries
    assert delivery.content_type == "application/x-www-form-urlencoded"
    assert ("eventName", "login") in delivery.form and ("data[id]", "u1") in delivery.form
    assert delivery.headers["x-extra"] == "1"


def test_trigger_to_an_unreachable_url_answers_no_response_and_logs_the_failure(api: Api) -> None:
    """When the receiver cannot be reached, the response is null and the log says why."""
    webhook = create(api, url="http://127.0.0.1:9/hook")
    data = api.post("trigger-webhook", {"webhookId": webhook["webhookId"]}).json()["data"]
    assert data == {"response": None}
    [log] = api.post("get-webhook-logs", {"webhookId": webhook["webhookId"]}).json()["data"]["list"]
    assert log["success"] is False and log["errorMessage"]
    assert api.post("trigger-webhook", {"webhookId": "0" * 24}).json()["statusCode"] == 404


def test_webhook_endpoints_need_a_management_token(api: Api) -> None:
    """Like every management endpoint, the webhook ones answer 401 without a bearer token."""
    assert api.get("list-webhooks", headers={}).json()["statusCode"] == 401
