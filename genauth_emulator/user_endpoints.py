"""Management API endpoints that read users: `get-user` (§3.5), `get-user-batch` (§3.6) and `list-users`
(§3.10, POST with filters and the legacy GET). Registered by `app.api_routes`.

Listings compute the ordered ids once per state of the pool (`EmulatorState.listing`), then cut the page and
copy only its users, so paging through a large pool costs a page, not the pool, per request.
"""

from __future__ import annotations

import json
from typing import Any

from genauth_emulator.parsing import (
    ApiCall,
    flag,
    json_object,
    lookup_user,
    page_and_limit,
    page_of,
    query_page_and_limit,
    required,
    values,
)
from genauth_emulator.responses import ApiError
from genauth_emulator.searching import condition_predicate, keyword_predicate, sort_key
from genauth_emulator.users import UserStore


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
    """Answer one page of users matching `keywords` and every `advancedFilter` condition, in `options.sort`
    order (creation order otherwise); `options.withDepartmentIds/withCustomData/withIdentities` add facts."""
    body = json_object(call.body if call.body is not None else {})
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "options must be an object")
    pagination = options.get("pagination") or {}
    if not isinstance(pagination, dict):
        raise ApiError(400, "options.pagination must be an object")
    page, limit = page_and_limit(pagination.get("page"), pagination.get("limit"))
    conditions = _list(body.get("advancedFilter"), "advancedFilter")
    keywords = body["keywords"] if isinstance(body.get("keywords"), str) else ""
    fuzzy = _list(options.get("fuzzySearchOn"), "fuzzySearchOn")
    sorting = _list(options.get("sort"), "sort")
    for rule in sorting:
        if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
            raise ApiError(400, "each sort entry needs a string field")

    def compute() -> list[str]:
        predicates = [condition_predicate(call.state, condition) for condition in conditions]
        if keywords:
            predicates.append(keyword_predicate(keywords, fuzzy))

        def select(users: UserStore) -> list[str]:
            records = [record for record in users if all(predicate(record) for predicate in predicates)]
            for rule in reversed(sorting):  # stable sorts, last key first
                records.sort(key=sort_key(rule["field"]), reverse=rule.get("order") == "desc")
            return [record.user_id for record in records]

        return call.state.read_users(select)

    key = ("list-users", json.dumps([conditions, keywords, fuzzy, sorting], sort_keys=True, default=str))
    ids = call.state.listing(key, compute)
    users = call.state.user_views(
        page_of(ids, page, limit),
        with_department_ids=options.get("withDepartmentIds") is True,
        with_custom_data=options.get("withCustomData") is True,
        with_identities=options.get("withIdentities") is True,
    )
    return {"totalCount": len(ids), "list": users}


def list_users_legacy(call: ApiCall) -> dict[str, Any]:
    """Answer one page of users for the legacy `GET list-users`, optionally filtered by `status`."""
    page, limit = query_page_and_limit(call.args)
    status = call.args.get("status")

    def compute() -> list[str]:
        return call.state.read_users(
            lambda users: [record.user_id for record in users if not status or record.profile["status"] == status]
        )

    ids = call.state.listing(("list-users-legacy", status or ""), compute)
    return {"totalCount": len(ids), "list": call.state.user_views(page_of(ids, page, limit), **_query_flags(call))}


def _query_flags(call: ApiCall) -> dict[str, bool]:
    return {
        "with_department_ids": flag(call.args, "withDepartmentIds"),
        "with_custom_data": flag(call.args, "withCustomData"),
        "with_identities": flag(call.args, "withIdentities"),
    }


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{name} must be an array")
    return value
