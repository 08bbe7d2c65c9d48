"""Webhooks created through create-webhook are real: the pool's changes are delivered to every enabled webhook
subscribed to the event, with GenAuth's headers, the webhook's own secret and content type, and every attempt
(failures included) is in its log, which get-webhook-logs pages newest first."""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from genauth_emulator import EmulatorServer, EmulatorState
from tests.support.emulator import Api, Receiver

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0800")


def webhook(api: Api, url: str, events: list[str], **fields: Any) -> dict[str, Any]:
    body = {"name": "hook", "url": url, "contentType": "application/json", "events": events, "secret": "s3cr3t"}
    envelope = api.post("create-webhook", {**body, **fields}).json()
    assert envelope["statusCode"] == 200, envelope
    return dict(envelope["data"])


def logs(api: Api, webhook_id: str, **paging: int) -> dict[str, Any]:
    envelope = api.post("get-webhook-logs", {"webhookId": webhook_id, **paging}).json()
    assert envelope["statusCode"] == 200, envelope
    return dict(envelope["data"])


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(delivery.raw) for delivery in receiver.deliveries]


def test_user_changes_are_delivered_with_the_webhooks_secret_and_logged(api: Api, receiver: Receiver) -> None:
    """user:created, login and user:updated reach the receiver in order with GenAuth's headers; each is logged."""
    hook = webhook(api, receiver.url, ["user:created", "login", "user:updated"])
    state = api.server.state
    user = state.add_user(username="new.hire", email="new.hire@acme.example", departments=("finance",))
    state.login(user["userId"])
    state.update_user(user["userId"], phone="13900000001")
    assert state.wait_for_deliveries(10)
    sent = bodies(receiver)
    assert [body["eventName"] for body in sent] == ["user:created", "login", "user:updated"]
    assert sent[0]["data"]["id"] == user["userId"] and sent[0]["data"]["registerMethod"] == "import:manual"
    assert sent[1]["data"]["loginsCount"] == 1
    assert sent[2]["data"]["updates"] == {"phone": "13900000001"}
    headers = receiver.deliveries[0].headers
    assert headers["x-authing-webhook-secret"] == headers["x-authing-token"] == "s3cr3t"
    assert headers["user-agent"] == "authing-webhook@2.0" and headers["x-authing-userpool-id"] == state.userpool_id
    logged = logs(api, hook["webhookId"])
    assert logged["totalCount"] == 3
    newest = logged["list"][0]
    assert newest["eventName"] == "user:updated" and newest["success"] is True
    assert newest["responseStatusCode"] == 200 and newest["responseBody"] == {"success": True}
    assert newest["requestBody"] == sent[2] and newest["requestHeaders"]["x-authing-webhook-secret"] == "s3cr3t"
    assert TIMESTAMP.fullmatch(newest["timestamp"]), newest["timestamp"]
    assert "errorMessage" not in newest


def test_membership_group_and_role_changes_are_delivered(api: Api, receiver: Receiver, ids: dict[str, str]) -> None:
    """organization:member-added/-removed carry {user, node}; group and role events their constructed shapes."""
    webhook(
        api,
        receiver.url,
        ["organization:member-added", "organization:member-removed", "group:member-added", "role:assigned"],
    )
    state = api.server.state
    state.add_member(ids["new.erin"], "finance")
    state.add_member(ids["new.erin"], "finance")  # already a member: no second event
    state.remove_member(ids["new.erin"], "finance")
    state.add_group_member(ids["new.erin"], "mfa-exempt")
    state.assign_role(ids["new.erin"], "admin")
    assert state.wait_for_deliveries(10)
    sent = bodies(receiver)
    assert [body["eventName"] for body in sent] == [
        "organization:member-added",
        "organization:member-removed",
        "group:member-added",
        "role:assigned",
    ]
    assert sent[0]["data"]["node"]["code"] == "finance" and sent[0]["data"]["user"]["id"] == ids["new.erin"]
    assert sent[2]["data"]["group"]["code"] == "mfa-exempt"
    assert sent[3]["data"]["userIds"] == [ids["new.erin"]]


def test_only_enabled_webhooks_subscribed_to_the_event_get_it(api: Api, receiver: Receiver) -> None:
    """A disabled webhook and one not subscribed to user:created get nothing; nothing is logged for them."""
    subscribed = webhook(api, receiver.url, ["user:created"])
    disabled = webhook(api, receiver.url, ["user:created"], enabled=False)
    other = webhook(api, receiver.url, ["login"])
    api.server.state.add_user(username="once")
    assert api.server.state.wait_for_deliveries(10)
    assert len(receiver.deliveries) == 1
    assert logs(api, subscribed["webhookId"])["totalCount"] == 1
    assert logs(api, disabled["webhookId"])["totalCount"] == logs(api, other["webhookId"])["totalCount"] == 0


def test_a_form_webhook_gets_bracket_notation(api: Api, receiver: Receiver) -> None:
    """contentType application/x-www-form-urlencoded: the delivery is form-encoded, the log keeps the object."""
    hook = webhook(api, receiver.url, ["user:created"], contentType="application/x-www-form-urlencoded")
    user = api.server.state.add_user(username="form.user")
    assert api.server.state.wait_for_deliveries(10)
    [delivery] = receiver.deliveries
    assert delivery.content_type == "application/x-www-form-urlencoded"
    assert ("eventName", "user:created") in delivery.form and ("data[id]", user["userId"]) in delivery.form
    assert logs(api, hook["webhookId"])["list"][0]["requestBody"]["data"]["id"] == user["userId"]


def test_a_receiver_that_is_down_is_a_failed_attempt_in_the_log(api: Api) -> None:
    """Nothing listens at the URL: the log says success false, no status code, errorMessage ECONNREFUSED."""
    hook = webhook(api, "http://127.0.0.1:9/hook", ["user:created"])
    api.server.state.add_user(username="nobody.home")
    assert api.server.state.wait_for_deliveries(10)
    [entry] = logs(api, hook["webhookId"])["list"]
    assert entry["success"] is False and entry["responseStatusCode"] is None
    assert entry["errorMessage"] == "ECONNREFUSED" and entry["eventName"] == "user:created"


def test_a_slow_receiver_times_out_and_an_error_status_fails(api: Api, receiver: Receiver) -> None:
    """Slower than the delivery timeout: ERRTIMEOUT; a 500 answer: success false with its status code."""
    state = api.server.state
    hook = webhook(api, receiver.url, ["user:created"])
    state.delivery_timeout = 0.2
    receiver.delay = 1.0
    state.add_user(username="too.slow")
    assert state.wait_for_deliveries(10)
    receiver.delay, receiver.status = 0.0, 500
    state.add_user(username="server.error")
    assert state.wait_for_deliveries(10)
    failed, timed_out = logs(api, hook["webhookId"])["list"]
    assert timed_out["success"] is False and timed_out["errorMessage"] == "ERRTIMEOUT"
    assert failed["success"] is False and failed["responseStatusCode"] == 500
    assert failed["errorMessage"] == "Request failed with status code 500"


def test_logs_page_newest_first_and_cap_the_page_at_50(api: Api, receiver: Receiver) -> None:
    """55 deliveries: page 1 holds the newest 50, page 2 the oldest 5; limit 51 is refused."""
    hook = webhook(api, receiver.url, ["user:created"])
    state = api.server.state
    state.add_users([{"username": f"bulk{i:02d}"} for i in range(55)])
    assert state.wait_for_deliveries(20)
    first = logs(api, hook["webhookId"], page=1, limit=50)
    second = logs(api, hook["webhookId"], page=2, limit=50)
    assert first["totalCount"] == second["totalCount"] == 55
    names = [entry["requestBody"]["data"]["username"] for entry in first["list"] + second["list"]]
    assert names == [f"bulk{i:02d}" for i in reversed(range(55))]
    assert api.post("get-webhook-logs", {"webhookId": hook["webhookId"], "limit": 51}).json()["statusCode"] == 400


def test_auto_delivery_can_be_switched_off(api: Api, receiver: Receiver) -> None:
    """With auto_deliver off (state or control API) changes reach no webhook; trigger-webhook still works."""
    hook = webhook(api, receiver.url, ["user:created"])
    answer = api.session.post(f"{api.server.url}/_emulator/settings", json={"autoDeliver": False}, timeout=5).json()
    assert answer["autoDeliver"] is False
    api.server.state.add_user(username="quiet")
    assert api.server.state.wait_for_deliveries(5)
    assert receiver.deliveries == []
    api.post("trigger-webhook", {"webhookId": hook["webhookId"]})
    assert [body["eventName"] for body in bodies(receiver)] == ["test"]


def test_the_control_api_creates_users_signs_them_in_and_waits_for_deliveries(api: Api, receiver: Receiver) -> None:
    """POST /_emulator/users and /users/<id>/login fire the events; /deliveries/wait returns once they are sent."""
    webhook(api, receiver.url, ["user:created", "login"])
    base = f"{api.server.url}/_emulator"
    created = api.session.post(f"{base}/users", json={"username": "ctl.user", "departments": ["finance"]}, timeout=5)
    assert created.status_code == 201
    user_id = created.json()["user"]["userId"]
    assert api.session.post(f"{base}/users/{user_id}/login", timeout=5).json()["user"]["loginsCount"] == 1
    assert api.session.post(f"{base}/deliveries/wait", json={"timeout": 10}, timeout=15).json() == {"idle": True}
    assert [body["eventName"] for body in bodies(receiver)] == ["user:created", "login"]
    assert api.session.post(f"{base}/users", json={"departments": ["nowhere"]}, timeout=5).status_code == 404


def test_a_pool_without_webhooks_builds_no_bodies(receiver: Receiver) -> None:
    """Seeding with nobody listening sends nothing and queues nothing."""
    state = EmulatorState()
    state.add_users([{"username": f"u{i}"} for i in range(100)])
    assert state._dispatcher.pending == 0 and state.wait_for_deliveries(0.1)
    assert receiver.deliveries == []


def test_deliveries_survive_a_webhook_deleted_meanwhile(api: Api, receiver: Receiver) -> None:
    """A webhook deleted while its delivery is queued: the attempt happens, no log is kept, nothing breaks."""
    hook = webhook(api, receiver.url, ["user:created"])
    receiver.delay = 0.3
    api.server.state.add_user(username="racing")
    api.post("delete-webhook", {"webhookIds": [hook["webhookId"]]})
    assert api.server.state.wait_for_deliveries(10)
    assert logs(api, hook["webhookId"])["totalCount"] == 0


def test_existing_service_style_subscription_is_not_disturbed(server: EmulatorServer) -> None:
    """A webhook created with state.webhooks.create (as tests do) to an unreachable URL only adds log entries."""
    created = server.state.webhooks.create(
        name="mfa-enforcer", url="http://127.0.0.1:9/x", content_type="application/json", events=["login"]
    )
    server.state.login(server.state.user_ids()[0])
    assert server.state.wait_for_deliveries(10)
    assert [entry["success"] for entry in server.state.webhooks.logs(created["webhookId"])] == [False]


def test_renaming_a_department_through_the_control_api_sends_node_updated(
    api: Api, receiver: Receiver, ids: dict[str, str]
) -> None:
    """POST /_emulator/departments/<code> {name} renames it in the API's answers and delivers
    organization:node-updated with the node as it now is and the changed field; an unknown code is a 404."""
    webhook(api, receiver.url, ["organization:node-updated"])
    base = api.server.url
    assert requests.post(f"{base}/_emulator/departments/engineering", json={"name": "Platform"}, timeout=5).ok
    assert requests.post(f"{base}/_emulator/departments/nope", json={"name": "X"}, timeout=5).status_code == 404
    assert requests.post(f"{base}/_emulator/departments/engineering", json={}, timeout=5).status_code == 400
    assert api.server.state.wait_for_deliveries(10)
    [sent] = bodies(receiver)
    assert sent["eventName"] == "organization:node-updated"
    assert (sent["data"]["node"]["code"], sent["data"]["node"]["name"]) == ("engineering", "Platform")
    assert sent["data"]["updates"] == {"name": "Platform"}
    listed = api.data("get-all-departments", {"organizationCode": "acme"})["list"]
    assert {item["code"]: item["name"] for item in listed}["engineering"] == "Platform"
