"""The marshmallow fields the policy file and test suites are read with, worded for the operator who edits them.

Every field says what was wrong and what was expected (``expected text, got a number (5); put it in quotes``).
The conditions of a match block (``service.policy.conditions``) and the fixture users of a test suite build
their fields from these; ``schemas`` assembles the policy file's schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.policy.documents import kind
from service.policy.rules import VALUE_OPERATORS, Scalar, ValueTest

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_OPERATORS = ", ".join(VALUE_OPERATORS)
_DURATION = re.compile(r"\s*([0-9]{1,4})\s*([dw])\s*\Z")
MAX_GRACE_DAYS = 3660


def parse_duration(text: str) -> timedelta:
    """``14d`` or ``2w`` (days or weeks, up to about ten years); ``ValueError`` otherwise."""
    found = _DURATION.match(text)
    if found is None:
        raise ValueError(f"expected a duration like 14d or 2w, got {text!r}")
    days = int(found.group(1)) * (7 if found.group(2) == "w" else 1)
    if not 0 < days <= MAX_GRACE_DAYS:
        raise ValueError(f"a duration must be 1 to {MAX_GRACE_DAYS} days, got {text!r}")
    return timedelta(days=days)


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


class Duration(fields.Field[timedelta]):
    """A duration in days or weeks: ``14d``, ``2w``."""

    default_error_messages = {"required": "missing", "null": "must be a duration like 14d"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> timedelta:
        if not isinstance(value, str):
            raise ValidationError(f"expected a duration like 14d or 2w, got {kind(value)}")
        try:
            return parse_duration(value)
        except ValueError as error:
            raise ValidationError(str(error)) from error


_DAYS = re.compile(r"([1-9][0-9]{0,2})d")
MAX_DAYS = 366


class Days(fields.Field[int]):
    """A whole number of days written with its unit, ``7d`` (1 to 366)."""

    default_error_messages = {"required": "missing", "null": "must be a number of days like 7d"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> int:
        found = _DAYS.fullmatch(value.strip()) if isinstance(value, str) else None
        if found is None or int(found.group(1)) > MAX_DAYS:
            raise ValidationError(f"expected a number of days from 1d to {MAX_DAYS}d, like 7d, got {kind(value)}")
        return int(found.group(1))


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


def plain_list(item: fields.Field[Any], what: str) -> fields.List[Any]:
    """A list of ``item``s, possibly empty (a fixture user may have none)."""
    return fields.List(
        item, error_messages={"null": f"must be a list of {what}s", "invalid": f"expected a list of {what}s"}
    )
