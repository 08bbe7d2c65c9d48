"""The one pager of GenAuth listings (service.genauth.paging) and the errors it and the client raise."""

from __future__ import annotations

import pytest

from service.errors import PermanentError, TemporaryError
from service.genauth.errors import GenAuthRateLimitedError, GenAuthRefusedError, GenAuthUserNotFoundError
from service.genauth.paging import MAX_PAGES, PAGE_LIMIT, Page, all_pages, page_of


def test_all_pages_reads_until_a_short_page():
    """Full pages are followed by the next; a short one ends the listing."""
    pages = {1: [{"n": i} for i in range(PAGE_LIMIT)], 2: [{"n": "last"}]}
    asked: list[int] = []

    def fetch(number: int) -> Page:
        asked.append(number)
        return Page(pages[number], total=None)

    assert len(all_pages(fetch, "/api/v3/list-things")) == PAGE_LIMIT + 1
    assert asked == [1, 2]


def test_a_listing_that_never_ends_is_refused_after_the_cap():
    """A server that ignores ``page`` (always full, no totalCount) is read MAX_PAGES times, then refused."""
    asked: list[int] = []

    def fetch(number: int) -> Page:
        asked.append(number)
        return Page([{"n": 1}] * PAGE_LIMIT, total=None)

    with pytest.raises(TemporaryError, match=f"more than {MAX_PAGES} pages"):
        all_pages(fetch, "/api/v3/list-things")
    assert len(asked) == MAX_PAGES


def test_page_of_refuses_an_answer_of_another_shape():
    """``data`` must be ``{totalCount, list}``; anything else is unreadable, not an empty listing."""
    assert page_of({"totalCount": 3, "list": [{"a": 1}, "junk"]}, "/x") == Page([{"a": 1}], total=3)
    for data in (None, [], {"list": "no"}):
        with pytest.raises(TemporaryError):
            page_of(data, "/x")


def test_genauth_errors_say_where_which_codes_and_which_request():
    """Every GenAuth error is built with one constructor; its message carries the endpoint and codes."""
    error = GenAuthRateLimitedError(
        "/api/v3/get-user", "Too  many\nrequests", status_code=429, api_code=42, request_id="r1", retry_after=3.0
    )
    assert str(error) == "GenAuth /api/v3/get-user: Too many requests (statusCode 429, apiCode 42, requestId r1)"
    assert (error.endpoint, error.status_code, error.api_code, error.request_id) == ("/api/v3/get-user", 429, 42, "r1")
    assert isinstance(error, TemporaryError) and error.retry_after == 3.0
    gone = GenAuthUserNotFoundError("/api/v3/get-user", "x" * 500)
    assert isinstance(gone, GenAuthRefusedError) and isinstance(gone, PermanentError)
    assert len(gone.message) < 260 and gone.reason == "genauth_user_not_found"
