"""Errors of the policy package.

    ServiceError
    ├── ConfigurationError
    │   └── PolicyError         the policy file does not validate; the service cannot start
    ├── SuiteError              a ``policy test`` suite does not validate
    └── MissingFactError        a rule needs a fact the caller did not gather (a programming error)

``loading`` raises ``PolicyError``; ``suites`` raises ``SuiteError``; ``evaluation`` raises
``MissingFactError``.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.errors import ConfigurationError, ServiceError
from service.policy.facts import Fact


class PolicyError(ConfigurationError):
    """The policy file is invalid."""

    reason = "invalid_policy"

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems: list[str] = list(problems) or ["invalid"]
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid policy file {source}:\n{lines}")


class SuiteError(ServiceError):
    """A policy test suite is invalid."""

    reason = "invalid_suite"

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems: list[str] = list(problems) or ["invalid"]
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid test suite {source}:\n{lines}")


class MissingFactError(ServiceError):
    """A policy rule needs a fact that was not gathered for the user."""

    reason = "missing_fact"

    def __init__(self, fact: Fact, *, rule: str, user_id: str) -> None:
        self.fact = fact
        self.rule = rule
        self.user_id = user_id
        super().__init__(
            f"rule {rule!r} needs the {fact.value!r} fact but it was not gathered for user {user_id!r}; "
            "gather every fact in facts_needed(policy) before evaluating"
        )
