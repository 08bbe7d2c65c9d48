"""Management API endpoints about user groups and roles: `get-user-groups` (§3.8), `get-user-roles` (§3.9)
`list-groups`, `list-group-members` and `list-roles`. Registered by `app.api_routes`."""

from __future__ import annotations

from typing import Any

from genauth_emulator.parsing import ApiCall, lookup_user, member_page, paginated, query_page_and_limit, required
from genauth_emulator.responses import ApiError
from genauth_emulator.state import DEFAULT_NAMESPACE, UnknownGroupError


def get_user_groups(call: ApiCall) -> dict[str, Any]:
    """Answer every group the user belongs to as `{totalCount, list: ResGroupDto[]}` (no paging)."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    groups = call.state.user_groups(user_id)
    return {"totalCount": len(groups), "list": groups}


def get_user_roles(call: ApiCall) -> dict[str, Any]:
    """Answer the user's roles in `namespace` (only the `default` namespace when it is absent)."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    namespace = call.args.get("namespace", "").strip() or DEFAULT_NAMESPACE
    roles = call.state.user_roles(user_id, namespace)
    return {"totalCount": len(roles), "list": roles}


def list_groups(call: ApiCall) -> dict[str, Any]:
    """Answer one page of the pool's groups (`ResGroupDto`, with `id` and `code`), oldest first."""
    page, limit = query_page_and_limit(call.args)
    return paginated(call.state.groups(), page, limit)


def list_group_members(call: ApiCall) -> dict[str, Any]:
    """Answer one page of a group's members as `UserDto`s, in the order they joined."""
    code = required(call.args, "code")
    query_page_and_limit(call.args)  # a bad page or limit is a 400 before anything is read
    try:
        member_ids = call.state.group_member_ids(code)
    except UnknownGroupError:
        raise ApiError(404, f"Group {code} does not exist") from None
    return member_page(call, member_ids)


def list_roles(call: ApiCall) -> dict[str, Any]:
    """Answer one page of the roles in `namespace` (the `default` namespace when it is absent), oldest first."""
    page, limit = query_page_and_limit(call.args)
    namespace = call.args.get("namespace", "").strip() or DEFAULT_NAMESPACE
    return paginated(call.state.roles(namespace), page, limit)
