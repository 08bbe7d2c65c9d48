"""Marshmallow schemas for the webhook envelope and, per event, the subjects (users) it names.

Only identifiers are taken from a payload; every other field (password hashes, tokens, profile data) is
excluded on load and never reaches the store or a log. Shapes follow genauth-contract.md §1.4-1.10 and accept
what the sources disagree on: ``id``/``userId``/``_id`` for a user id, the bare user object as ``login``, the
bare ``{"description": …}`` console test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from service.intake.errors import InvalidDeliveryError

# GenAuth ids are 24 hex characters; custom-database pools may use others, so accept any short token.
USER_ID = validate.Regexp(r"^[^\s\x00-\x1f\x7f]{1,128}$", error="Not a valid user id.")
EVENT_NAME = validate.Regexp(r"^[A-Za-z0-9:_.\-]{1,100}$", error="Not a valid event name.")

TEST_EVENT = "test"


class UserRefSchema(Schema):
    """A user object; only its id and user pool are kept."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=USER_ID)
    userPoolId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))

    @pre_load
    def _accept_id_aliases(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and "id" not in data:
            for alias in ("userId", "_id"):
                if alias in data:
                    return {**data, "id": data[alias]}
        return data


class _Envelope(Schema):
    class Meta:
        unknown = EXCLUDE

    eventName = fields.String(required=True, validate=EVENT_NAME)


class UserIsDataSchema(_Envelope):
    """``login``, ``register``, ``user:created``: ``data`` is the user object itself."""

    data = fields.Nested(UserRefSchema, required=True)


class _UserHolder(Schema):
    class Meta:
        unknown = EXCLUDE

    user = fields.Nested(UserRefSchema, required=True)


class UserInDataSchema(_Envelope):
    """``user:updated`` and ``organization:member-*``: the user is ``data.user``."""

    data = fields.Nested(_UserHolder, required=True)


SUBJECT_SCHEMAS: dict[str, type[_Envelope]] = {
    "login": UserIsDataSchema,
    "register": UserIsDataSchema,
    "user:created": UserIsDataSchema,
    "user:updated": UserInDataSchema,
    "organization:member-added": UserInDataSchema,
    "organization:member-removed": UserInDataSchema,
}
"""The events the service acts on, and where each keeps its user."""


@dataclass(frozen=True)
class Interpretation:
    """What a delivery is about."""

    event_name: str
    user_ids: tuple[str, ...]
    userpool_ids: tuple[str, ...]
    """User-pool ids found in the payload (to check against the configured pool)."""
    outcome: str

    OUTCOMES: ClassVar[tuple[str, ...]] = ("queued", "ignored", "test")


def interpret(body: Any) -> Interpretation:
    """Validate the envelope and extract the subjects; raises ``InvalidDeliveryError`` with field errors."""
    if not isinstance(body, dict):
        raise InvalidDeliveryError("the body must be a JSON object", errors={"_schema": ["Not an object."]})
    if "eventName" not in body:
        if "id" in body and "userPoolId" in body:
            # The guide's login example is a bare user object (genauth-contract.md §1.4).
            body = {"eventName": "login", "data": body}
        elif "description" in body:
            return Interpretation(TEST_EVENT, (), (), "test")
    try:
        envelope = _Envelope().load(body)
    except ValidationError as error:
        raise InvalidDeliveryError("the delivery is not a GenAuth event", errors=error.messages) from error
    event_name = envelope["eventName"]
    if event_name == TEST_EVENT:
        return Interpretation(TEST_EVENT, (), (), "test")
    schema = SUBJECT_SCHEMAS.get(event_name)
    if schema is None:
        return Interpretation(event_name, (), (), "ignored")
    try:
        loaded = schema().load(body)
    except ValidationError as error:
        raise InvalidDeliveryError(
            f"the {event_name} event is missing what it must carry", errors=error.messages
        ) from error
    data = loaded["data"]
    user = data.get("user", data)
    pools = (user["userPoolId"],) if user.get("userPoolId") else ()
    return Interpretation(event_name, (user["id"],), pools, "queued")
