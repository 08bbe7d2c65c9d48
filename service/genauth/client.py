"""The GenAuth management API client: the only module that imports ``requests``.

Used by the worker (one client per worker thread, so one pooled session each). It obtains a management token
from ``get-management-token``, caches it until shortly before it expires, renews it once when GenAuth answers
401, sets connect and read timeouts on every call, and turns GenAuth's envelope
(``{statusCode, message, apiCode, requestId, data}``, usually under HTTP 200) into data or a typed error from
``service.genauth.errors``. Only the endpoints the enforcer needs are here.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from service import metrics
from service.genauth.errors import (
    GenAuthAuthenticationError,
    GenAuthError,
    GenAuthNotFoundError,
    GenAuthRateLimitedError,
    GenAuthRequestError,
    GenAuthUnavailableError,
    GenAuthUserNotFoundError,
    trim,
)
from service.genauth.throttling import RateLimiter
from service.settings import GenAuthSettings

USER_NOT_FOUND_API_CODE = 2004
# Endpoints about one user: there a bare 404 means the user is gone.
USER_ENDPOINTS = frozenset(
    {
        "/api/v3/get-user",
        "/api/v3/get-mfa-status",
        "/api/v3/set-mfa-status",
        "/api/v3/get-user-departments",
        "/api/v3/get-user-groups",
        "/api/v3/get-user-roles",
    }
)
PAGE_LIMIT = 50
MAX_PAGES = 200
USER_AGENT = "mfa-enforcer/0.1 (+python-requests)"

ErrorType = type[GenAuthError]
Json = dict[str, Any]


class GenAuthClient:
    """A typed client for the few management endpoints the enforcer calls."""

    def __init__(
        self,
        settings: GenAuthSettings,
        *,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._userpool_id: str | None = None
        self._token_expires_at = 0.0
        self.calls = 0
        """Management calls made (token requests excluded); read by tests and benchmarks."""

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limit this client's calls wait on (shared by the workers of one process)."""
        return self._limiter

    def close(self) -> None:
        self._session.close()

    # -- endpoints -----------------------------------------------------------------------------------------

    def get_user(self, user_id: str, *, with_custom_data: bool = False) -> Json:
        """The user's v3 record (``UserDto``), with ``customData`` when asked."""
        params = {"userId": user_id, "userIdType": "user_id"}
        if with_custom_data:
            params["withCustomData"] = "true"
        data = self.call("GET", "/api/v3/get-user", params=params)
        return _expect_object(data, "/api/v3/get-user")

    def list_user_groups(self, user_id: str) -> list[Json]:
        """The user groups the user belongs to (``get-user-groups``: not paged)."""
        endpoint = "/api/v3/get-user-groups"
        data = self.call("GET", endpoint, params={"userId": user_id, "userIdType": "user_id"})
        return _list_of(data, endpoint)

    def list_user_roles(self, user_id: str, *, namespace: str) -> list[Json]:
        """The user's roles in one namespace (permission group); GenAuth returns one namespace per call."""
        endpoint = "/api/v3/get-user-roles"
        params = {"userId": user_id, "userIdType": "user_id", "namespace": namespace}
        return _list_of(self.call("GET", endpoint, params=params), endpoint)

    def list_user_departments(self, user_id: str) -> list[Json]:
        """Every department the user belongs to, with the ids, codes and names of its ancestors."""
        endpoint = "/api/v3/get-user-departments"
        departments: list[Json] = []
        for page in range(1, MAX_PAGES + 1):
            params = {
                "userId": user_id,
                "userIdType": "user_id",
                "withDepartmentPaths": "true",
                "page": str(page),
                "limit": str(PAGE_LIMIT),
            }
            data = _expect_object(self.call("GET", endpoint, params=params), endpoint)
            items = data.get("list") or []
            if not isinstance(items, list):
                raise _protocol_error(endpoint, "'list' is not an array")
            departments.extend(item for item in items if isinstance(item, dict))
            total = data.get("totalCount")
            if len(items) < PAGE_LIMIT or (isinstance(total, int) and len(departments) >= total):
                break
        return departments

    def get_mfa_status(self, user_id: str) -> Json:
        """The user's stored MFA trigger data, exactly as GenAuth returned it."""
        data = self.call("GET", "/api/v3/get-mfa-status", params={"userId": user_id, "userIdType": "user_id"})
        if data is None:
            return {}
        return _expect_object(data, "/api/v3/get-mfa-status")

    def set_mfa_status(self, user_id: str, trigger_data: Json) -> None:
        """Store the user's whole MFA trigger data (the caller has merged it with what was read)."""
        body = {"userId": user_id, "userIdType": "user_id", "mfaTriggerData": trigger_data}
        self.call("POST", "/api/v3/set-mfa-status", json_body=body)

    # -- plumbing ------------------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json_body: Json | None = None
    ) -> Any:
        """Call any management endpoint and return its ``data``; modules for other endpoint groups build on this.

        Query values must already be strings (``"true"`` for booleans); errors are those of this module.
        """
        token = self._current_token()
        try:
            return self._send(method, path, token, params=params, json_body=json_body)
        except GenAuthAuthenticationError:
            # A token can be revoked or expire early; renew once, then let the error stand.
            self._forget_token(token)
            return self._send(method, path, self._current_token(), params=params, json_body=json_body)

    def _send(
        self, method: str, path: str, token: str, *, params: dict[str, str] | None, json_body: Json | None
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}", "x-genauth-lang": "en-US"}
        if self._userpool_id:
            headers["x-genauth-userpool-id"] = self._userpool_id
        self.calls += 1
        envelope, retry_after = self._request(method, path, headers=headers, params=params, json_body=json_body)
        return _unwrap(envelope, path, retry_after)

    def _request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        json_body: Json | None = None,
    ) -> tuple[Json, float | None]:
        url = self._settings.host + path
        timeout = (self._settings.connect_timeout, self._settings.read_timeout)
        if self._limiter is not None:
            self._limiter.acquire()
        started = time.perf_counter()
        status = "error"
        try:
            envelope, retry_after = self._exchange(method, path, url, headers, params, json_body, timeout)
            status = str(envelope.get("statusCode", "none"))
            return envelope, retry_after
        except GenAuthRateLimitedError:
            status = "429"
            raise
        finally:
            metrics.GENAUTH_CALLS.labels(endpoint=path, status=status).inc()
            metrics.GENAUTH_SECONDS.labels(endpoint=path).observe(time.perf_counter() - started)

    def _exchange(
        self,
        method: str,
        path: str,
        url: str,
        headers: dict[str, str],
        params: dict[str, str] | None,
        json_body: Json | None,
        timeout: tuple[float, float],
    ) -> tuple[Json, float | None]:
        try:
            response = self._session.request(
                method, url, headers=headers, params=params, json=json_body, timeout=timeout
            )
        except requests.Timeout as exc:
            raise _error(GenAuthUnavailableError, path, "timed out") from exc
        except requests.RequestException as exc:
            raise _error(GenAuthUnavailableError, path, f"request failed: {type(exc).__name__}") from exc
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code == 429:
            raise _error(GenAuthRateLimitedError, path, "HTTP 429", status_code=429, retry_after=retry_after)
        if response.status_code >= 500:
            raise _error(
                GenAuthUnavailableError,
                path,
                f"HTTP {response.status_code}",
                status_code=response.status_code,
                retry_after=retry_after,
            )
        try:
            envelope = response.json()
        except ValueError as exc:
            raise _protocol_error(path, f"HTTP {response.status_code} with a body that is not JSON") from exc
        if not isinstance(envelope, dict):
            raise _protocol_error(path, "the answer is not a JSON object")
        if response.status_code in (401, 403) and "statusCode" not in envelope:
            envelope["statusCode"] = response.status_code
        if response.status_code >= 400 and "statusCode" not in envelope:
            raise _error(GenAuthRequestError, path, f"HTTP {response.status_code}", status_code=response.status_code)
        return envelope, retry_after

    def _current_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._token_expires_at:
                self._token = None
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _forget_token(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch_token(self) -> None:
        path = "/api/v3/get-management-token"
        body = {
            "accessKeyId": self._settings.access_key_id,
            "accessKeySecret": self._settings.access_key_secret,
        }
        envelope, retry_after = self._request("POST", path, headers={}, json_body=body)
        status = envelope.get("statusCode")
        if status != 200:
            if isinstance(status, int) and (status == 429 or status >= 500):
                _unwrap(envelope, path, retry_after)
            raise _error(
                GenAuthAuthenticationError,
                path,
                _message_of(envelope),
                status_code=_int(status),
                api_code=_int(envelope.get("apiCode")),
                request_id=_str(envelope.get("requestId")),
            )
        data = envelope.get("data")
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise _protocol_error(path, "no access_token in the answer")
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 7200.0
        margin = min(self._settings.token_refresh_margin, lifetime / 2)
        self._token = token
        self._token_expires_at = self._clock() + lifetime - margin
        self._userpool_id = scoped_userpool_id(token)

    def probe(self, url: str) -> int | None:
        """GET ``url`` as this service sees it (5 s, no redirects): its HTTP status, or None if unreachable.

        ``webhooks subscribe`` uses it to warn about a webhook URL GenAuth will probably not reach either.
        """
        try:
            response = self._session.get(url, timeout=5.0, allow_redirects=False)
        except requests.RequestException:
            return None
        response.close()
        return response.status_code


def _unwrap(envelope: Json, path: str, retry_after: float | None = None) -> Any:
    """Return ``data`` of a successful envelope, or raise the error its ``statusCode`` and ``apiCode`` mean."""
    status = envelope.get("statusCode")
    if status == 200:
        return envelope.get("data")
    api_code = _int(envelope.get("apiCode"))
    status_code = _int(status)
    message = _message_of(envelope)
    error_type: ErrorType
    if status_code is None:
        raise _protocol_error(path, "no statusCode in the answer")
    if api_code == USER_NOT_FOUND_API_CODE or (status_code == 404 and path in USER_ENDPOINTS):
        error_type = GenAuthUserNotFoundError
    elif status_code == 404:
        # Not "the user is gone": an unknown department, group or namespace must not read as a deleted user.
        error_type = GenAuthNotFoundError
    elif status_code == 429:
        error_type = GenAuthRateLimitedError
    elif status_code == 401:
        error_type = GenAuthAuthenticationError
    elif status_code >= 500:
        error_type = GenAuthUnavailableError
    else:
        error_type = GenAuthRequestError
    raise _error(
        error_type,
        path,
        message,
        status_code=status_code,
        api_code=api_code,
        request_id=_str(envelope.get("requestId")),
        retry_after=retry_after,
    )


def _error(
    error_type: ErrorType,
    path: str,
    message: str,
    *,
    status_code: int | None = None,
    api_code: int | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> Exception:
    codes = ", ".join(
        part
        for part in (
            f"statusCode {status_code}" if status_code is not None else "",
            f"apiCode {api_code}" if api_code is not None else "",
            f"requestId {request_id}" if request_id else "",
        )
        if part
    )
    text = f"GenAuth {path}: {trim(message)}" + (f" ({codes})" if codes else "")
    factory: Any = error_type
    error: Any
    if issubclass(error_type, GenAuthUnavailableError | GenAuthAuthenticationError):
        error = factory(text, retry_after=retry_after)
    else:
        error = factory(text)
    error.endpoint = path
    error.status_code = status_code
    error.api_code = api_code
    error.request_id = request_id
    assert isinstance(error, Exception)
    return error


def _protocol_error(path: str, message: str) -> Exception:
    return _error(GenAuthUnavailableError, path, message)


def _expect_object(data: Any, path: str) -> Json:
    if not isinstance(data, dict):
        raise _protocol_error(path, "'data' is not an object")
    return data


def _list_of(data: Any, path: str) -> list[Json]:
    """The items of ``{totalCount, list}`` (or of a bare list)."""
    items = data.get("list") if isinstance(data, dict) else data
    if items is None:
        return []
    if not isinstance(items, list):
        raise _protocol_error(path, "'list' is not an array")
    return [item for item in items if isinstance(item, dict)]


def _message_of(envelope: Json) -> str:
    message = envelope.get("message")
    return message if isinstance(message, str) and message else "no message"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def scoped_userpool_id(token: str) -> str | None:
    """The ``scoped_userpool_id`` claim of a management token (decoded, not verified), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    value = claims.get("scoped_userpool_id") if isinstance(claims, dict) else None
    return value if isinstance(value, str) else None
