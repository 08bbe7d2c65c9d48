"""The one way every GenAuth listing is read: pages of ``{totalCount, list}``, at most ``MAX_PAGES`` of them.

GenAuth's listings (users, department members, organisations, groups, roles, a user's departments, webhooks)
answer ``data: {totalCount, list}`` and take ``page`` (from 1) and ``limit`` (at most 50, docs/genauth.md §3.7
and §5.4). ``get_all`` reads a GET listing to its end, ``all_pages`` any listing; the sweeps
(``service.enforcement.scoping``) read one ``Page`` at a time and stop at the same cap. A listing that does
not end within ``MAX_PAGES`` is refused with ``GenAuthUnavailableError`` (retried later), never read forever
or kept truncated: a server that ignores ``page`` cannot make a caller loop, and a list is whole or unused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import GenAuthUnavailableError

PAGE_LIMIT = 50
"""Entries asked for per page: GenAuth's maximum."""
MAX_PAGES = 2000
"""The cap on every listing: 2,000 pages of 50 (100,000 entries), the largest pool a sweep is sized for."""


@dataclass(frozen=True)
class Page:
    """One page of a listing: its items and GenAuth's ``totalCount`` (None if it gave none)."""

    items: list[Json]
    total: int | None

    def is_last(self, number: int, limit: int = PAGE_LIMIT) -> bool:
        """True when no page follows page ``number`` (counted from 1)."""
        if len(self.items) < limit:
            return True
        return self.total is not None and number * limit >= self.total


def page_of(data: Any, endpoint: str) -> Page:
    """The ``Page`` in an answer's ``data``; an answer of another shape is unreadable (retried later)."""
    if not isinstance(data, dict):
        raise GenAuthUnavailableError(endpoint, "'data' is not an object")
    items = data.get("list") or []
    if not isinstance(items, list):
        raise GenAuthUnavailableError(endpoint, "'list' is not an array")
    total = data.get("totalCount")
    return Page(
        items=[item for item in items if isinstance(item, dict)],
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def unpaged_items(data: Any, endpoint: str) -> list[Json]:
    """The items of an unpaged answer: ``{totalCount, list}`` or a bare list (none when absent)."""
    items = data.get("list") if isinstance(data, dict) else data
    if items is None:
        return []
    if not isinstance(items, list):
        raise GenAuthUnavailableError(endpoint, "'list' is not an array")
    return [item for item in items if isinstance(item, dict)]


def check_page_number(number: int, what: str) -> None:
    """Refuse to read page ``number`` of ``what`` beyond ``MAX_PAGES``."""
    if number > MAX_PAGES:
        raise GenAuthUnavailableError(what, f"more than {MAX_PAGES} pages")


def all_pages(fetch: Callable[[int], Page], what: str) -> list[Json]:
    """Every item of a paged listing, asking ``fetch(page_number)`` until the last page."""
    items: list[Json] = []
    number = 1
    while True:
        check_page_number(number, what)
        page = fetch(number)
        items.extend(page.items)
        if page.is_last(number):
            return items
        number += 1


def get_page(client: GenAuthClient, endpoint: str, params: dict[str, str], number: int) -> Page:
    """Page ``number`` of a GET listing asked with the query ``params``."""
    query = {**params, "page": str(number), "limit": str(PAGE_LIMIT)}
    return page_of(client.call("GET", endpoint, params=query), endpoint)


def get_all(client: GenAuthClient, endpoint: str, params: dict[str, str] | None = None) -> list[Json]:
    """Every item of a GET listing."""
    return all_pages(lambda number: get_page(client, endpoint, params or {}, number), endpoint)
