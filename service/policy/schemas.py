"""The marshmallow schemas of the policy file, and the fields test suites reuse.

Every schema refuses unknown keys and words its messages for the operator who edits the file: what was
wrong and what was expected (``expected one of equals, in, exists``). ``loading`` turns the nested messages
into lines naming the rule and the field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.policy.documents import kind
from service.policy.facts import Role
from service.policy.rules import (
    CONDITION_KEYS,
    DEFAULT_NAMESPACE,
    FACTORS,
    MATCH_KEYS,
    MODES,
    USER_SOURCE_TYPES,
    USER_STATUSES,
    VALUE_OPERATORS,
    Exemption,
    Match,
    Rule,
    Scalar,
    ValueTest,
)

#: The only file format version this service reads; ``version`` may be omitted.
FORMAT_VERSION = 1

RULE_KEYS = ("name", "description", "mode", "match", "require_mfa", "fallback", "exceptions")
EXCEPTION_KEYS = ("users", "groups", "reason", "expires")

#: How problems are ordered within one rule: the file format's order, nested keys included.
POLICY_KEY_ORDER: tuple[str, ...] = (
    "version",
    "policies",
    *RULE_KEYS,
    *MATCH_KEYS,
    *VALUE_OPERATORS,
    *EXCEPTION_KEYS,
    "code",
    "namespace",
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")
_CONDITIONS = ", ".join(CONDITION_KEYS)
_OPERATORS = ", ".join(VALUE_OPERATORS)


# --- fields ---------------------------------------------------------------------------------------------


class Text(fields.String):
    """A string; anything else YAML produced (numbers, dates, booleans) is refused with a hint to quote it.

    Subclasses check and normalise the text in ``_convert``.
    """

    default_error_messages = {"required": "missing", "null": "must not be empty"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if not isinstance(value, str):
            hint = "" if isinstance(value, dict | list) else "; put it in quotes"
            raise ValidationError(f"expected text, got {kind(value)}{hint}")
        return self._convert(value)

    def _convert(self, text: str) -> str:
        return text


class Name(Text):
    """A rule or case name: letters, digits and dashes."""

    def _convert(self, text: str) -> str:
        if not _NAME.fullmatch(text):
            raise ValidationError(
                f"{text!r} must be 1 to 64 letters, digits or dashes, starting with a letter or digit"
            )
        return text


class Choice(Text):
    """One of fixed ``choices``, matched case-insensitively and returned in its canonical spelling."""

    def __init__(self, choices: tuple[str, ...], *, aliases: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        self.aliases = dict(aliases or {})

    def _convert(self, text: str) -> str:
        folded = text.strip().casefold()
        for alias, choice in self.aliases.items():
            if folded == alias.casefold():
                return choice
        for choice in self.choices:
            if folded == choice.casefold():
                return choice
        raise ValidationError(f"{text!r} is not one of {', '.join(self.choices)}")


class Word(Text):
    """Non-empty text, trimmed; ``what`` names it in the message."""

    def __init__(self, what: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.what = what

    def _convert(self, text: str) -> str:
        if not text.strip():
            raise ValidationError(f"must be {self.what}, not empty")
        return text.strip()


class EmailDomain(Text):
    def _convert(self, text: str) -> str:
        domain = text.strip().lower().removeprefix("@")
        if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
            raise ValidationError(f"{text!r} does not look like an email domain (like corp.example.com)")
        return domain


class StrictBoolean(fields.Field[bool]):
    """``true`` or ``false`` as YAML writes them; text such as ``"yes"`` is refused."""

    default_error_messages = {"required": "missing", "null": "must be true or false"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"expected true or false, got {kind(value)}")
        return value


class Day(fields.Field[date]):
    """A date: a YAML date (``2027-01-31``) or ISO text (``"2027-01-31"``)."""

    default_error_messages = {"required": "missing", "null": "must be a date like 2027-01-31"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValidationError(f"expected a date like 2027-01-31, got {kind(value)}")


class ScalarValue(fields.Field[Scalar]):
    """A value to compare with: text, a number or a boolean."""

    default_error_messages = {"required": "missing", "null": "must not be empty; to test absence use exists: false"}  # noqa: RUF012

    def __init__(self, *, text_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_only = text_only

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Scalar:
        if isinstance(value, str):
            return value
        if self.text_only:
            hint = "" if isinstance(value, dict | list) else "; put it in quotes"
            raise ValidationError(f"expected text, got {kind(value)}{hint}")
        if isinstance(value, bool | int | float):
            return value
        hint = "" if isinstance(value, dict | list) else "; put it in quotes"
        raise ValidationError(f"expected text, a number or true/false, got {kind(value)}{hint}")


def list_of(item: fields.Field[Any], what: str, *, required: bool = False, **kwargs: Any) -> fields.List[Any]:
    """A non-empty list of ``item``s; ``what`` names the items in messages."""
    return fields.List(
        item,
        required=required,
        **kwargs,
        validate=validate.Length(min=1, error=f"must list at least one {what}"),
        error_messages={
            "required": f"missing; list at least one {what}",
            "null": f"must list at least one {what}, not be empty",
            "invalid": f"expected a list of {what}s",
        },
    )


def unique(values: list[Any]) -> tuple[Any, ...]:
    """``values`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(values))


def unique_folded(values: list[str]) -> tuple[str, ...]:
    """``values`` without repeats that differ only in case, first spelling kept."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.casefold(), value)
    return tuple(seen.values())


class RoleSelector(fields.Field[Role]):
    """A role: its code (default namespace) or ``{code, namespace}``."""

    default_error_messages = {"required": "missing", "null": "must be a role code or {code, namespace}"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Role:
        if isinstance(value, Mapping):
            role: Role = _RoleSchema().load(value)
            return role
        if isinstance(value, str) and value.strip():
            return Role(code=value.strip())
        raise ValidationError(f"expected a role code or {{code, namespace}}, got {kind(value)}")


class _RoleSchema(Schema):
    error_messages = {"unknown": "unknown key; expected code, namespace"}  # noqa: RUF012

    code = Word("a role code", required=True)
    namespace = Word("a namespace (permission group) code", load_default=DEFAULT_NAMESPACE)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Role:
        return Role(code=data["code"], namespace=data["namespace"])


class _ValueTestSchema(Schema):
    error_messages = {"unknown": f"unknown key; expected one of {_OPERATORS}"}  # noqa: RUF012

    equals = ScalarValue()
    in_ = list_of(ScalarValue(), "value", data_key="in")
    exists = StrictBoolean()

    @validates_schema
    def _one_operator(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [key for key in ("equals", "in_", "exists") if key in data]
        if not given:
            raise ValidationError(f"expected one of {_OPERATORS}")
        if len(given) > 1:
            raise ValidationError(f"give only one of {_OPERATORS}")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> ValueTest:
        if "equals" in data:
            return ValueTest.equal_to(data["equals"])
        if "in_" in data:
            return ValueTest.one_of(*unique(data["in_"]))
        return ValueTest.exists(data["exists"])


class _TextValueTestSchema(_ValueTestSchema):
    """For values that are always text (``externalId``): a number would lose its leading zeros."""

    equals = ScalarValue(text_only=True)
    in_ = list_of(ScalarValue(text_only=True), "value", data_key="in")


class ValueTestField(fields.Field[ValueTest]):
    """``{equals: x}``, ``{in: [x, y]}`` or ``{exists: true}``; ``text_only`` refuses numbers and booleans."""

    default_error_messages = {"required": "missing", "null": f"must not be empty; give one of {_OPERATORS}"}  # noqa: RUF012

    def __init__(self, *, text_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text_only = text_only

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> ValueTest:
        return value_test(value, text_only=self.text_only)


def value_test(value: Any, *, text_only: bool = False) -> ValueTest:
    """Load one value test, raising ``ValidationError`` with messages by key."""
    if not isinstance(value, Mapping):
        hint = "" if isinstance(value, list) or value is None else f" (like {{equals: {value}}})"
        raise ValidationError(f"expected a mapping with one of {_OPERATORS}{hint}")
    schema = _TextValueTestSchema() if text_only else _ValueTestSchema()
    result: ValueTest = schema.load(value)
    return result


class CustomData(fields.Field[tuple[tuple[str, ValueTest], ...]]):
    """``{key: {equals|in|exists: ...}, ...}``: a test per custom data key, all of which must hold."""

    default_error_messages = {"required": "missing", "null": "must not be empty; give at least one key"}  # noqa: RUF012

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> tuple[tuple[str, ValueTest], ...]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"expected a mapping of custom data keys to tests, got {kind(value)}")
        if not value:
            raise ValidationError("give at least one custom data key")
        tests: list[tuple[str, ValueTest]] = []
        errors: dict[str, Any] = {}
        for key, raw in value.items():
            if not isinstance(key, str) or not key.strip():
                errors[str(key)] = ["expected a custom data key (text)"]
                continue
            try:
                tests.append((key.strip(), value_test(raw)))
            except ValidationError as error:
                errors[key] = error.messages
        if errors:
            raise ValidationError(errors)
        return tuple(tests)


# --- schemas --------------------------------------------------------------------------------------------


class MatchSchema(Schema):
    """A match block; ``all``/``any``/``not`` nest further blocks."""

    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": f"unknown key; expected {', '.join(MATCH_KEYS)}",
        "type": f"expected a mapping with any of {_CONDITIONS}",
    }

    departments = list_of(Word("a department code, name or id"), "department")
    include_subdepartments = StrictBoolean()
    groups = list_of(Word("a group code"), "group code")
    roles = list_of(RoleSelector(), "role")
    email_domains = list_of(EmailDomain(), "email domain")
    status = list_of(Choice(USER_STATUSES), "status")
    external_id = ValueTestField(text_only=True)
    user_source_type = list_of(Choice(USER_SOURCE_TYPES, aliases={"sync": "syncTask"}), "user source type")
    register_source = list_of(Word("a register source like import:manual"), "register source")
    custom_data = CustomData()
    all_ = fields.List(
        fields.Nested(lambda: _NestedMatchSchema(), error_messages={"null": "expected a match block, got nothing"}),
        data_key="all",
        validate=validate.Length(min=1, error="must list at least one match block"),
        error_messages={"null": "must list at least one match block", "invalid": "expected a list of match blocks"},
    )
    any_ = fields.List(
        fields.Nested(lambda: _NestedMatchSchema(), error_messages={"null": "expected a match block, got nothing"}),
        data_key="any",
        validate=validate.Length(min=1, error="must list at least one match block"),
        error_messages={"null": "must list at least one match block", "invalid": "expected a list of match blocks"},
    )
    not_ = fields.Nested(
        lambda: _NestedMatchSchema(),
        data_key="not",
        error_messages={"null": f"must not be empty; give a match block with any of {_CONDITIONS}"},
    )

    #: What an empty block is told: a rule's own match, or a block nested in all/any/not.
    empty_message = f"give at least one of {_CONDITIONS}; a rule matching every user is not supported"

    @validates_schema
    def _has_a_condition(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not [key for key in data if key != "include_subdepartments"]:
            # A rule for everyone is too big a step to take by leaving a key out; there is no such rule.
            raise ValidationError(self.empty_message)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _subdepartments_need_departments(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and "include_subdepartments" in original and "departments" not in original:
            raise ValidationError("applies only together with departments", field_name="include_subdepartments")

    @post_load
    def _make_match(self, data: dict[str, Any], **kwargs: Any) -> Match:
        return Match(
            departments=unique(data.get("departments", [])),
            include_subdepartments=data.get("include_subdepartments", True),
            groups=unique_folded(data.get("groups", [])),
            roles=unique(data.get("roles", [])),
            email_domains=unique(data.get("email_domains", [])),
            status=unique(data.get("status", [])),
            external_id=data.get("external_id"),
            user_source_type=unique(data.get("user_source_type", [])),
            register_source=unique_folded(data.get("register_source", [])),
            custom_data=data.get("custom_data", ()),
            all_of=tuple(data.get("all_", ())),
            any_of=tuple(data.get("any_", ())),
            negated=data.get("not_"),
        )


class _NestedMatchSchema(MatchSchema):
    empty_message = f"an empty match block is not allowed; give at least one of {_CONDITIONS}"


class ExceptionSchema(Schema):
    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(EXCEPTION_KEYS)}",
        "type": "expected a mapping with users or groups, and a reason",
    }

    users = list_of(Word("a user id"), "user id")
    groups = list_of(Word("a group code"), "group code")
    reason = Word("a reason", required=True, error_messages={"required": "missing; say why they are exempt"})
    expires = Day()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _names_someone(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and "users" not in original and "groups" not in original:
            raise ValidationError("give users or groups (or both) to exempt")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Exemption:
        return Exemption(
            reason=data["reason"],
            users=unique(data.get("users", [])),
            groups=unique_folded(data.get("groups", [])),
            expires=data.get("expires"),
        )


class RuleSchema(Schema):
    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": f"unknown key; expected {', '.join(RULE_KEYS)}",
        "type": "expected a mapping with name, match and require_mfa",
    }

    name = Name(required=True, error_messages={"required": "missing", "null": "must not be empty"})
    description = Text(load_default="", allow_none=True)
    mode = Choice(MODES, load_default="enforce", error_messages={"null": "must be enforce or audit"})
    match = fields.Nested(
        MatchSchema,
        required=True,
        error_messages={
            "required": f"missing; give at least one of {_CONDITIONS}",
            "null": f"must not be empty; give at least one of {_CONDITIONS}",
        },
    )
    require_mfa = list_of(Choice(FACTORS), "factor", required=True)
    fallback = list_of(Choice(FACTORS), "fallback factor")
    exceptions = fields.List(
        fields.Nested(ExceptionSchema, error_messages={"null": "expected an exception, got nothing"}),
        error_messages={"null": "must be a list of exceptions", "invalid": "expected a list of exceptions"},
    )

    @validates_schema(skip_on_field_errors=False)
    def _fallback_is_not_required(self, data: dict[str, Any], **kwargs: Any) -> None:
        overlap = [factor for factor in data.get("fallback", []) if factor in data.get("require_mfa", [])]
        if overlap:
            raise ValidationError(
                f"{', '.join(unique(overlap))} already in require_mfa; a fallback stands in for a required factor",
                field_name="fallback",
            )

    @post_load
    def _make_rule(self, data: dict[str, Any], **kwargs: Any) -> Rule:
        factors = set(data["require_mfa"])
        return Rule(
            name=data["name"],
            description=(data.get("description") or "").strip(),
            mode=data["mode"],
            match=data["match"],
            require_mfa=tuple(factor for factor in FACTORS if factor in factors),
            fallback=unique(data.get("fallback", [])),
            exceptions=tuple(data.get("exceptions", ())),
        )


class PolicyFileSchema(Schema):
    error_messages = {"unknown": "unknown key; expected policies (and optionally version)"}  # noqa: RUF012

    version = fields.Integer(
        load_default=FORMAT_VERSION,
        strict=True,
        validate=validate.Equal(FORMAT_VERSION, error=f"only version {FORMAT_VERSION} is supported, not {{input}}"),
        error_messages={"invalid": f"expected the number {FORMAT_VERSION}"},
    )
    policies = fields.List(
        fields.Nested(RuleSchema, error_messages={"null": "expected a rule, got nothing"}),
        required=True,
        error_messages={
            "required": "missing; the file needs a 'policies' list (write 'policies: []' to enforce nothing)",
            "null": "must be a list of rules (write 'policies: []' to enforce nothing)",
            "invalid": "expected a list of rules",
        },
    )
