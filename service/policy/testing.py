"""Running a policy test suite: evaluate each fixture user and compare every listed rule's outcome.

Pure: the caller loads the suite and the policy and passes the date that exceptions expire against when
neither the suite nor the case gives one. ``SuiteResult.lines()`` is what ``policy test`` prints: PASS or
FAIL per case, the difference (with the rule's reasons) under each failure, and ``N passed, M failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from service.policy.errors import SuiteError
from service.policy.evaluation import RuleResult, evaluate
from service.policy.outcomes import Outcome, rule_outcomes
from service.policy.rules import Policy
from service.policy.suites import Case, Expectation, Suite


@dataclass(frozen=True)
class RuleCheck:
    """One expectation of one case against the outcome the policy gave."""

    rule: str
    expected: Expectation
    actual: Outcome
    result: RuleResult

    @property
    def passed(self) -> bool:
        return self.expected.is_met_by(self.actual)

    def difference(self) -> list[str]:
        """``finance-sms: expected enforce [SMS], got unsatisfiable [SMS]`` and the lines that explain it."""
        lines = [f"{self.rule}: expected {self.expected.label}, got {self.actual.label}"]
        why = "matched" if self.result.matched else "not matched"
        lines.append(f"  {why}: {'; '.join(self.result.reasons) or '-'}")
        lines += [f"  {line}" for line in (*self.actual.details, *self.result.expired_exemptions)]
        return lines


@dataclass(frozen=True)
class CaseResult:
    case: Case
    today: date
    checks: tuple[RuleCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass(frozen=True)
class SuiteResult:
    suite: Suite
    policy: Policy
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"

    def lines(self) -> list[str]:
        """The report: a line per case, the differences under failures, then the summary."""
        lines: list[str] = []
        for result in self.results:
            lines.append(f"{'PASS' if result.passed else 'FAIL'} {result.case.name}")
            for check in result.checks:
                if not check.passed:
                    lines += [f"     {line}" for line in check.difference()]
        lines.append(self.summary)
        return lines


def run_suite(suite: Suite, policy: Policy, *, today: date) -> SuiteResult:
    """Run every case of ``suite`` against ``policy``; ``today`` applies where the suite gives no date.

    Raises ``SuiteError`` when a case expects something of a rule the policy does not have.
    """
    names = [rule.name for rule in policy.rules]
    unknown = [
        f"cases[{index}] ({case.name}): expect.{rule}: the policy {policy.source} has no such rule; "
        f"its rules are {', '.join(names) or 'none'}"
        for index, case in enumerate(suite.cases)
        for rule, _ in case.expect
        if rule not in names
    ]
    if unknown:
        raise SuiteError(suite.source, unknown)
    return SuiteResult(
        suite=suite,
        policy=policy,
        results=tuple(_run_case(case, policy, case.today or suite.today or today) for case in suite.cases),
    )


def _run_case(case: Case, policy: Policy, today: date) -> CaseResult:
    evaluation = evaluate(policy, case.facts, today=today)
    outcomes = rule_outcomes(
        evaluation, case.facts, case.enabled, case.mfa_phone, case.mfa_email, case.mfa_phone_country_code
    )
    results = {result.rule: result for result in evaluation.results}
    checks = tuple(
        RuleCheck(rule=rule, expected=expected, actual=outcomes[rule], result=results[rule])
        for rule, expected in case.expect
    )
    return CaseResult(case=case, today=today, checks=checks)
