"""Why enforcing one user, or a sweep, did not finish, typed by what happens next.

    ServiceError
    └── TemporaryError
        ├── WriteNotKeptError          set-mfa-status answered success, the read after it disagrees
        ├── WriteOutcomeUnknownError   set-mfa-status got no answer and the read after it cannot tell;
        │                              carries the ``unknown`` decision the worker records
        └── UnmergeableMfaDataError    the MFA data has a shape that cannot be written back intact
    SweepStoppedError                  not a failure: the sweep was asked to stop

The temporary ones: the worker retries with backoff, then dead-letters the row with the message as its
reason, so an operator sees exactly what GenAuth did. ``SweepStoppedError`` is deliberately outside
``ServiceError``: it is a stop request travelling up from a wait, and a handler that records a user's
``ServiceError`` as a failure must let it pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import TemporaryError

if TYPE_CHECKING:
    from service.enforcement.decisions import Decision


class WriteNotKeptError(TemporaryError, reason="write_not_kept"):
    """GenAuth did not keep the change."""


class WriteOutcomeUnknownError(TemporaryError, reason="write_outcome_unknown"):
    """Write outcome unknown: GenAuth did not answer set-mfa-status; the next read confirms what it did."""

    def __init__(self, message: str | None = None, *, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision
        """The ``unknown`` decision to record while the row waits for its retry."""


class UnmergeableMfaDataError(TemporaryError, reason="mfa_data_unmergeable"):
    """GenAuth's MFA data for the user cannot be written back intact; nothing was written."""


class SweepStoppedError(Exception):
    """The sweep was asked to stop; what it recorded stays, and it resumes from there."""
