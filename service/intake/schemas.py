"""Marshmallow schemas for the webhook envelope and, per event, the subjects it names.

Only identifiers are taken from a payload; every other field (password hashes, tokens, profile data) is
excluded on load and never reaches the store or a log. Shapes follow docs/genauth.md §1.4-1.10 and accept
what the sources disagree on: ``id``/``userId``/``_id`` for a user id, a bare id string where a user object is
expected (custom-database pools), the bare user object as ``login``, the bare ``{"description": …}`` test.

Each schema's ``post_load`` returns what the delivery names: its subjects (``service.store.subjects``: the
users to reconcile, and the departments and groups whose members must be found first, since the payload does
not list them) and the user pools it names. A user a delivery says was deleted or archived is a user to
reconcile like any other: a delivery is a hint, and only the worker's read of GenAuth confirms a removal
(anyone with the webhook secret could otherwise cancel a user's enforcement).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validate

from service.intake.errors import InvalidDeliveryError
from service.logs import UNSAFE_CHARACTERS
from service.policy.conditions import TREE_EVENTS
from service.settings import MAX_SUBJECTS_LIMIT
from service.store.subjects import DEPARTMENT, GROUP, Subject

# GenAuth ids are 24 hex characters; custom-database pools may use others, so accept any short token without
# white space or the characters that could hide or reorder text where an id is shown (controls, C1, zero-width
# and bidirectional characters: service.logs). Lone surrogates (JSON "\ud800") are refused too: no database or
# log can encode them.
_TOKEN = rf"[^\s{UNSAFE_CHARACTERS}\ud800-\udfff]"
_USER_ID = re.compile(rf"^{_TOKEN}{{1,128}}\Z")
_POOL_ID = re.compile(rf"^{_TOKEN}{{1,64}}\Z")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9:_.\-]{1,100}\Z")
USER_ID = validate.Regexp(_USER_ID, error="Not a valid user id.")
POOL_ID = validate.Regexp(_POOL_ID, error="Not a valid user pool id.")
EVENT_NAME = validate.Regexp(_EVENT_NAME, error="Not a valid event name.")
MAX_SUBJECTS = MAX_SUBJECTS_LIMIT
"""The longest list any one schema reads; ENFORCER_MAX_SUBJECTS caps the whole delivery below this."""

TEST_EVENT = "test"


Named = tuple[tuple[Subject, ...], tuple[str, ...]]
"""What a schema's ``post_load`` returns: the delivery's subjects, without repeats, and the pools it names."""


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


class UserRefSchema(_Strict):
    """A user object; only its id and user pool are kept."""

    id = fields.String(required=True, validate=USER_ID)
    userPoolId = fields.String(load_default=None, allow_none=True, validate=POOL_ID)

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


def _named(users: list[dict[str, Any]]) -> Named:
    """The users (objects with an id and maybe a pool) as subjects, and the pools they name."""
    subjects = tuple(dict.fromkeys(Subject.user(user["id"]) for user in users))
    return subjects, tuple(dict.fromkeys(user["userPoolId"] for user in users if user.get("userPoolId")))


class UserIsData(_Strict):
    """``login``, ``register``, ``user:created``: ``data`` is the user object itself."""

    data = fields.Nested(UserRefSchema, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        return _named([loaded["data"]])


class _UserHolder(_Strict):
    user = UserRef(required=True)


class UserInData(_Strict):
    """``user:updated``, ``user:archived``, ``organization:member-*`` …: the user is ``data.user`` (the worker
    confirms an archiving with GenAuth)."""

    data = fields.Nested(_UserHolder, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        return _named([loaded["data"]["user"]])


class _UsersHolder(_Strict):
    users = fields.List(UserRef(), required=True, validate=validate.Length(max=MAX_SUBJECTS))


class UsersInData(_Strict):
    """``group:member-*``, ``user:deleted``: the users are ``data.users``, objects or (custom-database pools)
    ids; the worker confirms a deletion with GenAuth."""

    data = fields.Nested(_UsersHolder, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        return _named(loaded["data"]["users"])


class _RoleSubjects(_Strict):
    userIds = _id_list(load_default=list)
    groupIds = _id_list(load_default=list)
    nodeIds = _id_list(load_default=list)


class RoleChanged(_Strict):
    """``role:assigned``/``-unassigned``: users directly, and groups and departments to expand."""

    data = fields.Nested(_RoleSubjects, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        data = loaded["data"]
        users = [Subject.user(user_id) for user_id in data["userIds"]]
        departments = [Subject(DEPARTMENT, node_id) for node_id in data["nodeIds"]]
        groups = [Subject(GROUP, group_id) for group_id in data["groupIds"]]
        return tuple(dict.fromkeys([*users, *departments, *groups])), ()


class _NodeRef(_Strict):
    id = fields.String(required=True, validate=USER_ID)
    userPoolId = fields.String(load_default=None, allow_none=True, validate=POOL_ID)


class _MovedNode(_Strict):
    node = fields.Nested(_NodeRef, required=True)


class NodeMoved(_Strict):
    """``organization:node-moved``: everyone in the moved subtree may now match other rules."""

    data = fields.Nested(_MovedNode, required=True)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        node = loaded["data"]["node"]
        return (Subject(DEPARTMENT, node["id"]),), _named([node])[1]


class TreeChanged(_Strict):
    """``organization:node-added``, ``-node-deleted``, ``organization:created``, ``-deleted``, ``-imported``,
    ``-tree-updated``: the tree changed, which every process's cached copy must learn (the intake moves the
    pool's tree generation, ``service.store.organisation_changes``), but nobody's membership did, so there is
    no one to reconcile: a new department has no members yet (they join with ``member-added``, which names
    them), a deleted one has none left to list. GenAuth documents what ``data`` holds only in its event table
    (docs/genauth.md §1.7), with no example, so any object is accepted and only the pools it names are read."""

    userPoolId = fields.Raw(load_default=None)
    data = fields.Raw(load_default=None)

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        return (), _tree_pools(loaded)


class NodeUpdated(TreeChanged):
    """``organization:node-updated``: ``data.node`` is the department after the change (docs/genauth.md §1.7),
    so a rename can put its members under another rule (or take them out of one): its members are reconciled,
    as after a move. A payload without a usable ``data.node.id`` is accepted like the other tree events."""

    @post_load
    def _subjects(self, loaded: dict[str, Any], **_kwargs: Any) -> Named:
        data = loaded.get("data")
        node = data.get("node") if isinstance(data, dict) else None
        node_id = node.get("id") if isinstance(node, dict) else None
        if isinstance(node_id, str) and _USER_ID.match(node_id):
            return (Subject(DEPARTMENT, node_id),), _tree_pools(loaded)
        return (), _tree_pools(loaded)


def _tree_pools(loaded: dict[str, Any]) -> tuple[str, ...]:
    """The pools a tree event names: where ``_named_pools`` looks, and on the node or organisation it carries."""
    data = loaded.get("data")
    objects = [data.get(key) for key in ("node", "organization")] if isinstance(data, dict) else []
    named = [pool for item in objects if isinstance(item, dict) and isinstance(pool := item.get("userPoolId"), str)]
    return tuple(dict.fromkeys([*_named_pools(loaded), *(pool for pool in named if pool)]))


SUBJECT_SCHEMAS: dict[str, type[Schema]] = {
    "login": UserIsData,
    "register": UserIsData,
    "user:created": UserIsData,
    "user:updated": UserInData,
    "user:blocked": UserInData,
    "user:unblocked": UserInData,
    "user:unarchived": UserInData,
    "user:archived": UserInData,
    "user:deleted": UsersInData,
    "organization:member-added": UserInData,
    "organization:member-removed": UserInData,
    "organization:node-moved": NodeMoved,
    "organization:node-added": TreeChanged,
    "organization:node-updated": NodeUpdated,
    "organization:node-deleted": TreeChanged,
    "organization:created": TreeChanged,
    "organization:deleted": TreeChanged,
    "organization:imported": TreeChanged,
    "organization:tree-updated": TreeChanged,
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
    """What a delivery is about, and what the service will do with it (``service.store.inbox.Delivery`` is
    what it keeps of it: the same subjects, without the pools, which the intake only checks)."""

    event_name: str
    outcome: str
    """``queued`` (work was added), ``ignored`` (an event the service does not act on) or ``test``."""
    subjects: tuple[Subject, ...] = ()
    """What ENFORCER_MAX_SUBJECTS caps."""
    userpool_ids: tuple[str, ...] = ()
    """The user pools the delivery names."""
    changes_tree: bool = False
    """The event changed the organisation tree (``TREE_EVENTS``): every process's cached copy must reload."""

    def ignored(self) -> Interpretation:
        """The delivery as one of an event the service does not act on (the pools it names still count)."""
        return replace(self, outcome="ignored", subjects=(), changes_tree=False)


def _named_pools(body: dict[str, Any]) -> tuple[str, ...]:
    """The pool ids an event the service does not read names where GenAuth puts one (any string counts)."""
    data = body.get("data")
    candidates = [body.get("userPoolId"), data.get("userPoolId") if isinstance(data, dict) else None]
    return tuple(dict.fromkeys(value for value in candidates if isinstance(value, str) and value))


def interpret(body: Any) -> Interpretation:
    """Validate the envelope and extract the subjects; raises ``InvalidDeliveryError`` with field errors."""
    if not isinstance(body, dict):
        raise InvalidDeliveryError("the body must be a JSON object", errors={"_schema": ["Not an object."]})
    if "eventName" not in body:
        if "id" in body and "userPoolId" in body:
            # The guide's login example is a bare user object (docs/genauth.md §1.4).
            body = {"eventName": "login", "data": body}
        elif "description" in body:
            return Interpretation(TEST_EVENT, "test")
    event_name = body.get("eventName")
    if type(event_name) is not str or not _EVENT_NAME.match(event_name):
        try:
            event_name = _ENVELOPE.load(body)["eventName"]
        except ValidationError as error:
            raise InvalidDeliveryError("the delivery is not a GenAuth event", errors=error.messages) from error
    if event_name == TEST_EVENT:
        return Interpretation(TEST_EVENT, "test")
    if event_name not in _LOADERS:
        return Interpretation(event_name, "ignored", userpool_ids=_named_pools(body))
    named = quick_subjects(event_name, body)
    if named is None:
        try:
            named = schema_subjects(event_name, body)
        except ValidationError as error:
            raise InvalidDeliveryError(
                f"the {event_name} event is missing what it must carry", errors=error.messages
            ) from error
    return Interpretation(event_name, "queued", *named, changes_tree=event_name in TREE_EVENTS)


def schema_subjects(event_name: str, body: dict[str, Any]) -> Named:
    """What the event's schema reads from ``body``; raises ``ValidationError``."""
    named: Named = _LOADERS[event_name].load(body)
    return named


# The common shapes, read without marshmallow: loading a login through the schemas cost more CPU than any other
# step of the view (docs/benchmarks.md, "Intake CPU by stage").
def quick_subjects(event_name: str, body: dict[str, Any]) -> Named | None:
    """What ``schema_subjects`` returns, for a user event whose user is a plain object (``id`` and maybe
    ``userPoolId``, both valid) or, where the schema allows one, a bare id; None for anything else, which the
    schemas then read (and refuse with their field errors)."""
    schema = SUBJECT_SCHEMAS[event_name]
    data = body.get("data")
    if type(data) is not dict:
        return None
    if schema is UserIsData:
        user = _plain_user(data)
    elif schema is UserInData:
        value = data.get("user")
        user = {"id": value, "userPoolId": None} if type(value) is str and _USER_ID.match(value) else _plain_user(value)
    else:
        return None
    return None if user is None else _named([user])


def _plain_user(value: Any) -> dict[str, Any] | None:
    """``value`` as ``UserRefSchema`` loads it, if it is an object with a valid ``id`` (no alias) and a valid or
    absent ``userPoolId``."""
    if type(value) is not dict:
        return None
    user_id, pool = value.get("id"), value.get("userPoolId")
    if type(user_id) is not str or not _USER_ID.match(user_id):
        return None
    if pool is not None and (type(pool) is not str or not _POOL_ID.match(pool)):
        return None
    return {"id": user_id, "userPoolId": pool}
