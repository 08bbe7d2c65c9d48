"""MFA policy: which factors each user must have. Pure: no I/O beyond reading the files it is given.

policy = load_policy(Path("config/policies.yaml"))     # PolicyError lists every problem
facts = UserFacts(...)                                 # gather policy.needs (roles: policy.role_namespaces)
evaluation = evaluate(policy, facts, today=date.today())   # .results: per rule, matched or not and why
outcomes = rule_outcomes(evaluation, facts, enabled, mfa_phone, mfa_email)   # per rule: enforce [SMS], ...

``policy test`` suites (``suites``, ``testing``) check a policy against fixture users and expected outcomes.
Each condition of a match block is one class in ``conditions``; the vocabulary of what happened to a user
(``OutcomeKind``, ``Action``, ``Bucket``) is ``service.vocabulary``.
"""

from service.policy.conditions import CONDITION_KEYS, MATCH_KEYS, describe_match
from service.policy.describing import describe_rule
from service.policy.errors import MissingFactError, PolicyError, SuiteError
from service.policy.evaluation import Evaluation, RuleResult, evaluate
from service.policy.facts import Department, Fact, Role, UserFacts
from service.policy.loading import FORMAT_VERSION, load_policy, parse_policy, require_email
from service.policy.outcomes import Outcome, contact_problem, factors_to_add, rule_outcomes
from service.policy.rules import (
    DEFAULT_NAMESPACE,
    FACTORS,
    MODES,
    Exemption,
    Match,
    Policy,
    Protection,
    Rule,
    UserNotices,
    ValueTest,
)
from service.policy.suites import Case, Expectation, Suite, load_suite, parse_suite
from service.policy.testing import CaseResult, SuiteResult, run_suite

__all__ = [
    "CONDITION_KEYS",
    "DEFAULT_NAMESPACE",
    "FACTORS",
    "FORMAT_VERSION",
    "MATCH_KEYS",
    "MODES",
    "Action",
    "Bucket",
    "Case",
    "CaseResult",
    "Department",
    "Evaluation",
    "Exemption",
    "Expectation",
    "Fact",
    "Match",
    "MissingFactError",
    "Outcome",
    "OutcomeKind",
    "Policy",
    "PolicyError",
    "Protection",
    "Role",
    "Rule",
    "RuleResult",
    "Suite",
    "SuiteError",
    "SuiteResult",
    "UserFacts",
    "UserNotices",
    "ValueTest",
    "action_of",
    "bucket",
    "contact_problem",
    "describe_match",
    "describe_rule",
    "evaluate",
    "factors_to_add",
    "load_policy",
    "load_suite",
    "parse_policy",
    "parse_suite",
    "require_email",
    "rule_outcomes",
    "run_suite",
    "worst",
]
