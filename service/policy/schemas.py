"""The marshmallow schemas of the policy file.

Every schema refuses unknown keys and words its messages for the operator who edits the file: what was
wrong and what was expected (``expected one of equals, in, exists``). The match block's fields come from its
conditions (``conditions``); ``loading`` turns the nested messages into lines naming the rule and the field
path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.policy.conditions import CONDITION_KEYS, CONDITIONS, MATCH_KEYS
from service.policy.fields import (
    Choice,
    Day,
    Days,
    Duration,
    Name,
    StrictBoolean,
    Text,
    Word,
    list_of,
    unique,
    unique_folded,
)
from service.policy.rollout import Rollout, Wave
from service.policy.rules import FACTORS, MODES, VALUE_OPERATORS, Exemption, Match, Protection, Rule, UserNotices

#: The only file format version this service reads; ``version`` may be omitted.
FORMAT_VERSION = 1

RULE_KEYS = (
    "name",
    "description",
    "mode",
    "match",
    "require_mfa",
    "fallback",
    "exceptions",
    "apps",
    "enforce_from",
    "grace",
    "waves",
    "notify_users",
)
WAVE_KEYS = ("name", "match", "from")
NOTIFY_KEYS = ("before", "on_enforce")
EXCEPTION_KEYS = ("users", "groups", "reason", "expires")
PROTECTED_KEYS = ("users", "groups", "reason")

#: How problems are ordered within one rule: the file format's order, nested keys included.
POLICY_KEY_ORDER: tuple[str, ...] = (
    "version",
    "protected",
    "policies",
    *RULE_KEYS,
    *MATCH_KEYS,
    *VALUE_OPERATORS,
    *EXCEPTION_KEYS,
    *WAVE_KEYS,
    *NOTIFY_KEYS,
    "code",
    "namespace",
)

_CONDITIONS = ", ".join(CONDITION_KEYS)


class MatchSchema(Schema):
    """A match block: the fields of every condition; ``all``/``any``/``not`` nest further blocks."""

    class Meta:
        include = {key: field for condition in CONDITIONS for key, field in condition.schema_fields().items()}  # noqa: RUF012

    error_messages = {  # noqa: RUF012 - marshmallow reads this class attribute
        "unknown": f"unknown key; expected {', '.join(MATCH_KEYS)}",
        "type": f"expected a mapping with any of {_CONDITIONS}",
    }

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
        return Match(**{name: value for condition in CONDITIONS for name, value in condition.values(data).items()})


class NestedMatchSchema(MatchSchema):
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


class WaveSchema(Schema):
    """One wave of a rule's rollout: its users (``match``; none: everyone left) start ``from`` a date."""

    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(WAVE_KEYS)}",
        "type": "expected a mapping with name, from and optionally match",
    }

    name = Name(required=True, error_messages={"required": "missing", "null": "must not be empty"})
    match = fields.Nested(
        NestedMatchSchema, error_messages={"null": f"must not be empty; give at least one of {_CONDITIONS}"}
    )
    start = Day(required=True, data_key="from")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Wave:
        return Wave(name=data["name"], start=data["start"], match=data.get("match"))


class UserNoticesSchema(Schema):
    """A rule's ``notify_users``: ``before`` (days ahead of the user's deadline, e.g. ``[7d, 1d]``) and
    ``on_enforce`` (a notice once the service has enforced the rule for the user)."""

    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(NOTIFY_KEYS)}",
        "type": "expected a mapping with before (e.g. [7d, 1d]) and/or on_enforce: true",
    }

    before = list_of(Days(), "number of days")
    on_enforce = StrictBoolean()

    @validates_schema(skip_on_field_errors=True, pass_original=True)
    def _says_when(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if not data.get("before") and not data.get("on_enforce"):
            raise ValidationError("give before (e.g. [7d, 1d]) or on_enforce: true; or leave notify_users out")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> UserNotices:
        return UserNotices(
            before=tuple(sorted(set(data.get("before", [])), reverse=True)), on_enforce=data.get("on_enforce", False)
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
    apps = list_of(Text(validate=validate.Length(min=1, max=64)), "application id")
    exceptions = fields.List(
        fields.Nested(ExceptionSchema, error_messages={"null": "expected an exception, got nothing"}),
        error_messages={"null": "must be a list of exceptions", "invalid": "expected a list of exceptions"},
    )
    enforce_from = Day()
    grace = Duration()
    waves = fields.List(
        fields.Nested(WaveSchema, error_messages={"null": "expected a wave, got nothing"}),
        validate=validate.Length(min=1, error="must list at least one wave"),
        error_messages={"null": "must be a list of waves", "invalid": "expected a list of waves"},
    )

    @validates_schema(skip_on_field_errors=True)
    def _waves_fit(self, data: dict[str, Any], **kwargs: Any) -> None:
        waves: list[Wave] = data.get("waves", [])
        enforce_from = data.get("enforce_from")
        problems: dict[str | int, Any] = {}
        for index, wave in enumerate(waves):
            if enforce_from is not None and wave.start > enforce_from:
                problems[index] = {"from": [f"{wave.start} is after the rule's enforce_from {enforce_from}"]}
        names = [wave.name.casefold() for wave in waves]
        for index, name in enumerate(names):
            if name in names[:index]:
                problems.setdefault(index, {})["name"] = ["already used by an earlier wave"]
        if problems:
            raise ValidationError(problems, field_name="waves")
        if waves and waves[-1].match is not None and enforce_from is None:
            raise ValidationError(
                "users in no wave would never start: end with a wave without match, or set enforce_from",
                field_name="waves",
            )

    notify_users = fields.Nested(
        UserNoticesSchema, error_messages={"null": "expected a mapping with before and/or on_enforce"}
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
            apps=unique(data.get("apps", [])),
            rollout=_rollout(data),
            notify_users=data.get("notify_users"),
        )


def _rollout(data: dict[str, Any]) -> Rollout | None:
    if not {"enforce_from", "grace", "waves"} & data.keys():
        return None
    return Rollout(enforce_from=data.get("enforce_from"), grace=data.get("grace"), waves=tuple(data.get("waves", ())))


class ProtectedSchema(Schema):
    """The top-level ``protected`` block: the break-glass accounts nothing writes."""

    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(PROTECTED_KEYS)}",
        "type": "expected a mapping with users or groups, and a reason",
    }

    users = list_of(Word("a user id, username or email"), "user id, username or email")
    groups = list_of(Word("a group code"), "group code")
    reason = Word(
        "a reason", required=True, error_messages={"required": "missing; say why these accounts are never written"}
    )

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _names_someone(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        if isinstance(original, Mapping) and "users" not in original and "groups" not in original:
            raise ValidationError("give users or groups (or both) to protect")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Protection:
        return Protection(
            reason=data["reason"], users=unique(data.get("users", [])), groups=unique_folded(data.get("groups", []))
        )


class PolicyFileSchema(Schema):
    error_messages = {"unknown": "unknown key; expected policies (and optionally version, protected)"}  # noqa: RUF012

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
    protected = fields.Nested(
        ProtectedSchema, error_messages={"null": "expected a mapping with users or groups, and a reason"}
    )

    @validates_schema(skip_on_field_errors=True)
    def _protected_is_no_exception(self, data: dict[str, Any], **kwargs: Any) -> None:
        protection = data.get("protected")
        if protection is None:
            return
        contradictions = [
            f"{kind} {entry} is also an exception of rule {rule.name}"
            for rule in data.get("policies", [])
            for exemption in rule.exceptions
            for kind, entries, listed in (
                ("user", protection.users, {user.casefold() for user in exemption.users}),
                ("group", protection.groups, {group.casefold() for group in exemption.groups}),
            )
            for entry in entries
            if entry.casefold() in listed
        ]
        if contradictions:
            raise ValidationError(
                f"{'; '.join(contradictions)}: a protected account is never written, so the exception contradicts "
                "it; remove one",
                field_name="protected",
            )
