"""Reads the policy file (YAML, format v1) into a validated ``Policy``.

Called once at startup (and by ``policy check``). Every problem in the file is collected and raised together
as one ``PolicyError`` whose lines name the rule and the field, so an operator fixes the file in one pass.
Unknown keys are errors at every level: a misspelt key must not silently widen or narrow a rule.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.policy.errors import PolicyError
from service.policy.rules import FACTORS, MATCH_KEYS, MODES, Match, Policy, Rule

#: The only file format version this service reads; ``version`` may be omitted.
FORMAT_VERSION = 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")
_MERGE_TAG = "tag:yaml.org,2002:merge"


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at ``path``; ``PolicyError`` lists every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(source, [f"the file is not UTF-8 text ({error.reason})"]) from error
    except OSError as error:
        raise PolicyError(source, [f"cannot read the file: {error.strerror or error}"]) from error
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Validate policy-file ``text``; ``source`` names it in errors and on the result."""
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        raise PolicyError(source, [_describe_yaml_error(error)]) from error
    except yaml.YAMLError as error:
        raise PolicyError(source, [f"not valid YAML: {error}"]) from error
    if document is None:
        raise PolicyError(source, ["the file is empty; write 'policies: []' to enforce nothing"])
    if not isinstance(document, Mapping):
        raise PolicyError(
            source, [f"expected a mapping with a 'policies' list at the top level, got {_kind(document)}"]
        )

    problems: list[tuple[int, str]] = []
    rules: list[Rule] = []
    try:
        loaded = _PolicyFileSchema().load(document)
        rules = loaded["policies"]
    except ValidationError as error:
        problems.extend(_describe_validation_errors(error.messages, document))
    problems.extend(_find_duplicate_names(document))
    if problems:
        problems.sort(key=lambda item: item[0])  # stable: keeps field order within a rule
        raise PolicyError(source, [line for _, line in problems])
    return Policy(rules=tuple(rules), source=source)


# --- YAML ---------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, except that a key written twice in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = error.problem or error.context or "invalid"
    context = f" ({error.context})" if error.problem and error.context else ""
    return f"not valid YAML: {where}{what}{context}"


# --- fields ---------------------------------------------------------------------------------------------


def _kind(value: object) -> str:
    """How a wrong value is named in messages: its YAML type, and the value when short."""
    kinds = {
        str: "text",
        dict: "a mapping",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return kind if len(text) > 40 or isinstance(value, dict | list) else f"{kind} ({text})"


class _Text(fields.String):
    """A string; anything else YAML produced (numbers, dates, booleans) is refused with a hint to quote it.

    Subclasses check and normalise the text in ``_convert``.
    """

    default_error_messages = {"required": "missing", "null": "must not be empty"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if not isinstance(value, str):
            hint = "" if isinstance(value, dict | list) else "; put it in quotes"
            raise ValidationError(f"expected text, got {_kind(value)}{hint}")
        return self._convert(value)

    def _convert(self, text: str) -> str:
        return text


class _Name(_Text):
    def _convert(self, text: str) -> str:
        if not _NAME.fullmatch(text):
            raise ValidationError(
                f"{text!r} must be 1 to 64 letters, digits or dashes, starting with a letter or digit"
            )
        return text


class _Choice(_Text):
    """One of fixed ``choices``, matched case-insensitively and returned in its canonical spelling."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices

    def _convert(self, text: str) -> str:
        for choice in self.choices:
            if text.strip().casefold() == choice.casefold():
                return choice
        raise ValidationError(f"{text!r} is not one of {', '.join(self.choices)}")


class _Department(_Text):
    def _convert(self, text: str) -> str:
        if not text.strip():
            raise ValidationError("must be a department code, name or id, not empty")
        return text.strip()


class _EmailDomain(_Text):
    def _convert(self, text: str) -> str:
        domain = text.strip().lower().removeprefix("@")
        if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
            raise ValidationError(f"{text!r} does not look like an email domain (like corp.example.com)")
        return domain


def _list_of(item: fields.Field[Any], what: str, *, required: bool = False) -> fields.List[Any]:
    """A non-empty list of ``item``s; ``what`` names the items in messages."""
    return fields.List(
        item,
        required=required,
        validate=validate.Length(min=1, error=f"must list at least one {what}"),
        error_messages={
            "required": f"missing; list at least one {what}",
            "null": f"must list at least one {what}, not be empty",
            "invalid": f"expected a list of {what}s",
        },
    )


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# --- schemas --------------------------------------------------------------------------------------------


class _MatchSchema(Schema):
    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": f"unknown key; expected {', '.join(MATCH_KEYS)}",
        "type": f"expected a mapping with any of {', '.join(MATCH_KEYS)}",
    }

    departments = _list_of(_Department(), "department")
    email_domains = _list_of(_EmailDomain(), "email domain")

    @validates_schema
    def _has_a_condition(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not any(data.get(key) for key in MATCH_KEYS):
            # A rule for everyone is too big a step to take by leaving a key out; v1 has no such rule.
            raise ValidationError(
                f"give at least one of {', '.join(MATCH_KEYS)}; a rule matching every user is not supported"
            )

    @post_load
    def _make_match(self, data: dict[str, Any], **kwargs: Any) -> Match:
        return Match(
            departments=_unique(data.get("departments", [])),
            email_domains=_unique(data.get("email_domains", [])),
        )


class _RuleSchema(Schema):
    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": "unknown key; expected name, description, mode, match, require_mfa",
        "type": "expected a mapping with name, match and require_mfa",
    }

    name = _Name(required=True, error_messages={"required": "missing", "null": "must not be empty"})
    description = _Text(load_default="", allow_none=True)
    mode = _Choice(MODES, load_default="enforce", error_messages={"null": "must be enforce or audit"})
    match = fields.Nested(
        _MatchSchema,
        required=True,
        error_messages={
            "required": f"missing; give at least one of {', '.join(MATCH_KEYS)}",
            "null": f"must not be empty; give at least one of {', '.join(MATCH_KEYS)}",
        },
    )
    require_mfa = _list_of(_Choice(FACTORS), "factor", required=True)

    @post_load
    def _make_rule(self, data: dict[str, Any], **kwargs: Any) -> Rule:
        factors = set(data["require_mfa"])
        return Rule(
            name=data["name"],
            description=(data.get("description") or "").strip(),
            mode=data["mode"],
            match=data["match"],
            require_mfa=tuple(factor for factor in FACTORS if factor in factors),
        )


class _PolicyFileSchema(Schema):
    error_messages = {"unknown": "unknown key; expected policies (and optionally version)"}  # noqa: RUF012

    version = fields.Integer(
        load_default=FORMAT_VERSION,
        strict=True,
        validate=validate.Equal(FORMAT_VERSION, error=f"only version {FORMAT_VERSION} is supported, not {{input}}"),
        error_messages={"invalid": f"expected the number {FORMAT_VERSION}"},
    )
    policies = fields.List(
        fields.Nested(_RuleSchema, error_messages={"null": "expected a rule, got nothing"}),
        required=True,
        error_messages={
            "required": "missing; the file needs a 'policies' list (write 'policies: []' to enforce nothing)",
            "null": "must be a list of rules (write 'policies: []' to enforce nothing)",
            "invalid": "expected a list of rules",
        },
    )


# --- describing problems --------------------------------------------------------------------------------

_Path = tuple[str | int, ...]
_KEY_ORDER = (
    "_schema",
    "version",
    "policies",
    "name",
    "description",
    "mode",
    "match",
    *MATCH_KEYS,
    "require_mfa",
)


def _describe_validation_errors(messages: object, document: Mapping[Any, Any]) -> Iterator[tuple[int, str]]:
    """Turn marshmallow's nested messages into ``(rule index, line)`` pairs; -1 for file-level lines."""
    raw_rules = document.get("policies")
    for path, message in _flatten(messages, ()):
        if len(path) >= 2 and path[0] == "policies" and isinstance(path[1], int):
            index = path[1]
            where = _rule_label(raw_rules, index)
            rest = path[2:]
        else:
            index, where, rest = -1, "", path
        field = _format_path(rest)
        yield index, ": ".join(part for part in (where, field, message) if part)


def _flatten(messages: object, path: _Path) -> Iterator[tuple[_Path, str]]:
    if isinstance(messages, Mapping):
        for key in sorted(messages, key=_message_order):
            inner = path if key == "_schema" else (*path, key)
            yield from _flatten(messages[key], inner)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _flatten(message, path)
    else:
        yield path, str(messages)


def _message_order(key: object) -> tuple[int, int, str]:
    """List indexes in order, known keys in file-format order, then unknown keys by name.

    Marshmallow reports unknown keys in set order, which varies between runs; messages must not.
    """
    if isinstance(key, int):
        return (0, key, "")
    if key in _KEY_ORDER:
        return (1, _KEY_ORDER.index(str(key)), "")
    return (2, 0, str(key))


def _format_path(path: _Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _rule_label(raw_rules: object, index: int) -> str:
    """``policies[2] (finance-sms)``, or ``policies[2]`` when the rule has no usable name."""
    label = f"policies[{index}]"
    if isinstance(raw_rules, list) and index < len(raw_rules):
        raw = raw_rules[index]
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str) and raw["name"].strip():
            return f"{label} ({raw['name']})"
    return label


def _find_duplicate_names(document: Mapping[Any, Any]) -> Iterator[tuple[int, str]]:
    """Names are compared case-insensitively so reports never show two rules that read alike."""
    raw_rules = document.get("policies")
    if not isinstance(raw_rules, list):
        return
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        if not (isinstance(raw, Mapping) and isinstance(raw.get("name"), str)):
            continue
        key = raw["name"].casefold()
        if key in first_seen:
            yield index, f"{_rule_label(raw_rules, index)}: name: already used by policies[{first_seen[key]}]"
        else:
            first_seen[key] = index
