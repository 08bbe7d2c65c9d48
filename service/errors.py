"""The root of every error the service raises, split by what happens next.

    ServiceError
    ├── TemporaryError              retry later (maybe after ``retry_after`` seconds); never loses the work
    │   └── PolicyUnavailableError  no rules are in force (``policy_source``): queued users wait for a valid file
    ├── PermanentError              record and stop; retrying cannot help
    │   └── ReportFilterError       a report asked for a rule or outcome that does not exist (``reports``)
    └── ConfigurationError          the service cannot start as configured

Each package adds its own beneath these in its ``errors.py``; the top-level modules' errors are here. Each
error carries a machine-readable ``reason`` for logs and metrics, given on its class line
(``class SweepBusyError(ServiceError, reason="sweep_busy")``); its docstring is its default message.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """The service failed."""

    reason: str = "service_error"

    def __init_subclass__(cls, reason: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if reason is not None:
            cls.reason = reason

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.reason).strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class TemporaryError(ServiceError, reason="temporary"):
    """A temporary failure; the work is retried later."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ServiceError, reason="permanent"):
    """A permanent failure; retrying cannot help."""


class ConfigurationError(ServiceError, reason="configuration"):
    """The configuration is invalid; the service cannot start."""


class PolicyUnavailableError(TemporaryError, reason="policy_unavailable"):
    """No policy is in force (the file does not validate and no last good copy exists); the work waits."""


class ReportFilterError(PermanentError, reason="unknown_report_filter"):
    """The report was asked for a rule or outcome that does not exist."""
