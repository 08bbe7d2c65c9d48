"""MFA policy: which factors each user must have. Pure: no I/O beyond reading the policy file it is given.

policy = load_policy(Path("config/policies.yaml"))     # PolicyError lists every problem
facts = UserFacts(...)                                 # gather facts_needed(policy), nothing more
decision = evaluate(policy, facts)                     # decision.required, decision.audit_only
"""

from service.policy.errors import MissingFactError, PolicyError
from service.policy.evaluation import Evaluation, RuleResult, evaluate, facts_needed
from service.policy.facts import Department, Fact, UserFacts
from service.policy.loading import FORMAT_VERSION, load_policy, parse_policy
from service.policy.rules import FACTORS, MATCH_KEYS, MODES, Match, Policy, Rule

__all__ = [
    "FACTORS",
    "FORMAT_VERSION",
    "MATCH_KEYS",
    "MODES",
    "Department",
    "Evaluation",
    "Fact",
    "Match",
    "MissingFactError",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleResult",
    "UserFacts",
    "evaluate",
    "facts_needed",
    "load_policy",
    "parse_policy",
]
