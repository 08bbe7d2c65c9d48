"""WebhookSender: each body encoding and header style, checked by what a loopback Flask receiver actually
got, including that bracket-notation forms decode back to the original body."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

import pytest

from genauth_emulator import EmulatorState, WebhookSender, encode_form_brackets, event_body
from tests.support.emulator import Receiver

SECRET = "hook-secret"


def _decode_brackets(pairs: list[tuple[str, str]]) -> Any:
    """Rebuild nested data from `a[b][0]=v` pairs (arrays come back as lists)."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        keys = re.findall(r"[^\[\]]+", name)
        node = root
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[str(index)] for index in range(len(converted))]
    return converted


def _as_form_strings(value: Any) -> Any:
    """What a body looks like after a trip through bracket notation: strings, no empty containers."""
    if isinstance(value, dict):
        return {k: _as_form_strings(v) for k, v in value.items() if not (isinstance(v, dict | list) and not v)}
    if isinstance(value, list):
        return [_as_form_strings(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


@pytest.fixture
def sender(receiver: Receiver, state: EmulatorState) -> Any:
    with WebhookSender(receiver.url, SECRET, state.userpool_id, timeout=5) as hooks:
        yield hooks


def test_json_delivery_with_authing_headers(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState, ids: dict[str, str]
) -> None:
    """The default sends JSON with user-agent, both x-authing secret headers, pool id and axios' Accept."""
    body = event_body(state, "login", ids["fin.alice"])
    answer = sender.deliver(body)
    assert answer.json() == {"success": True}
    (delivery,) = receiver.deliveries
    assert delivery.content_type == "application/json"
    assert json.loads(delivery.raw) == body
    assert delivery.headers["user-agent"] == "authing-webhook@2.0"
    assert delivery.headers["x-authing-webhook-secret"] == SECRET
    assert delivery.headers["x-authing-token"] == SECRET
    assert delivery.headers["x-authing-userpool-id"] == state.userpool_id
    assert delivery.headers["accept"] == "application/json, text/plain, */*"
    assert "x-genauth-token" not in delivery.headers


def test_genauth_header_style_sends_only_x_genauth_token(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState
) -> None:
    """header_style=genauth sends X-GenAuth-Token instead of the two x-authing secret headers."""
    sender.deliver(event_body(state, "test"), header_style="genauth")
    (delivery,) = receiver.deliveries
    assert delivery.headers["x-genauth-token"] == SECRET
    assert "x-authing-webhook-secret" not in delivery.headers
    assert "x-authing-token" not in delivery.headers
    assert delivery.headers["user-agent"] == "authing-webhook@2.0"


def test_form_brackets_decode_back_to_the_body(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState, ids: dict[str, str]
) -> None:
    """form-brackets is bracket notation that decodes to the body, with nulls empty and booleans true/false."""
    body = event_body(state, "organization:member-added", ids["fin.alice"], department_code="finance")
    sender.deliver(body, encoding="form-brackets")
    (delivery,) = receiver.deliveries
    assert delivery.content_type == "application/x-www-form-urlencoded"
    assert ("eventName", "organization:member-added") in delivery.form
    assert ("data[node][code]", "finance") in delivery.form
    assert ("data[user][registerSource][0]", "import:manual") in delivery.form
    assert ("data[user][blocked]", "false") in delivery.form
    assert ("data[user][nickname]", "") in delivery.form
    assert _decode_brackets(delivery.form) == _as_form_strings(body)


def test_encode_form_brackets_keeps_brackets_and_colons_readable() -> None:
    """The public encoder writes names like data[registerSource][0] and escapes what must be escaped."""
    text = encode_form_brackets(
        {
            "eventName": "login",
            "data": {"id": "u1", "registerSource": ["import:manual"], "n": None, "ok": True, "q": "a&b c"},
        }
    )
    assert text == (
        "eventName=login&data[id]=u1&data[registerSource][0]=import:manual&data[n]=&data[ok]=true&data[q]=a%26b%20c"
    )
    assert _decode_brackets(parse_qsl(text, keep_blank_values=True))["data"]["q"] == "a&b c"


def test_form_json_field_puts_data_in_one_json_field(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState, ids: dict[str, str]
) -> None:
    """form-json-field sends eventName=...&data=<JSON string>."""
    body = event_body(state, "login", ids["fin.alice"])
    sender.deliver(body, encoding="form-json-field")
    (delivery,) = receiver.deliveries
    fields = dict(delivery.form)
    assert fields["eventName"] == "login"
    assert json.loads(fields["data"]) == body["data"]


def test_form_raw_json_labels_a_json_body_as_a_form(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState, ids: dict[str, str]
) -> None:
    """form-raw-json sends the JSON text with the form content type."""
    body = event_body(state, "user:created", ids["fin.alice"])
    sender.deliver(body, encoding="form-raw-json")
    (delivery,) = receiver.deliveries
    assert delivery.content_type == "application/x-www-form-urlencoded"
    assert json.loads(delivery.raw) == body


def test_bare_login_sends_the_user_without_envelope(
    sender: WebhookSender, receiver: Receiver, state: EmulatorState, ids: dict[str, str]
) -> None:
    """bare=True sends data alone, as the GenAuth guide's login example shows."""
    sender.deliver(event_body(state, "login", ids["fin.alice"]), bare=True)
    (delivery,) = receiver.deliveries
    sent = json.loads(delivery.raw)
    assert "eventName" not in sent
    assert sent["id"] == ids["fin.alice"] and sent["userPoolId"] == state.userpool_id


def test_extra_headers_are_added_or_override(sender: WebhookSender, receiver: Receiver, state: EmulatorState) -> None:
    """extra_headers are sent too and win over the defaults (e.g. a wrong secret)."""
    sender.deliver(event_body(state, "test"), extra_headers={"x-authing-token": "wrong", "X-Trace": "1"})
    (delivery,) = receiver.deliveries
    assert delivery.headers["x-authing-token"] == "wrong"
    assert delivery.headers["x-trace"] == "1"


def test_sender_rejects_unknown_options(sender: WebhookSender, state: EmulatorState) -> None:
    """Unknown encodings or header styles, and bare bodies without data, raise ValueError before sending."""
    with pytest.raises(ValueError, match="encoding"):
        sender.deliver(event_body(state, "test"), encoding="xml")
    with pytest.raises(ValueError, match="header style"):
        sender.deliver(event_body(state, "test"), header_style="okta")
    with pytest.raises(ValueError, match="bare"):
        sender.deliver({"description": "x"}, bare=True)
