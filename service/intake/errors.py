"""Errors the web layer answers with, rendered as ``{code, status, message, errors}`` by one handler.

ServiceError
└── HttpError                       400 unless a subclass says otherwise
    ├── UnauthorizedError           401 the webhook secret (or admin token) is missing or wrong
    ├── ForbiddenPoolError          403 the delivery is for another user pool
    │   └── MissingPoolError        403 the delivery names no pool and one is required
    ├── MalformedBodyError          400 the body cannot be read
    │   └── TooManyValuesError      400 more values than any GenAuth event holds
    ├── InvalidDeliveryError        422 the body is no delivery the service understands
    ├── TooManySubjectsError        422 more subjects than ENFORCER_MAX_SUBJECTS
    ├── RequestReadTimeoutError     408 the request did not arrive in time
    ├── UnsupportedMediaTypeError   415 neither JSON nor a form
    ├── StoreUnavailableError       503 the delivery could not be recorded
    ├── ExplainUnavailableError     503 the admin API cannot explain users here
    ├── UnknownUserError            404 the admin API was asked about a user GenAuth does not know
    ├── UnknownRuleError            404 the admin API was asked for a rule or outcome that does not exist
    ├── InvalidActionError          400 an admin API action without a reason, or with a scope it cannot use
    └── RevertRefusedError          409 a revert while an enforce-mode rule still covers users in scope
"""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError


def error_body(code: str, status: int, message: str, errors: Any = None) -> dict[str, Any]:
    """The JSON every error answer carries: ``{code, status, message, errors}``."""
    return {"code": code, "status": status, "message": message, "errors": errors or {}}


class HttpError(ServiceError, reason="bad_request"):
    """The request cannot be accepted; ``status`` is the HTTP status it is answered with."""

    status = 400

    def __init_subclass__(cls, status: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, message: str | None = None, *, errors: Any = None) -> None:
        super().__init__(message)
        self.errors = errors


class UnauthorizedError(HttpError, reason="unauthorized", status=401):
    """The webhook secret is missing or wrong."""


class ForbiddenPoolError(HttpError, reason="wrong_userpool", status=403):
    """The delivery is for another user pool."""


class MalformedBodyError(HttpError, reason="malformed_body"):
    """The body cannot be parsed."""


class TooManyValuesError(MalformedBodyError, reason="too_many_values"):
    """The body holds more values than any GenAuth event; it was not parsed."""


class InvalidDeliveryError(HttpError, reason="invalid_delivery", status=422):
    """The body parsed but is not a valid GenAuth delivery."""


class TooManySubjectsError(HttpError, reason="too_many_subjects", status=422):
    """The delivery names more subjects than ENFORCER_MAX_SUBJECTS; nothing was stored."""


class MissingPoolError(ForbiddenPoolError, reason="missing_userpool"):
    """The delivery names no user pool, and GENAUTH_USERPOOL_ID requires it to name this one."""


class RequestReadTimeoutError(HttpError, reason="request_timeout", status=408):
    """The request did not arrive in time: its headers and body must arrive within ENFORCER_REQUEST_READ_TIMEOUT."""


class UnsupportedMediaTypeError(HttpError, reason="unsupported_media_type", status=415):
    """The content type is not application/json or application/x-www-form-urlencoded."""


class StoreUnavailableError(HttpError, reason="store_unavailable", status=503):
    """The delivery could not be recorded; send it again later."""


class ExplainUnavailableError(HttpError, reason="explain_unavailable", status=503):
    """This process has no GenAuth credentials, so it cannot explain users; ask one that does."""


class UnknownUserError(HttpError, reason="unknown_user", status=404):
    """No such user in GenAuth."""


class UnknownRuleError(HttpError, reason="unknown_rule", status=404):
    """No such rule."""


class InvalidActionError(HttpError, reason="invalid_action"):
    """An admin API action (pause, release …) gave no reason, or a scope or time it cannot use."""


class RevertRefusedError(HttpError, reason="revert_refused", status=409):
    """A revert whose users an enforce-mode rule would write again: switch the rule to audit, or force it."""
