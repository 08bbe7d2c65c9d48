"""Marshmallow schemas for the webhook envelope and, per event, the subjects it names.

Only identifiers are taken from a payload; every other field (password hashes, tokens, profile data) is
excluded on load and never reaches the store or a log. Shapes follow genauth-contract.md §1.4-1.10 and accept
what the sources disagree on: ``id``/``userId``/``_id`` for a user id, a bare id string where a user object is
expected (custom-database pools), the bare user object as ``login``, the bare ``{"description": …}`` test.

Each schema's ``post_load`` returns ``Subjects``: the users to reconcile, the departments and groups whose
members must be found first (the payload does not list them), and the users to forget (deleted, archived).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from service.intake.errors import InvalidDeliveryError

# GenAuth ids are 24 hex characters; custom-database pools may use others, so accept any short token.
# Lone surrogates (JSON "\ud800") are refused too: no database or log can encode them.
USER_ID = validate.Regexp(r"^[^\s\x00-\x1f\x7f\ud800-\udfff]{1,128}\Z", error="Not a valid user id.")
EVENT_NAME = validate.Regexp(r"^[A-Za-z0-9:_.\-]{1,100}\Z", error="Not a valid event name.")
MAX_SUBJECTS = 5000

TEST_EVENT = "test"


@dataclass(frozen=True)
class Subjects:
    """What one delivery is about."""

    users: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    """Department ids whose members (sub-departments included) must each be reconciled."""
    groups: tuple[str, ...] = ()
    """Group ids whose members must each be reconciled."""
    removed: tuple[str, ...] = ()
    """Users that were deleted or archived: pending work is dropped."""
    userpool_ids: tuple[str, ...] = ()


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class UserRefSchema(_Strict):
    """A user object; only its id and user pool are kept."""

    id = fields.String(required=True, validate=USER_ID)
    userPoolId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))

    @pre_load
    def _accept_id_aliases(self, data: Any, **_kwargs: Any) -> Any:
        if isinstance(data, dict) and "id" not in data:
            for alias in ("userId", "_id"):
                if alias in data:
                    return {**data, "id": data[alias]}
        return data


class UserRef(fields.Field):  # type: ignore[type-arg]
    """A user given as an object or, in custom-database pools, as a bare id string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, str):
            USER_ID(value)
            return {"id": value, "userPoolId": None}
        if isinstance(value, dict):
            loaded: dict[str, Any] = UserRefSchema().load(value)
            return loaded
        raise ValidationError("Not a user object or id.")


def _id_list(**kwargs: Any) -> fields.List[str]:
    return fields.List(fields.String(validate=USER_ID), validate=validate.Length(max=MAX_SUBJECTS), **kwargs)


def _pools(*users: dict[str, Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(user["userPoolId"] for user in users if user.get("userPoolId")))


class UserIsData(_Strict):
    """``login``, ``register``, ``user:created``: ``data`` is the user object itself."""

    data = fields.Nested(UserRefSchema, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        user = loaded["data"]
        return Subjects(users=(user["id"],), userpool_ids=_pools(user))


class _UserHolder(_Strict):
    user = UserRef(required=True)


class UserInData(_Strict):
    """``user:updated``, ``organization:member-*``, ``user:blocked`` …: the user is ``data.user``."""

    data = fields.Nested(_UserHolder, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        user = loaded["data"]["user"]
        return Subjects(users=(user["id"],), userpool_ids=_pools(user))


class UserRemoved(UserInData):
    """``user:archived``: the user is ``data.user`` and will not sign in again."""

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        user = loaded["data"]["user"]
        return Subjects(removed=(user["id"],), userpool_ids=_pools(user))


class _UsersHolder(_Strict):
    users = fields.List(UserRef(), required=True, validate=validate.Length(max=MAX_SUBJECTS))


class UsersInData(_Strict):
    """``group:member-added``/``-removed``: the users are ``data.users``."""

    data = fields.Nested(_UsersHolder, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        users = loaded["data"]["users"]
        return Subjects(users=tuple(dict.fromkeys(u["id"] for u in users)), userpool_ids=_pools(*users))


class UsersDeleted(UsersInData):
    """``user:deleted``: ``data.users`` are objects, or ids in custom-database mode."""

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        users = loaded["data"]["users"]
        return Subjects(removed=tuple(dict.fromkeys(u["id"] for u in users)), userpool_ids=_pools(*users))


class _RoleSubjects(_Strict):
    userIds = _id_list(load_default=list)
    groupIds = _id_list(load_default=list)
    nodeIds = _id_list(load_default=list)


class RoleChanged(_Strict):
    """``role:assigned``/``-unassigned``: users directly, and groups and departments to expand."""

    data = fields.Nested(_RoleSubjects, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        data = loaded["data"]
        return Subjects(
            users=tuple(dict.fromkeys(data["userIds"])),
            groups=tuple(dict.fromkeys(data["groupIds"])),
            departments=tuple(dict.fromkeys(data["nodeIds"])),
        )


class _NodeRef(_Strict):
    id = fields.String(required=True, validate=USER_ID)
    userPoolId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))


class _MovedNode(_Strict):
    node = fields.Nested(_NodeRef, required=True)


class NodeMoved(_Strict):
    """``organization:node-moved``: everyone in the moved subtree may now match other rules."""

    data = fields.Nested(_MovedNode, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Subjects:
        node = loaded["data"]["node"]
        return Subjects(departments=(node["id"],), userpool_ids=_pools(node))


SUBJECT_SCHEMAS: dict[str, type[Schema]] = {
    "login": UserIsData,
    "register": UserIsData,
    "user:created": UserIsData,
    "user:updated": UserInData,
    "user:blocked": UserInData,
    "user:unblocked": UserInData,
    "user:unarchived": UserInData,
    "user:archived": UserRemoved,
    "user:deleted": UsersDeleted,
    "organization:member-added": UserInData,
    "organization:member-removed": UserInData,
    "organization:node-moved": NodeMoved,
    "group:member-added": UsersInData,
    "group:member-removed": UsersInData,
    "role:assigned": RoleChanged,
    "role:unassigned": RoleChanged,
}
"""The events the service acts on, and where each keeps its subjects."""


class _Envelope(_Strict):
    eventName = fields.String(required=True, validate=EVENT_NAME)


# Schemas are built once: instantiating one per request costs more than loading a payload with it.
_ENVELOPE = _Envelope()
_LOADERS: dict[str, Schema] = {name: schema() for name, schema in SUBJECT_SCHEMAS.items()}


@dataclass(frozen=True)
class Interpretation:
    """What a delivery is about, and what the service will do with it."""

    event_name: str
    subjects: Subjects
    outcome: str
    """``queued`` (work was added or dropped), ``ignored`` (an event the service does not act on) or ``test``."""

    @property
    def user_ids(self) -> tuple[str, ...]:
        return self.subjects.users

    @property
    def userpool_ids(self) -> tuple[str, ...]:
        return self.subjects.userpool_ids


def interpret(body: Any) -> Interpretation:
    """Validate the envelope and extract the subjects; raises ``InvalidDeliveryError`` with field errors."""
    if not isinstance(body, dict):
        raise InvalidDeliveryError("the body must be a JSON object", errors={"_schema": ["Not an object."]})
    if "eventName" not in body:
        if "id" in body and "userPoolId" in body:
            # The guide's login example is a bare user object (genauth-contract.md §1.4).
            body = {"eventName": "login", "data": body}
        elif "description" in body:
            return Interpretation(TEST_EVENT, Subjects(), "test")
    try:
        event_name = _ENVELOPE.load(body)["eventName"]
    except ValidationError as error:
        raise InvalidDeliveryError("the delivery is not a GenAuth event", errors=error.messages) from error
    if event_name == TEST_EVENT:
        return Interpretation(TEST_EVENT, Subjects(), "test")
    loader = _LOADERS.get(event_name)
    if loader is None:
        return Interpretation(event_name, Subjects(), "ignored")
    try:
        subjects = loader.load(body)
    except ValidationError as error:
        raise InvalidDeliveryError(
            f"the {event_name} event is missing what it must carry", errors=error.messages
        ) from error
    assert isinstance(subjects, Subjects)
    return Interpretation(event_name, subjects, "queued")
