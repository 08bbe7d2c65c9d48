"""Reading management API parameters the way GenAuth accepts them, raising `ApiError(400)` on bad input.

Query booleans arrive as `true`, `True` (the Python SDK sends `str(bool)`) or `1`; arrays as repeated keys,
`key[]`, `key[0]` or comma-separated values. Page size is capped at 50 everywhere (docs/genauth.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MultiDict

from genauth_emulator.responses import ApiError, user_not_found
from genauth_emulator.state import EmulatorState, UnknownUserError

MAX_LIMIT = 50
DEFAULT_LIMIT = 10
_TRUE_VALUES = {"true", "1"}


@dataclass(frozen=True)
class ApiCall:
    """One management API request as endpoint functions see it: the pool, the query and the JSON body."""

    state: EmulatorState
    args: MultiDict[str, str]
    body: Any


Handler = Callable[[ApiCall], Any]


def lookup_user(state: EmulatorState, user_id: Any, id_type: Any = None) -> str:
    """Resolve `userId` + `userIdType` to a user id; 404/2004 if nobody matches, 400 for a bad type."""
    if not isinstance(user_id, str) or not user_id:
        raise ApiError(400, "userId must be a non-empty string")
    if id_type is not None and not isinstance(id_type, str):
        raise ApiError(400, "userIdType must be a string")
    try:
        return state.resolve_user_id(user_id, id_type or None)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    except UnknownUserError:
        raise user_not_found(user_id) from None


def json_object(body: Any) -> dict[str, Any]:
    """Return the request body if it is a JSON object."""
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def flag(args: MultiDict[str, str], name: str) -> bool:
    """Return a query boolean; absent means false."""
    value = args.get(name)
    return value is not None and value.strip().lower() in _TRUE_VALUES


def required(args: MultiDict[str, str], name: str) -> str:
    """Return a required, non-empty query parameter."""
    value = args.get(name, "").strip()
    if not value:
        raise ApiError(400, f"{name} is required")
    return value


def values(args: MultiDict[str, str], name: str) -> list[str]:
    """Return an array parameter in any of the encodings clients use."""
    indexed = re.compile(re.escape(name) + r"\[\d*\]")
    raw = [value for key in args if key == name or indexed.fullmatch(key) for value in args.getlist(key)]
    return [part.strip() for value in raw for part in value.split(",") if part.strip()]


def page_and_limit(page: Any, limit: Any) -> tuple[int, int]:
    """Validate `page` (from 1) and `limit` (1-50); None means the defaults (1, 10)."""
    number = _positive_int("page", 1 if page is None else page)
    size = _positive_int("limit", DEFAULT_LIMIT if limit is None else limit)
    if size > MAX_LIMIT:
        raise ApiError(400, f"limit must not exceed {MAX_LIMIT}")
    return number, size


def query_page_and_limit(args: MultiDict[str, str]) -> tuple[int, int]:
    """`page_and_limit` for query parameters."""
    return page_and_limit(args.get("page"), args.get("limit"))


def paginated(items: list[Any], page: int, limit: int) -> dict[str, Any]:
    """Return `{totalCount, list}` for one page of `items`."""
    start = (page - 1) * limit
    return {"totalCount": len(items), "list": items[start : start + limit]}


def page_of(ids: list[str], page: int, limit: int) -> list[str]:
    """The ids on one page (the page is cut first, so only its users are then copied)."""
    start = (page - 1) * limit
    return ids[start : start + limit]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be a positive integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a positive integer") from None
    if number < 1 or (isinstance(value, float) and value != number):
        raise ApiError(400, f"{name} must be a positive integer")
    return number


def member_views(call: ApiCall, member_ids: list[str]) -> list[dict[str, Any]]:
    """The `UserDto`s of listed members, honouring the `with*` query flags; users deleted meanwhile are skipped."""
    return call.state.user_views(
        member_ids,
        with_department_ids=flag(call.args, "withDepartmentIds"),
        with_custom_data=flag(call.args, "withCustomData"),
        with_identities=flag(call.args, "withIdentities"),
    )


def member_page(call: ApiCall, member_ids: list[str]) -> dict[str, Any]:
    """`{totalCount, list}` for the page the query asks for, building `UserDto`s for that page only."""
    page, limit = query_page_and_limit(call.args)
    return {"totalCount": len(member_ids), "list": member_views(call, page_of(member_ids, page, limit))}
