"""Policy test suites: fixture users and the outcome each rule should have for them (``policy test``).

    policy: policies.yaml          # optional, relative to this file
    today: 2026-12-01              # optional: the date exceptions expire against (default: today)
    cases:
      - name: payroll clerk gets SMS
        today: 2027-02-01          # optional, for this case only
        user:                      # the whole user; anything left out is empty (status: Activated)
          id: u1
          email: a@acme.example
          phone: "13800138000"
          status: Activated
          external_id: EMP-1
          user_source_type: adminCreated
          register_source: [import:manual]
          departments: [{code: finance-payroll, ancestors: [acme, finance]}]   # or plain codes
          groups: [contractors]
          roles: [admin, {code: approver, namespace: finance-app}]
          custom_data: {costCenter: FIN-01}
          mfa: [EMAIL]             # factors enabled now
          mfa_phone: "13800138000" # MFA contacts stored with them (optional)
          mfa_email: a@acme.example
        expect:                    # rule name -> outcome; rules not listed are not checked
          finance-sms: enforce [SMS]

Outcomes (see ``outcomes``): ``not-matched``, ``exempt``, ``compliant``, ``enforce [X, ...]``,
``unsatisfiable`` or ``unsatisfiable [X]``. ``compliant`` and ``enforce`` may add ``(fallback)`` or
``(fallback for SMS)`` to require that a fallback stood in; without it, only the factors are compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load

from service.policy.documents import (
    DocumentError,
    describe_problems,
    find_duplicate_names,
    kind,
    parse_yaml,
    read_text,
)
from service.policy.errors import SuiteError
from service.policy.facts import Department, UserFacts
from service.policy.outcomes import OUTCOME_KINDS, Outcome
from service.policy.rules import FACTORS, USER_SOURCE_TYPES, USER_STATUSES
from service.policy.schemas import Choice, Day, RoleSelector, Text, Word, list_of, unique

DEFAULT_USER_ID = "test-user"
SUITE_KEYS = ("policy", "today", "cases")
CASE_KEYS = ("name", "today", "user", "expect")
USER_KEYS = (
    "id",
    "email",
    "phone",
    "status",
    "external_id",
    "user_source_type",
    "register_source",
    "departments",
    "groups",
    "roles",
    "custom_data",
    "mfa",
    "mfa_phone",
    "mfa_email",
)
DEPARTMENT_KEYS = ("code", "name", "id", "ancestors")
_KEY_ORDER = (*SUITE_KEYS, *CASE_KEYS, *USER_KEYS, *DEPARTMENT_KEYS, "namespace")
_EXPECTATION = re.compile(
    r"(?P<kind>[a-z-]+)\s*(?:\[(?P<factors>[^\]]*)\])?\s*(?:\((?P<note>[^)]*)\))?",
    re.IGNORECASE,
)
_FORMS = "not-matched, exempt, compliant, enforce [FACTORS], unsatisfiable [FACTORS]"


@dataclass(frozen=True)
class Expectation:
    """One expected outcome, as written: ``enforce [EMAIL] (fallback for SMS)``.

    ``factors`` is None when not stated (``unsatisfiable`` alone); ``fallback`` is True when the text
    requires a fallback to stand in, ``fallback_for`` the required factors it must stand in for (None: any).
    """

    kind: str
    factors: tuple[str, ...] | None = None
    fallback: bool = False
    fallback_for: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        """The expectation in canonical spelling."""
        text = self.kind
        if self.factors is not None:
            text += f" [{', '.join(self.factors)}]"
        if self.fallback:
            text += f" (fallback for {', '.join(self.fallback_for)})" if self.fallback_for else " (fallback)"
        return text

    def is_met_by(self, outcome: Outcome) -> bool:
        """True when ``outcome`` is what this expects."""
        if outcome.kind != self.kind:
            return False
        if self.factors is not None:
            actual = outcome.add if self.kind == "enforce" else tuple(outcome.unsatisfiable)
            if set(actual) != set(self.factors):
                return False
        if self.fallback and not outcome.fallbacks:
            return False
        return self.fallback_for is None or set(outcome.fallbacks) == set(self.fallback_for)


@dataclass(frozen=True)
class Case:
    """One fixture user, the MFA they have now, and the outcome expected of each listed rule."""

    name: str
    facts: UserFacts
    expect: tuple[tuple[str, Expectation], ...]
    enabled: tuple[str, ...] = ()
    mfa_phone: str | None = None
    mfa_email: str | None = None
    today: date | None = None


@dataclass(frozen=True)
class Suite:
    """A test-suite file: its cases, the policy file it names (resolved against it) and its date."""

    source: str
    cases: tuple[Case, ...]
    policy: Path | None = None
    today: date | None = None


def load_suite(path: Path) -> Suite:
    """Read and validate the suite at ``path``; ``SuiteError`` lists every problem."""
    try:
        text = read_text(path)
    except DocumentError as error:
        raise SuiteError(str(path), [error.problem]) from error
    return parse_suite(text, str(path), base=path.parent)


def parse_suite(text: str, source: str = "<string>", *, base: Path | None = None) -> Suite:
    """Validate suite ``text``; a relative ``policy`` is resolved against ``base`` (default: as written)."""
    try:
        document = parse_yaml(text)
    except DocumentError as error:
        raise SuiteError(source, [error.problem]) from error
    if not isinstance(document, Mapping):
        got = "nothing" if document is None else kind(document)
        raise SuiteError(source, [f"expected a mapping with a 'cases' list at the top level, got {got}"])
    problems: list[tuple[int, str]] = []
    loaded: dict[str, Any] = {}
    try:
        loaded = _SuiteSchema().load(document)
    except ValidationError as error:
        problems.extend(describe_problems(error.messages, document, "cases", _KEY_ORDER))
    problems.extend(find_duplicate_names(document, "cases"))
    if problems:
        problems.sort(key=lambda item: item[0])
        raise SuiteError(source, [line for _, line in problems])
    policy = loaded.get("policy")
    return Suite(
        source=source,
        cases=tuple(loaded["cases"]),
        policy=None if policy is None else (base or Path()) / policy,
        today=loaded.get("today"),
    )


def parse_expectation(text: str) -> Expectation:
    """``enforce [SMS, OTP]`` -> ``Expectation``; ``ValueError`` with what is expected otherwise."""
    found = _EXPECTATION.fullmatch(text.strip())
    if found is None or found["kind"].lower() not in OUTCOME_KINDS:
        raise ValueError(f"{text!r} is not an outcome; expected one of {_FORMS}")
    outcome = found["kind"].lower()
    factors = None if found["factors"] is None else _factors(found["factors"])
    fallback, fallback_for = _fallback_note(found["note"])
    if outcome == "enforce" and not factors:
        raise ValueError(f"{text!r}: enforce needs the factors it adds, like enforce [SMS]")
    if factors is not None and outcome not in ("enforce", "unsatisfiable"):
        raise ValueError(f"{text!r}: only enforce and unsatisfiable list factors")
    if fallback and outcome not in ("enforce", "compliant"):
        raise ValueError(f"{text!r}: only enforce and compliant can be by fallback")
    return Expectation(kind=outcome, factors=factors, fallback=fallback, fallback_for=fallback_for)


def _factors(text: str) -> tuple[str, ...]:
    names = [name.strip().upper() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FACTORS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not among {', '.join(FACTORS)}")
    return tuple(factor for factor in FACTORS if factor in names)


def _fallback_note(note: str | None) -> tuple[bool, tuple[str, ...] | None]:
    if note is None:
        return False, None
    words = note.strip()
    if words.lower() == "fallback":
        return True, None
    if words.lower().startswith("fallback for "):
        return True, _factors(words[len("fallback for ") :])
    raise ValueError(f"({note}) is not understood; write (fallback) or (fallback for SMS)")


# --- schemas --------------------------------------------------------------------------------------------


def _plain_list(item: fields.Field[Any], what: str) -> fields.List[Any]:
    """A list of ``item``s, possibly empty (a fixture user may have none)."""
    return fields.List(
        item, error_messages={"null": f"must be a list of {what}s", "invalid": f"expected a list of {what}s"}
    )


class _DepartmentField(fields.Field[Department]):
    """``finance`` or ``{code, name, id, ancestors: [codes, root first]}``; the id defaults to the code."""

    default_error_messages = {"null": "expected a department code or {code, name, id, ancestors}"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Department:
        if isinstance(value, str) and value.strip():
            return Department(department_id=value.strip(), code=value.strip(), name=None)
        if isinstance(value, Mapping):
            department: Department = _DepartmentSchema().load(value)
            return department
        raise ValidationError(f"expected a department code or {{code, name, id, ancestors}}, got {kind(value)}")


class _DepartmentSchema(Schema):
    error_messages = {"unknown": f"unknown key; expected {', '.join(DEPARTMENT_KEYS)}"}  # noqa: RUF012

    code = Word("a department code", required=True)
    name = Word("a department name")
    id = Word("a department id")
    ancestors = _plain_list(Word("a department code"), "department code")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Department:
        return Department(
            department_id=data.get("id", data["code"]),
            code=data["code"],
            name=data.get("name"),
            ancestor_codes=tuple(data.get("ancestors", ())),
        )


class _CustomDataField(fields.Field[dict[str, Any]]):
    default_error_messages = {"null": "expected a mapping of custom data keys to values"}  # noqa: RUF012

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"expected a mapping of custom data keys to values, got {kind(value)}")
        bad = [str(key) for key in value if not isinstance(key, str)]
        if bad:
            raise ValidationError(f"custom data keys must be text, not {', '.join(bad)}")
        return dict(value)


class _ExpectField(fields.Field[tuple[tuple[str, Expectation], ...]]):
    default_error_messages = {  # noqa: RUF012
        "required": "missing; map rule names to outcomes",
        "null": "must map at least one rule name to an outcome",
    }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> tuple[tuple[str, Expectation], ...]:
        if not isinstance(value, Mapping) or not value:
            raise ValidationError(f"expected a mapping of rule names to outcomes ({_FORMS})")
        expected: list[tuple[str, Expectation]] = []
        errors: dict[str, Any] = {}
        for rule, text in value.items():
            if not isinstance(rule, str):
                errors[str(rule)] = ["expected a rule name"]
            elif not isinstance(text, str):
                errors[rule] = [f"expected an outcome ({_FORMS}), got {kind(text)}"]
            else:
                try:
                    expected.append((rule, parse_expectation(text)))
                except ValueError as error:
                    errors[rule] = [str(error)]
        if errors:
            raise ValidationError(errors)
        return tuple(expected)


class _UserSchema(Schema):
    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(USER_KEYS)}",
        "type": "expected a mapping describing the user",
    }

    id = Word("a user id", load_default=DEFAULT_USER_ID)
    email = Text()
    phone = Text()
    status = Choice(USER_STATUSES, load_default="Activated")
    external_id = Text()
    user_source_type = Choice(USER_SOURCE_TYPES, aliases={"sync": "syncTask"})
    register_source = _plain_list(Word("a register source"), "register source")
    departments = _plain_list(_DepartmentField(), "department")
    groups = _plain_list(Word("a group code"), "group code")
    roles = _plain_list(RoleSelector(), "role")
    custom_data = _CustomDataField()
    mfa = _plain_list(Choice(FACTORS), "factor")
    mfa_phone = Text()
    mfa_email = Text()

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        facts = UserFacts(
            user_id=data["id"],
            email=data.get("email"),
            phone=data.get("phone"),
            status=data["status"],
            external_id=data.get("external_id"),
            user_source_type=data.get("user_source_type"),
            register_source=tuple(data.get("register_source", ())),
            departments=tuple(data.get("departments", ())),
            groups=tuple(data.get("groups", ())),
            roles=unique(data.get("roles", [])),
            custom_data=data.get("custom_data", {}),
        )
        return {
            "facts": facts,
            "enabled": tuple(factor for factor in FACTORS if factor in data.get("mfa", ())),
            "mfa_phone": data.get("mfa_phone"),
            "mfa_email": data.get("mfa_email"),
        }


class _CaseSchema(Schema):
    error_messages = {  # noqa: RUF012
        "unknown": f"unknown key; expected {', '.join(CASE_KEYS)}",
        "type": "expected a mapping with name, user and expect",
    }

    name = Word("a case name", required=True)
    today = Day()
    user = fields.Nested(
        _UserSchema,
        required=True,
        error_messages={
            "required": "missing; describe the user (email, departments, mfa, ...)",
            "null": "expected a mapping describing the user",
        },
    )
    expect = _ExpectField(required=True)

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Case:
        user = data["user"]
        return Case(
            name=data["name"],
            facts=user["facts"],
            expect=data["expect"],
            enabled=user["enabled"],
            mfa_phone=user["mfa_phone"],
            mfa_email=user["mfa_email"],
            today=data.get("today"),
        )


class _SuiteSchema(Schema):
    error_messages = {"unknown": f"unknown key; expected {', '.join(SUITE_KEYS)}"}  # noqa: RUF012

    policy = Word("a policy file path")
    today = Day()
    cases = list_of(
        fields.Nested(_CaseSchema, error_messages={"null": "expected a case, got nothing"}), "case", required=True
    )
