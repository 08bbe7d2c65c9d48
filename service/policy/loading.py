"""Reads the policy file (YAML, format v1) into a validated ``Policy``.

Called once at startup (and by ``policy check``/``policy test``). Every problem in the file is collected and
raised together as one ``PolicyError`` whose lines name the rule and the field path, so an operator fixes
the file in one pass. Unknown keys are errors at every level: a misspelt key must not silently widen or
narrow a rule. The schemas are in ``schemas``.
"""

from __future__ import annotations

from pathlib import Path

from service.policy.documents import parse_document, read_document
from service.policy.errors import PolicyError
from service.policy.rules import Policy
from service.policy.schemas import FORMAT_VERSION, POLICY_KEY_ORDER, PolicyFileSchema

__all__ = ["FORMAT_VERSION", "load_policy", "parse_policy", "require_email"]

_EMPTY = "the file is empty; write 'policies: []' to enforce nothing"


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path``; ``PolicyError`` lists every problem."""
    return parse_policy(read_document(path, PolicyError), str(path))


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate policy-file ``text``; ``source`` names it in errors and on the result."""
    loaded = parse_document(
        text,
        source,
        PolicyFileSchema(),
        list_key="policies",
        key_order=POLICY_KEY_ORDER,
        error=PolicyError,
        empty=_EMPTY,
    )
    return Policy(rules=tuple(loaded["policies"]), source=source, protected=loaded.get("protected"))


def require_email(policy: Policy, *, can_email: bool) -> Policy:
    """``policy``, unless a rule has ``notify_users`` while e-mail is not configured (``ENFORCER_SMTP_URL`` and
    ``ENFORCER_NOTIFY_FROM``): then ``PolicyError`` names each such rule and the field, one line each."""
    if can_email:
        return policy
    problems = [
        f"policies[{index}] ({rule.name}): notify_users: e-mail is not configured; set ENFORCER_SMTP_URL and "
        "ENFORCER_NOTIFY_FROM, or remove notify_users"
        for index, rule in enumerate(policy.rules)
        if rule in policy.notifying_rules
    ]
    if problems:
        raise PolicyError(policy.source, problems)
    return policy
