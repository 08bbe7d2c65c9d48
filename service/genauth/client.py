"""The GenAuth management API transport: the only module that imports ``requests``.

``GenAuthClient.call`` sends one request to any management endpoint and returns its ``data``; the endpoint
modules build on it: ``service.genauth.users`` (one user's record, departments, groups, roles and MFA data),
``service.genauth.directory`` (organisations, departments, members, groups, roles), ``service.genauth.webhooks``,
with listings read by ``service.genauth.paging``. The worker holds one client per worker thread, so one pooled
session each.

The client proves the access key one of two ways (``GENAUTH_AUTH``). With ``token`` (the default) it obtains
a management token from ``get-management-token``, caches it until shortly before it expires (in a
``ManagementToken`` the clients of one process share: one fetch per process, not per worker) and renews it
once when GenAuth answers 401. With ``signature`` it fetches no token: every request is signed with the secret
as it is about to be sent (``service.genauth.signing``), and a refused signature (apiCodes 1300-1306) is the
same ``GenAuthAuthenticationError`` as a refused key. Either way it sets connect and read timeouts on every
call, leaves top-level ``null`` fields out of JSON bodies (as the SDKs do), and turns GenAuth's
envelope (``{statusCode, message, apiCode, requestId, data}``, usually under HTTP 200) into data or a
typed error from ``service.genauth.errors``, counting each call in ``metrics``. Every call waits on the
process's ``RateLimiter`` (or uses tokens taken ahead with ``reserve_calls``) and reports its result to the
process's ``CircuitBreaker``. A write whose answer never came (read timeout, connection dropped after sending)
raises ``GenAuthAnswerLostError``: GenAuth may have applied it.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import email.utils
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import requests
import urllib3

from service import metrics
from service.errors import PermanentError, TemporaryError
from service.genauth import signing
from service.genauth.circuit import CircuitBreaker
from service.genauth.errors import (
    GenAuthAnswerLostError,
    GenAuthAuthenticationError,
    GenAuthError,
    GenAuthNotFoundError,
    GenAuthRateLimitedError,
    GenAuthRequestError,
    GenAuthUnavailableError,
    GenAuthUserNotFoundError,
)
from service.genauth.throttling import RateLimiter
from service.settings import GenAuthSettings

TOKEN_ENDPOINT = "/api/v3/get-management-token"  # noqa: S105 - an endpoint path, not a secret
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
USER_AGENT = "mfa-enforcer/0.1 (+python-requests)"
MAX_CONCURRENT = 4
"""Helper threads per client for ``concurrently`` (a job reads at most get-user, MFA, groups and roles)."""

Json = dict[str, Any]


class ManagementToken:
    """A management token and when to renew it; one per process, shared by its clients (under ``lock``, which
    is held while a token is fetched, so a process fetches one at a time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: str | None = None
        self.expires_at = 0.0
        self.userpool_id: str | None = None


class GenAuthClient:
    """Calls GenAuth's management API with a cached token or signed requests, on the process's rate limit and
    circuit breaker."""

    def __init__(
        self,
        settings: GenAuthSettings,
        *,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        token: ManagementToken | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._breaker = breaker
        self._prepaid = 0
        self._prepaid_lock = threading.Lock()
        first = session or _new_session()
        first.headers["User-Agent"] = USER_AGENT
        self._idle = [first]
        """Sessions no call is using; a call takes one (or makes one) and puts it back."""
        self._sessions = [first]
        self._sessions_lock = threading.Lock()
        self._helpers: ThreadPoolExecutor | None = None
        self._clock = clock
        self._wall_clock = wall_clock
        """The time a signed request's ``date`` header states."""
        self._token = token or ManagementToken()
        """The management token, shared by the clients of one process so that each fetches none of its own."""
        self._key = (
            signing.AccessKey(settings.access_key_id, settings.access_key_secret)
            if settings.auth == "signature"
            else None
        )
        """The key every request is signed with (``GENAUTH_AUTH=signature``); None when a token is sent instead."""
        self.calls = 0
        """Management calls made (token requests excluded); read by tests and benchmarks."""

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limit this client's calls wait on (shared by the workers of one process)."""
        return self._limiter

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The circuit breaker this client reports to (shared by the workers of one process)."""
        return self._breaker

    def reserve_calls(self, calls: int) -> None:
        """Make sure the tokens for the next ``calls`` calls are taken, now, so they do not wait when they are
        made (the enforcer keeps the time between reading MFA data and writing it back free of waits). Tokens
        taken earlier and not used yet count: nothing is taken twice, and unused ones serve the next calls."""
        if self._limiter is None:
            return
        with self._prepaid_lock:
            missing = calls - self._prepaid
        if missing <= 0:
            return
        self._limiter.acquire(missing)
        with self._prepaid_lock:
            self._prepaid += missing

    def close(self) -> None:
        with self._sessions_lock:
            helpers, self._helpers = self._helpers, None
            sessions = list(self._sessions)
        if helpers is not None:
            helpers.shutdown(wait=True)
        for session in sessions:
            session.close()

    def concurrently(self, *calls: Callable[[], Any]) -> list[Future[Any]]:
        """Run ``calls`` at the same time (the first in this thread, the rest in the client's helper threads)
        and return them finished, in order: ``.result()`` gives each one's value or raises its error. Each
        call still waits on the rate limiter, so the process's rate holds however many run at once."""
        pending = []
        if len(calls) > 1:
            with self._sessions_lock:
                if self._helpers is None:
                    self._helpers = ThreadPoolExecutor(MAX_CONCURRENT, thread_name_prefix="genauth-read")
                helpers = self._helpers
            pending = [helpers.submit(contextvars.copy_context().run, call) for call in calls[1:]]
        first: Future[Any] = Future()
        if calls:
            try:
                first.set_result(calls[0]())
            except Exception as error:
                first.set_exception(error)
        for future in pending:
            future.exception()  # wait for it; its error, if any, is raised by .result()
        return [first, *pending][: len(calls)]

    def call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json_body: Json | None = None
    ) -> Any:
        """Call any management endpoint and return its ``data``; modules for other endpoint groups build on this.

        Query values must already be strings (``"true"`` for booleans); errors are those of this module.
        """
        try:
            result = self._call(method, path, params=params, json_body=json_body)
        except TemporaryError:
            if self._breaker is not None:
                self._breaker.record_failure()
            raise
        except PermanentError:
            if self._breaker is not None:
                self._breaker.record_success()  # GenAuth answered; the request or the user is the problem
            raise
        if self._breaker is not None:
            self._breaker.record_success()
        return result

    def _call(self, method: str, path: str, *, params: dict[str, str] | None, json_body: Json | None) -> Any:
        if json_body is not None:
            json_body = {key: value for key, value in json_body.items() if value is not None}
        if self._key is not None:
            return self._send(method, path, None, params, json_body)  # signed: no token, nothing to renew
        token = self._current_token()
        try:
            return self._send(method, path, token, params, json_body)
        except GenAuthAuthenticationError:
            # A token can be revoked or expire early; renew once, then let the error stand.
            self._forget_token(token)
            return self._send(method, path, self._current_token(), params, json_body)

    def _send(
        self, method: str, path: str, token: str | None, params: dict[str, str] | None, json_body: Json | None
    ) -> Any:
        if token is None:  # signed in _exchange; only the brand's own headers, and no pool header (the key names it)
            headers = {f"{signing.HEADER_PREFIX}lang": "en-US"}
        else:
            headers = {"Authorization": f"Bearer {token}", "x-genauth-lang": "en-US"}
            if self._token.userpool_id:
                headers["x-genauth-userpool-id"] = self._token.userpool_id
        with self._prepaid_lock:
            self.calls += 1
        return _unwrap(path, *self._request(method, path, headers, params, json_body))

    def _request(
        self, method: str, path: str, headers: dict[str, str], params: dict[str, str] | None, json_body: Json | None
    ) -> tuple[Json, float | None]:
        if self._limiter is not None and not self._take_prepaid():
            self._limiter.acquire()
        started = time.perf_counter()
        status = "error"
        try:
            envelope, retry_after = self._exchange(method, path, headers, params, json_body)
            status = str(envelope.get("statusCode", "none"))
            return envelope, retry_after
        except GenAuthRateLimitedError:
            status = "429"
            raise
        finally:
            if status == "429" and self._limiter is not None:
                self._limiter.throttled()  # HTTP 429 or statusCode 429: the process slows down
            metrics.GENAUTH_CALLS.labels(endpoint=path, status=status).inc()
            metrics.GENAUTH_SECONDS.labels(endpoint=path).observe(time.perf_counter() - started)

    def _take_prepaid(self) -> bool:
        with self._prepaid_lock:
            if self._prepaid <= 0:
                return False
            self._prepaid -= 1
            return True

    def _exchange(
        self, method: str, path: str, headers: dict[str, str], params: dict[str, str] | None, json_body: Json | None
    ) -> tuple[Json, float | None]:
        """One HTTP exchange: the envelope and GenAuth's ``Retry-After``, or the error the failure means."""
        timeout = (self._settings.connect_timeout, self._settings.read_timeout)
        session = self._borrow()
        try:
            request = requests.Request(
                method, self._settings.host + path, headers=headers, params=params, json=json_body
            )
            prepared = session.prepare_request(request)
            if self._key is not None and path != TOKEN_ENDPOINT:
                # Signed last, from the request as prepared: the method, path, query and body GenAuth receives.
                assert prepared.url is not None
                prepared.headers.update(
                    signing.sign_request(
                        self._key, method, prepared.url, prepared.headers, prepared.body, now=self._wall_clock()
                    )
                )
            environment = session.merge_environment_settings(prepared.url, {}, None, None, None)
            response = session.send(prepared, timeout=timeout, **environment)
        except requests.ReadTimeout as exc:
            if method == "POST" and path != TOKEN_ENDPOINT:
                raise GenAuthAnswerLostError(path, "no answer in time; the write may have been applied") from exc
            raise GenAuthUnavailableError(path, "timed out") from exc
        except requests.Timeout as exc:
            raise GenAuthUnavailableError(path, "timed out") from exc
        except requests.ConnectionError as exc:
            if method == "POST" and path != TOKEN_ENDPOINT and _was_sent(exc):
                raise GenAuthAnswerLostError(
                    path, "the connection closed before the answer; the write may have been applied"
                ) from exc
            raise GenAuthUnavailableError(path, f"request failed: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise GenAuthUnavailableError(path, f"request failed: {type(exc).__name__}") from exc
        finally:
            self._give_back(session)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code == 429:
            raise GenAuthRateLimitedError(path, "HTTP 429", status_code=429, retry_after=retry_after)
        if response.status_code >= 500:
            status = response.status_code
            raise GenAuthUnavailableError(path, f"HTTP {status}", status_code=status, retry_after=retry_after)
        try:
            envelope = response.json()
        except ValueError as exc:
            raise GenAuthUnavailableError(path, f"HTTP {response.status_code} with a body that is not JSON") from exc
        if not isinstance(envelope, dict):
            raise GenAuthUnavailableError(path, "the answer is not a JSON object")
        if response.status_code in (401, 403) and "statusCode" not in envelope:
            envelope["statusCode"] = response.status_code
        if response.status_code >= 400 and "statusCode" not in envelope:
            raise GenAuthRequestError(path, f"HTTP {response.status_code}", status_code=response.status_code)
        return envelope, retry_after

    def _borrow(self) -> requests.Session:
        with self._sessions_lock:
            if self._idle:
                return self._idle.pop()
        session = _new_session()
        with self._sessions_lock:
            self._sessions.append(session)
        return session

    def _give_back(self, session: requests.Session) -> None:
        with self._sessions_lock:
            self._idle.append(session)

    def _current_token(self) -> str:
        held = self._token
        with held.lock:
            if held.value is None or self._clock() >= held.expires_at:
                held.value = None
                self._fetch_token()
            assert held.value is not None
            return held.value

    def _forget_token(self, token: str) -> None:
        with self._token.lock:
            if self._token.value == token:
                self._token.value = None

    def _fetch_token(self) -> None:
        path = TOKEN_ENDPOINT
        body = {
            "accessKeyId": self._settings.access_key_id,
            "accessKeySecret": self._settings.access_key_secret,
        }
        data = _unwrap(path, *self._request("POST", path, {}, None, body))
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise GenAuthUnavailableError(path, "no access_token in the answer")
        expires_in = data.get("expires_in") if isinstance(data, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 7200.0
        margin = min(self._settings.token_refresh_margin, lifetime / 2)
        self._token.value = token
        self._token.expires_at = self._clock() + lifetime - margin
        self._token.userpool_id = scoped_userpool_id(token)

    def probe(self, url: str) -> int | None:
        """GET ``url`` as this service sees it (5 s, no redirects): its HTTP status, or None if unreachable.

        ``webhooks subscribe`` uses it to warn about a webhook URL GenAuth will probably not reach either.
        """
        session = self._borrow()
        try:
            response = session.get(url, timeout=5.0, allow_redirects=False)
        except requests.RequestException:
            return None
        finally:
            self._give_back(session)
        response.close()
        return response.status_code


def _new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def _was_sent(error: requests.ConnectionError) -> bool:
    """Whether the request reached GenAuth before the connection failed: a refused or unresolvable connection
    (urllib3 wraps it in ``MaxRetryError``) never sent it; an aborted one (``ProtocolError``) may have."""
    cause = error.args[0] if error.args else None
    return not isinstance(cause, urllib3.exceptions.MaxRetryError)


def _unwrap(path: str, envelope: Json, retry_after: float | None) -> Any:
    """Return ``data`` of a successful envelope, or raise the error its ``statusCode`` and ``apiCode`` mean."""
    status = envelope.get("statusCode")
    if status == 200:
        return envelope.get("data")
    api_code = _int(envelope.get("apiCode"))
    status_code = _int(status)
    message = _message_of(envelope)
    error_type: type[GenAuthError]
    refused_signature = signing.refusal(api_code)
    if refused_signature is not None:
        # Whatever statusCode comes with it (undocumented): a refused signature is a refused key.
        error_type = GenAuthAuthenticationError
        message = f"signature refused: {refused_signature} (GenAuth: {message})"
    elif path == TOKEN_ENDPOINT and status_code != 429 and (status_code or 0) < 500:
        error_type = GenAuthAuthenticationError  # the key pair itself was refused
    elif status_code is None:
        raise GenAuthUnavailableError(path, "no statusCode in the answer")
    elif api_code == USER_NOT_FOUND_API_CODE or (status_code == 404 and path in USER_ENDPOINTS):
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
    raise error_type(
        path,
        message,
        status_code=status_code,
        api_code=api_code,
        request_id=_str(envelope.get("requestId")),
        retry_after=retry_after,
    )


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
