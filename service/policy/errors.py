"""Errors of the policy package.

    ServiceError
    ├── DocumentError           a YAML document does not validate (``documents``, the one loader)
    │   ├── PolicyError         the policy file (also a ConfigurationError: the service cannot start)
    │   └── SuiteError          a ``policy test`` suite
    └── MissingFactError        a rule needs a fact the caller did not gather (a programming error)

``loading`` raises ``PolicyError``; ``suites`` raises ``SuiteError``; ``evaluation`` raises
``MissingFactError``.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.errors import ConfigurationError, ServiceError


class DocumentError(ServiceError, reason="invalid_document"):
    """A YAML document the service reads is invalid; ``problems`` lists every problem, one line each."""

    what = "document"

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems: list[str] = list(problems) or ["invalid"]
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid {self.what} {source}:\n{lines}")


class PolicyError(DocumentError, ConfigurationError, reason="invalid_policy"):
    """The policy file is invalid."""

    what = "policy file"


class SuiteError(DocumentError, reason="invalid_suite"):
    """A policy test suite is invalid."""

    what = "test suite"


class MissingFactError(ServiceError, reason="missing_fact"):
    """A policy rule needs a fact that was not gathered for the user."""

    def __init__(self, fact: str, *, rule: str, user_id: str) -> None:
        self.fact = fact
        self.rule = rule
        self.user_id = user_id
        super().__init__(
            f"rule {rule!r} needs the {str(fact)!r} fact but it was not gathered for user {user_id!r}; "
            "gather every fact in policy.needs before evaluating"
        )
