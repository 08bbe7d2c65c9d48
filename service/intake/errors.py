"""Errors the web layer answers with, rendered as ``{code, status, message, errors}`` by one handler."""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError


class HttpError(ServiceError):
    """The request cannot be accepted."""

    status = 400
    reason = "bad_request"

    def __init__(self, message: str | None = None, *, errors: Any = None) -> None:
        super().__init__(message)
        self.errors = errors


class UnauthorizedError(HttpError):
    """The webhook secret is missing or wrong."""

    status = 401
    reason = "unauthorized"


class ForbiddenPoolError(HttpError):
    """The delivery is for another user pool."""

    status = 403
    reason = "wrong_userpool"


class MalformedBodyError(HttpError):
    """The body cannot be parsed."""

    status = 400
    reason = "malformed_body"


class InvalidDeliveryError(HttpError):
    """The body parsed but is not a valid GenAuth delivery."""

    status = 422
    reason = "invalid_delivery"


class UnsupportedMediaTypeError(HttpError):
    """The content type is not application/json or application/x-www-form-urlencoded."""

    status = 415
    reason = "unsupported_media_type"


class StoreUnavailableError(HttpError):
    """The delivery could not be recorded; send it again later."""

    status = 503
    reason = "store_unavailable"
