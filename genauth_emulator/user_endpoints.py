"""Management API endpoints that read users: `get-user` (§3.5), `get-user-batch` (§3.6) and `list-users`
(§3.10, POST with filters and the legacy GET). Registered by `app.api_routes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genauth_emulator.parsing import (
    ApiCall,
    flag,
    json_object,
    lookup_user,
    page_and_limit,
    paginated,
    query_page_and_limit,
    required,
    values,
)
from genauth_emulator.responses import ApiError
from genauth_emulator.searching import condition_predicate, keyword_predicate
from genauth_emulator.state import UnknownUserError


def get_user(call: ApiCall) -> dict[str, Any]:
    """Answer one `UserDto`."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    return call.state.user_view(user_id, **_query_flags(call))


def get_user_batch(call: ApiCall) -> list[dict[str, Any]]:
    """Answer a plain array of `UserDto`; any unknown user fails the whole call with 404/2004."""
    requested = values(call.args, "userIds")
    if not requested:
        raise ApiError(400, "userIds is required")
    id_type = call.args.get("userIdType")
    user_ids = [lookup_user(call.state, value, id_type) for value in requested]
    return [call.state.user_view(user_id, **_query_flags(call)) for user_id in user_ids]


def list_users(call: ApiCall) -> dict[str, Any]:
    """Answer one page of users matching `keywords` and every `advancedFilter` condition."""
    body = json_object(call.body if call.body is not None else {})
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "options must be an object")
    pagination = options.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise ApiError(400, "options.pagination must be an object")
    page, limit = page_and_limit(pagination.get("page"), pagination.get("limit"))
    predicates = [condition_predicate(call.state, c) for c in _list(body.get("advancedFilter"), "advancedFilter")]
    if isinstance(body.get("keywords"), str) and body["keywords"]:
        predicates.append(keyword_predicate(body["keywords"], _list(options.get("fuzzySearchOn"), "fuzzySearchOn")))
    users = [user for user in _all_users(call, with_department_ids=True) if all(p(user) for p in predicates)]
    for rule in reversed(_list(options.get("sort"), "sort")):
        if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
            raise ApiError(400, "each sort entry needs a string field")
        users.sort(key=_sort_key(rule["field"]), reverse=rule.get("order") == "desc")
    for user in users:
        if options.get("withDepartmentIds") is not True:
            user.pop("departmentIds", None)
        if options.get("withCustomData") is not True:
            user.pop("customData", None)
    return paginated(users, page, limit)


def list_users_legacy(call: ApiCall) -> dict[str, Any]:
    """Answer one page of users for the legacy `GET list-users`, optionally filtered by `status`."""
    page, limit = query_page_and_limit(call.args)
    status = call.args.get("status")
    users = [user for user in _all_users(call, with_department_ids=False) if not status or user["status"] == status]
    for user in users:
        if not flag(call.args, "withCustomData"):
            user.pop("customData", None)
    return paginated(users, page, limit)


def _query_flags(call: ApiCall) -> dict[str, bool]:
    return {
        "with_department_ids": flag(call.args, "withDepartmentIds"),
        "with_custom_data": flag(call.args, "withCustomData"),
        "with_identities": flag(call.args, "withIdentities"),
    }


def _all_users(call: ApiCall, *, with_department_ids: bool) -> list[dict[str, Any]]:
    users = []
    for user_id in call.state.user_ids():
        try:
            users.append(call.state.user_view(user_id, with_department_ids=with_department_ids, with_custom_data=True))
        except UnknownUserError:
            continue  # deleted while we were listing
    return users


def _sort_key(field: str) -> Callable[[dict[str, Any]], str]:
    name = "userId" if field == "id" else field
    return lambda user: str(user.get(name) or "")


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{name} must be an array")
    return value
