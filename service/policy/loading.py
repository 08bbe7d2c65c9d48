"""Reads the policy file (YAML, format v1) into a validated ``Policy``.

Called once at startup (and by ``policy check``/``policy test``). Every problem in the file is collected and
raised together as one ``PolicyError`` whose lines name the rule and the field path, so an operator fixes
the file in one pass. Unknown keys are errors at every level: a misspelt key must not silently widen or
narrow a rule. The schemas are in ``schemas``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from marshmallow import ValidationError

from service.policy.documents import (
    DocumentError,
    describe_problems,
    find_duplicate_names,
    kind,
    parse_yaml,
    read_text,
)
from service.policy.errors import PolicyError
from service.policy.rules import Policy, Rule
from service.policy.schemas import FORMAT_VERSION, POLICY_KEY_ORDER, PolicyFileSchema

__all__ = ["FORMAT_VERSION", "load_policy", "parse_policy"]


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path``; ``PolicyError`` lists every problem."""
    try:
        text = read_text(path)
    except DocumentError as error:
        raise PolicyError(str(path), [error.problem]) from error
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate policy-file ``text``; ``source`` names it in errors and on the result."""
    try:
        document = parse_yaml(text)
    except DocumentError as error:
        raise PolicyError(source, [error.problem]) from error
    if document is None:
        raise PolicyError(source, ["the file is empty; write 'policies: []' to enforce nothing"])
    if not isinstance(document, Mapping):
        raise PolicyError(source, [f"expected a mapping with a 'policies' list at the top level, got {kind(document)}"])

    problems: list[tuple[int, str]] = []
    rules: list[Rule] = []
    try:
        loaded = PolicyFileSchema().load(document)
        rules = loaded["policies"]
    except ValidationError as error:
        problems.extend(describe_problems(error.messages, document, "policies", POLICY_KEY_ORDER))
    problems.extend(find_duplicate_names(document, "policies"))
    if problems:
        problems.sort(key=lambda item: item[0])  # stable: keeps field order within a rule
        raise PolicyError(source, [line for _, line in problems])
    return Policy(rules=tuple(rules), source=source)
