"""Why the store refused or could not do what it was asked.

    ServiceError
    ├── ConfigurationError
    │   ├── SchemaOutOfDateError       the schema is older (or newer) than this code: run ``db upgrade``
    │   └── DatabaseMissingError       a SQLite file that existed is gone; nothing starts over silently
    ├── TemporaryError
    │   └── GroupCommitTimeoutError    a write waited too long for a writer and was withdrawn, not written

Raised by ``migrating``, ``committing`` and ``sweeps``. Database errors themselves stay SQLAlchemy's.
"""

from __future__ import annotations

from service.errors import ConfigurationError, TemporaryError


class SchemaOutOfDateError(ConfigurationError, reason="schema_out_of_date"):
    """The database schema is older (or newer) than this code."""


class DatabaseMissingError(ConfigurationError, reason="database_missing"):
    """The SQLite database file is missing, but files beside it show that it existed."""


class GroupCommitTimeoutError(TemporaryError, reason="group_commit_timeout"):
    """The item waited too long for a writer and was withdrawn: it was not written."""
