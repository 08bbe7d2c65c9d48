"""Errors of the notices package.

TemporaryError
└── NoticeNotSentError      a channel refused or did not answer: the notice is tried again later
PermanentError
└── TemplateError           a template file is missing a part or names a placeholder that does not exist
"""

from __future__ import annotations

from service.errors import PermanentError, TemporaryError


class NoticeNotSentError(TemporaryError, reason="notice_not_sent"):
    """The channel did not take the notice; it stays in the outbox and is tried again."""


class TemplateError(PermanentError, reason="bad_template"):
    """A notification template cannot be rendered."""
