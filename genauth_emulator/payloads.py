"""Webhook bodies in GenAuth's shapes (docs/genauth.md §1.4, §1.5, §1.10), built from an `EmulatorState`.

`event_body(state, "login", user_id)` returns `{"eventName": ..., "data": ...}` with the legacy user/node
objects of §1.8-1.9; `sender.WebhookSender` posts it. Shapes marked *constructed* in docs/genauth.md (deleted,
group and role events) follow its reconstruction: `group:member-*` carry `{group, users}` (the
group from the pool when `group_code` names one), `role:*` carry `{userIds, groupIds, nodeIds}` and, as the
docs leave open, nothing about which role; `organization:node-updated` carries the `{node, updates}` of the
event table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from genauth_emulator.groups import UnknownGroupError

if TYPE_CHECKING:  # the state builds its change events with event_body, so it imports this module
    from genauth_emulator.state import EmulatorState

TEST_DESCRIPTION = "A test from GenAuth Webhook"
_USER_EVENTS = {"user:blocked", "user:unblocked", "user:archived", "user:unarchived"}
_MEMBER_EVENTS = {"organization:member-added", "organization:member-removed"}
_GROUP_EVENTS = {"group:member-added", "group:member-removed"}
_ROLE_EVENTS = {"role:assigned", "role:unassigned"}
EVENT_NAMES = (
    "login",
    "register",
    "user:created",
    "user:updated",
    "user:deleted",
    *sorted(_USER_EVENTS),
    *sorted(_MEMBER_EVENTS),
    "organization:node-moved",
    "organization:node-updated",
    *sorted(_GROUP_EVENTS),
    *sorted(_ROLE_EVENTS),
    "mfa:verified",
    "test",
)


def event_body(
    state: EmulatorState,
    event_name: str,
    user_id: str | None = None,
    *,
    department_code: str | None = None,
    users: Sequence[str] | None = None,
    updates: Mapping[str, Any] | None = None,
    group: Mapping[str, Any] | None = None,
    mfa_type: str = "SMS",
    is_valid: bool = True,
    group_code: str | None = None,
) -> dict[str, Any]:
    """Return the enveloped webhook body for `event_name` about `user_id` (or `users`, for list events).

    For group events `group_code` picks the pool's group (default `mfa-exempt`) unless `group` is given;
    for role events it names a group the role went to (`groupIds`), as `department_code` names a department
    (`nodeIds`).
    """
    if event_name not in EVENT_NAMES:
        raise ValueError(f"unsupported event {event_name!r}; expected one of {EVENT_NAMES}")
    if group is None and group_code is not None and event_name in _GROUP_EVENTS:
        group = state.webhook_group(group_code)
    if event_name in _ROLE_EVENTS:
        group_ids = [state.webhook_group(group_code)["id"]] if group_code else []
        node_ids = [state.department_id(department_code)] if department_code else []
        data = {"userIds": _user_ids(user_id, users, allow_none=bool(group_ids or node_ids))}
        return {"eventName": event_name, "data": {**data, "groupIds": group_ids, "nodeIds": node_ids}}
    return {
        "eventName": event_name,
        "data": _data(state, event_name, user_id, department_code, users, updates, group, mfa_type, is_valid),
    }


def _data(
    state: EmulatorState,
    event_name: str,
    user_id: str | None,
    department_code: str | None,
    users: Sequence[str] | None,
    updates: Mapping[str, Any] | None,
    group: Mapping[str, Any] | None,
    mfa_type: str,
    is_valid: bool,
) -> dict[str, Any]:
    if event_name == "test":
        return {"description": TEST_DESCRIPTION}
    if event_name in _GROUP_EVENTS:
        return {"group": dict(group or _default_group(state)), "users": _webhook_users(state, user_id, users)}
    if event_name == "user:deleted":
        return {"users": _webhook_users(state, user_id, users)}
    if event_name == "organization:node-moved":
        return _node_moved(state, _required(department_code, "department_code"))
    if event_name == "organization:node-updated":  # the S-WH event table's `{node, updates}`; no example
        return {
            "node": state.webhook_node(_required(department_code, "department_code")),
            "updates": dict(updates or {}),
        }
    uid = _required(user_id, "user_id")
    if event_name == "mfa:verified":
        return {"userId": uid, "isValid": is_valid, "type": mfa_type}
    user = state.webhook_user(uid)
    if event_name == "login":
        return user
    if event_name in ("register", "user:created"):
        return {
            **user,
            "_id": uid,
            "registerMethod": "import:manual",
            "registerInClient": state.userpool_id,
            "lastIP": None,
        }
    if event_name == "user:updated":
        return {"user": user, "updates": dict(updates or {})}
    if event_name in _MEMBER_EVENTS:
        if event_name == "organization:member-removed":
            user["identities"] = []
        return {"user": user, "node": state.webhook_node(_required(department_code, "department_code"))}
    return {"user": _with_event_status(user, event_name)}


def _with_event_status(user: dict[str, Any], event_name: str) -> dict[str, Any]:
    if event_name in ("user:blocked", "user:unblocked"):
        user["blocked"] = event_name == "user:blocked"
    if event_name == "user:archived":
        user["status"] = "Archived"
    return user


def _node_moved(state: EmulatorState, department_code: str) -> dict[str, Any]:
    node = state.webhook_node(department_code)
    parent_code = state.parent_code(department_code)
    organization_code = state.organization_code_of(department_code)
    return {
        "organization": state.webhook_organization(organization_code),
        "node": node,
        "parentNode": state.webhook_node(parent_code) if parent_code else None,
    }


def _default_group(state: EmulatorState) -> dict[str, Any]:
    try:
        return state.webhook_group("mfa-exempt")
    except UnknownGroupError:
        pass  # a pool without the group: a stable made-up one
    group_id = hashlib.sha256(f"{state.userpool_id}:mfa-exempt".encode()).hexdigest()[:24]
    return {
        "id": group_id,
        "code": "mfa-exempt",
        "name": "MFA exempt",
        "description": "",
        "userPoolId": state.userpool_id,
    }


def _user_ids(user_id: str | None, users: Sequence[str] | None, *, allow_none: bool = False) -> list[str]:
    if users is not None:
        return list(users)
    if user_id is None and allow_none:
        return []
    return [_required(user_id, "user_id or users")]


def _webhook_users(state: EmulatorState, user_id: str | None, users: Sequence[str] | None) -> list[dict[str, Any]]:
    return [state.webhook_user(uid) for uid in _user_ids(user_id, users)]


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ValueError(f"this event needs {name}")
    return value
