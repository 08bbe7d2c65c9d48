"""Event WebSocket messages read as the webhook bodies they stand for (``service.intake.listening.webhook_body``):
every shape the sources allow (docs/genauth.md §5.2), and a clear refusal for anything else."""

from __future__ import annotations

import json

import pytest

from genauth_emulator.event_socket import SHAPES, encode_message
from service.intake.errors import HttpError
from service.intake.listening import UnreadableMessageError, webhook_body
from service.intake.schemas import interpret

USER = {"userId": "u1", "userPoolId": "pool1", "username": "alice", "password": "not-read"}
MAX_VALUES = 32768


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("code", "event"),
    [
        ("authing.user.created", "user:created"),
        ("authing.user.updated", "user:updated"),
        ("authing.user.login", "login"),
    ],
)
def test_every_message_shape_names_the_user_as_its_webhook_would(shape, code, event):
    """Object, JSON string, envelope with a string or an object: each is read as the event's webhook body, and
    the intake's own extraction finds the user and the pool in it."""
    body = webhook_body(code, encode_message(code, USER, shape), max_values=MAX_VALUES)
    interpretation = interpret(body)
    assert interpretation.event_name == event
    assert [subject.id for subject in interpretation.subjects] == ["u1"]
    assert interpretation.userpool_ids == ("pool1",)


def test_a_binary_frame_of_json_is_read_like_a_text_frame():
    """A frame sent as bytes holding UTF-8 JSON is the same message."""
    body = webhook_body("authing.user.created", json.dumps(USER).encode(), max_values=MAX_VALUES)
    assert body["eventName"] == "user:created"


def test_a_webhook_body_inside_a_message_is_taken_as_it_is():
    """A message that already is a webhook body (``eventName``) keeps its own event."""
    body = {"eventName": "user:updated", "data": {"user": USER}}
    assert webhook_body("authing.user.created", json.dumps(body), max_values=MAX_VALUES) == body


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        b"\xff\xfe binary",
        "[1, 2, 3]",
        json.dumps("just a string"),
        json.dumps({"eventType": "authing.user.created", "eventData": "[]"}),
        json.dumps({"eventType": "authing.user.created", "eventData": 7}),
        "[" * 100 + "]" * 100,
    ],
)
def test_garbage_is_refused_with_a_reason_never_a_traceback(message):
    """Whatever a frame holds, reading it either succeeds or raises the intake's own refusal."""
    with pytest.raises((UnreadableMessageError, HttpError)):
        webhook_body("authing.user.created", message, max_values=MAX_VALUES)


def test_a_code_with_no_webhook_event_is_unreadable():
    """A pool-defined code the service does not map is refused, not guessed at."""
    with pytest.raises(UnreadableMessageError):
        webhook_body("custom_x.myEvent", json.dumps(USER), max_values=MAX_VALUES)


def test_a_message_with_more_values_than_the_bound_is_refused_before_parsing():
    """The webhook's value count bounds every JSON text of a message, the inner string's too."""
    crowded = json.dumps(json.dumps({"padding": list(range(200))}))
    with pytest.raises(HttpError):
        webhook_body("authing.user.created", crowded, max_values=100)
