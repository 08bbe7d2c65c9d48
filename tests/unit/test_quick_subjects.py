"""The intake reads the common user shapes without marshmallow (``quick_subjects``): it must read them exactly
as the schemas do, and leave every other shape to the schemas, which refuse it with their field errors."""

import pytest
from marshmallow import ValidationError

from service.intake.errors import InvalidDeliveryError
from service.intake.schemas import interpret, quick_subjects, schema_subjects

USER = {"id": "65a1f0c2e4b0a1b2c3d4e5f6", "userPoolId": "659f1e2d3c4b5a6978012345", "password": "hash", "salt": "s"}


_ID, _POOL = USER["id"], USER["userPoolId"]
_QUICK_CASES = [
    ("login", {"data": USER}, True),
    ("login", {"data": {"id": _ID}}, True),
    ("register", {"data": {"id": _ID, "userPoolId": None}}, True),
    ("user:created", {"data": {**USER, "extra": {"nested": [1, 2]}}}, True),
    ("user:updated", {"data": {"user": USER}}, True),
    ("user:updated", {"data": {"user": _ID}}, True),
    ("organization:member-added", {"data": {"user": {"id": "x" * 128}, "node": {}}}, True),
    ("login", {"data": {"userId": _ID}}, False),  # an alias: the schema's pre_load maps it
    ("login", {"data": {"_id": _ID, "userPoolId": _POOL}}, False),
    ("login", {"data": _ID}, False),  # a bare id is a user only under data.user
    ("login", {"data": {"id": ""}}, False),
    ("login", {"data": {"id": "x" * 129}}, False),
    ("login", {"data": {"id": "a b"}}, False),
    ("login", {"data": {"id": _ID + "\n"}}, False),
    ("login", {"data": {"id": 12345}}, False),
    ("login", {"data": {"id": None}}, False),
    ("login", {"data": {"id": _ID, "userPoolId": ""}}, False),
    ("login", {"data": {"id": _ID, "userPoolId": 7}}, False),
    ("login", {"data": {"id": _ID, "userPoolId": "p" * 65}}, False),
    ("login", {"data": [USER]}, False),
    ("login", {}, False),
    ("user:updated", {"data": {"user": None}}, False),
    ("user:updated", {"data": {"user": [_ID]}}, False),
    ("user:updated", {"data": {"user": "a\u200bb"}}, False),
    ("user:updated", {"data": {}}, False),
    ("group:member-added", {"data": {"users": [USER]}}, False),  # list events always go to the schemas
    ("role:assigned", {"data": {"userIds": [_ID]}}, False),
]


@pytest.mark.parametrize(("event", "body", "quick"), _QUICK_CASES)
def test_common_user_shapes_are_read_without_marshmallow_and_exactly_as_the_schemas_read_them(event, body, quick):
    """A plain user object (or a bare id under data.user) is read directly, with the schema's result; every
    other shape is left to the schemas, and interpret answers as they do."""
    body = {"eventName": event, **body}
    named = quick_subjects(event, body)
    assert (named is not None) == quick
    try:
        expected = schema_subjects(event, body)
    except ValidationError as error:
        assert named is None
        with pytest.raises(InvalidDeliveryError) as caught:
            interpret(body)
        assert caught.value.errors == error.messages
        return
    if named is not None:
        assert named == expected
    result = interpret(body)
    assert (result.subjects, result.userpool_ids) == expected


@pytest.mark.parametrize("name", ["", "a" * 101, "login\n", "log in", 7, None, ["login"]])
def test_an_invalid_event_name_is_refused_by_the_envelope_schema(name):
    """An event name the quick check does not accept is validated by the envelope schema (its field errors)."""
    with pytest.raises(InvalidDeliveryError) as caught:
        interpret({"eventName": name, "data": USER})
    assert "eventName" in caught.value.errors
