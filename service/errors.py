"""The root of every error the service raises, split by what happens next.

    ServiceError
    ├── TemporaryError      retry later (maybe after ``retry_after`` seconds); never loses the work
    └── PermanentError      record and stop; retrying cannot help

Packages add their own errors beneath these in their ``errors.py``. Each error carries a machine-readable
``reason`` for logs and metrics; its docstring is its default message.
"""

from __future__ import annotations


class ServiceError(Exception):
    """The service failed."""

    reason: str = "service_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.reason).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class TemporaryError(ServiceError):
    """A temporary failure; the work is retried later."""

    reason = "temporary"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ServiceError):
    """A permanent failure; retrying cannot help."""

    reason = "permanent"


class ConfigurationError(ServiceError):
    """The configuration is invalid; the service cannot start."""

    reason = "configuration"
