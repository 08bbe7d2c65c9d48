"""The webhook endpoint's refusals over real HTTP, and what is (not) kept of a payload."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.store.tables import decisions, events, work
from tests.support.store import wait_for_decision
from tests.support.values import PREVIOUS_SECRET, WEBHOOK_SECRET


def stored_counts(engine):
    with engine.connect() as connection:
        return tuple(
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() for table in (events, work)
        )


def post(live_service, body: bytes | str, *, headers=None, content_type="application/json"):
    merged = {"Content-Type": content_type, **(headers if headers is not None else {"x-authing-token": WEBHOOK_SECRET})}
    return requests.post(live_service.webhook_url, data=body, headers=merged, timeout=10)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "status", "message", "errors"}
    assert (body["status"], body["code"]) == (status, code)
    return body


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-authing-token": "wrong"}, {"x-authing-webhook-secret": ""}, {"Authorization": f"Bearer {WEBHOOK_SECRET}"}],
    ids=["missing", "wrong", "empty", "other-header"],
)
def test_missing_or_wrong_secret_is_401_and_nothing_is_stored(live_service, emulator, headers):
    """Without the right secret in a recognised header the answer is 401 and no row is written."""
    body = json.dumps(event_body(emulator.state, "login", emulator.users["fin.alice"]))
    assert_error(post(live_service, body, headers=headers), 401, "unauthorized")
    assert stored_counts(live_service.engine) == (0, 0)


def test_previous_secret_still_works_during_rotation(live_service, emulator):
    """A delivery signed with the second configured secret is accepted."""
    body = json.dumps(event_body(emulator.state, "test"))
    assert post(live_service, body, headers={"x-genauth-token": PREVIOUS_SECRET}).status_code == 200


def test_oversized_body_is_413_and_nothing_is_stored(live_service):
    """A body over 1 MiB is refused with 413."""
    body = json.dumps({"eventName": "login", "data": {"id": "u1", "pad": "x" * (1024 * 1024)}})
    assert_error(post(live_service, body), 413, "request_entity_too_large")
    assert stored_counts(live_service.engine) == (0, 0)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x"])
def test_other_content_types_are_415(live_service, content_type):
    """Only JSON and form bodies are accepted."""
    assert_error(post(live_service, "{}", content_type=content_type), 415, "unsupported_media_type")


def test_malformed_json_is_400(live_service):
    """A body that does not parse is 400 with a message saying where."""
    body = assert_error(post(live_service, '{"eventName": "login",'), 400, "malformed_body")
    assert "not valid JSON" in body["message"]


def test_invalid_event_is_422_with_field_errors(live_service):
    """A login without a user id is 422 and names the missing field."""
    body = assert_error(
        post(live_service, json.dumps({"eventName": "login", "data": {"email": "a@b"}})), 422, "invalid_delivery"
    )
    assert body["errors"] == {"data": {"id": ["Missing data for required field."]}}
    assert stored_counts(live_service.engine) == (0, 0)


def test_delivery_for_another_user_pool_is_403(live_service, emulator):
    """A delivery whose user-pool header or payload names another pool is refused and not stored."""
    body = event_body(emulator.state, "login", emulator.users["fin.alice"])
    headers = {"x-authing-token": WEBHOOK_SECRET, "x-authing-userpool-id": "ffffffffffffffffffffffff"}
    assert_error(post(live_service, json.dumps(body), headers=headers), 403, "wrong_userpool")
    body["data"]["userPoolId"] = "ffffffffffffffffffffffff"
    assert_error(post(live_service, json.dumps(body)), 403, "wrong_userpool")
    assert stored_counts(live_service.engine) == (0, 0)


def test_unknown_paths_and_methods_answer_json(live_service):
    """404 and 405 come back in the same JSON error shape."""
    assert_error(requests.get(f"{live_service.url}/nope", timeout=5), 404, "not_found")
    assert_error(requests.get(live_service.webhook_url, timeout=5), 405, "method_not_allowed")


def test_health_and_readiness(live_service):
    """/healthz is alive; /readyz reports the database and the loaded policy."""
    assert requests.get(f"{live_service.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{live_service.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok" and "rule(s) from" in ready.json()["checks"]["policy"]


def test_no_payload_secret_or_webhook_secret_reaches_logs_or_database(live_service, emulator, caplog):
    """Password hashes, salts, tokens, the webhook secret and the access key secret appear nowhere we write."""
    caplog.set_level(logging.DEBUG)
    bob = emulator.users["fin.bob"]
    body = event_body(emulator.state, "login", bob)
    secrets = [body["data"][key] for key in ("password", "salt", "token") if body["data"].get(key)]
    assert len(secrets) == 3, "the emulator must send payload secrets for this test to mean anything"
    secrets += [WEBHOOK_SECRET, emulator.state.access_key_secret]
    for encoding in ("json", "form-brackets"):
        assert live_service.sender.deliver(body, encoding=encoding).status_code == 200
    responses = [
        post(live_service, json.dumps({"eventName": "login", "data": {"id": 5, "password": secrets[0]}})),  # 422
        post(live_service, json.dumps({"eventName": "login", "data": {"id": secrets[1]}})[:-3]),  # 400
        post(live_service, "eventName=login&data[" + secrets[0] + "]=x", content_type="text/plain"),  # 415
        post(live_service, json.dumps(body), headers={"x-authing-token": secrets[3][:-1]}),  # 401
    ]
    assert [r.status_code for r in responses] == [422, 400, 415, 401]
    wait_for_decision(live_service.engine, bob)
    dumped = []
    with live_service.engine.connect() as connection:
        for table in (events, work, decisions):
            dumped += [json.dumps(dict(row._mapping), default=str) for row in connection.execute(sa.select(table))]
    haystacks = {
        "logs": caplog.text,
        "database": "\n".join(dumped),
        "error responses": "\n".join(r.text for r in responses),
        "metrics": requests.get(f"{live_service.url}/metrics", timeout=5).text,
    }
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret reached the {where}"
        assert "eyJ" not in text, f"a JWT reached the {where}"
    assert "webhook_received" in caplog.text and "decision_recorded" in caplog.text


def test_oversized_chunked_body_is_413_not_a_truncated_parse(live_service):
    """A body over the limit sent chunked (no Content-Length) is refused with 413, not parsed cut short."""

    def chunks():
        yield b'{"eventName": "login", "data": {"id": "u1", "pad": "'
        for _ in range(1100):
            yield b"x" * 1024
        yield b'"}}'

    response = requests.post(
        live_service.webhook_url,
        data=chunks(),
        timeout=10,
        headers={"Content-Type": "application/json", "x-authing-token": WEBHOOK_SECRET},
    )
    assert_error(response, 413, "request_entity_too_large")
    assert stored_counts(live_service.engine) == (0, 0)


def test_body_exactly_at_the_limit_is_accepted(live_service, settings):
    """A test delivery padded to exactly the limit is still accepted."""
    limit = settings.webhook.max_body_bytes
    body = {"eventName": "test", "data": {"pad": ""}}
    size = len(json.dumps(body).encode())
    body["data"]["pad"] = "x" * (limit - size)
    raw = json.dumps(body).encode()
    assert len(raw) == limit
    assert post(live_service, raw).status_code == 200


def test_an_overlong_user_pool_header_is_refused(live_service, emulator):
    """A user-pool header longer than a pool id is a 422, not a database error."""
    body = json.dumps(event_body(emulator.state, "test"))
    response = post(
        live_service, body, headers={"x-authing-token": WEBHOOK_SECRET, "x-authing-userpool-id": "p" * 5000}
    )
    assert_error(response, 422, "invalid_delivery")
    assert stored_counts(live_service.engine) == (0, 0)
