"""Policy test suites: fixture users and the outcome each rule should have for them (``policy test``).

    policy: policies.yaml          # optional, relative to this file
    today: 2026-12-01              # optional: "today" for exception expiry and rollouts (default: today)
    cases:
      - name: payroll clerk gets SMS
        today: 2027-02-01          # optional, for this case only
        user:                      # the whole user; anything left out is empty (status: Activated)
          id: u1
          username: a.wang           # matched only by the policy's protected block
          email: a@acme.example
          phone: "13800138000"
          phone_country_code: "+86" # or write the phone in E.164: "+8613800138000"
          phone_verified: true     # GenAuth's phoneVerified / emailVerified (default true)
          email_verified: true
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
          mfa_phone_country_code: "+86"
          mfa_email: a@acme.example
        expect:                    # rule name -> outcome; rules not listed are not checked
          finance-sms: enforce [SMS]

Outcomes (see ``outcomes``): ``not-matched``, ``exempt``, ``compliant``, ``enforce [X, ...]``,
``unsatisfiable`` or ``unsatisfiable [X]``, and ``protected`` (the policy's ``protected`` block names the
user). ``compliant`` and ``enforce`` may add ``(fallback)`` or
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

from service.policy.conditions import CONDITIONS, DEPARTMENT_KEYS
from service.policy.documents import kind, parse_document, read_document
from service.policy.errors import SuiteError
from service.policy.facts import UserFacts
from service.policy.fields import Choice, Day, StrictBoolean, Text, Word, list_of, plain_list
from service.policy.outcomes import Outcome
from service.policy.rules import FACTORS
from service.vocabulary import OutcomeKind

DEFAULT_USER_ID = "test-user"
SUITE_KEYS = ("policy", "today", "cases")
CASE_KEYS = ("name", "today", "user", "expect")
#: The conditions whose facts a fixture user gives: those of the user record first, then those that cost a call.
_FIXTURES = sorted((c for c in CONDITIONS if c.fixture is not None), key=lambda condition: condition.fact is not None)
_FIXTURE_FIELDS = {c.fixture: c.fixture_field() for c in _FIXTURES if c.fixture is not None}
USER_KEYS = (
    "id",
    "username",
    "email",
    "phone",
    "phone_country_code",
    "phone_verified",
    "email_verified",
    *_FIXTURE_FIELDS,
    "mfa",
    "mfa_phone",
    "mfa_phone_country_code",
    "mfa_email",
)
_KEY_ORDER = (*SUITE_KEYS, *CASE_KEYS, *USER_KEYS, *DEPARTMENT_KEYS, "namespace")
_EXPECTATION = re.compile(
    r"(?P<kind>[a-z-]+)\s*(?:\[(?P<factors>[^\]]*)\])?\s*(?:\((?P<note>[^)]*)\))?",
    re.IGNORECASE,
)
_FORMS = "not-matched, exempt, compliant, enforce [FACTORS], pending [FACTORS], unsatisfiable [FACTORS], protected"


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
            actual = {
                OutcomeKind.ENFORCE: outcome.add,
                OutcomeKind.PENDING: outcome.deferred,  # what it will add at the user's deadline
            }.get(OutcomeKind(self.kind), tuple(outcome.unsatisfiable))
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
    mfa_phone_country_code: str | None = None


@dataclass(frozen=True)
class Suite:
    """A test-suite file: its cases, the policy file it names (resolved against it) and its date."""

    source: str
    cases: tuple[Case, ...]
    policy: Path | None = None
    today: date | None = None


def load_suite(path: Path) -> Suite:
    """Read and validate the suite at ``path``; ``SuiteError`` lists every problem."""
    return parse_suite(read_document(path, SuiteError), str(path), base=path.parent)


def parse_suite(text: str, source: str = "<string>", *, base: Path | None = None) -> Suite:
    """Validate suite ``text``; a relative ``policy`` is resolved against ``base`` (default: as written)."""
    loaded = parse_document(text, source, _SuiteSchema(), list_key="cases", key_order=_KEY_ORDER, error=SuiteError)
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
    if found is None or found["kind"].lower() not in tuple(OutcomeKind):
        raise ValueError(f"{text!r} is not an outcome; expected one of {_FORMS}")
    outcome = found["kind"].lower()
    factors = None if found["factors"] is None else _factors(found["factors"])
    fallback, fallback_for = _fallback_note(found["note"])
    if outcome == "enforce" and not factors:
        raise ValueError(f"{text!r}: enforce needs the factors it adds, like enforce [SMS]")
    if factors is not None and outcome not in ("enforce", "pending", "unsatisfiable"):
        raise ValueError(f"{text!r}: only enforce, pending and unsatisfiable list factors")
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

    class Meta:
        include = _FIXTURE_FIELDS

    id = Word("a user id", load_default=DEFAULT_USER_ID)
    username = Text()
    email = Text()
    phone = Text()
    phone_country_code = Text()
    phone_verified = StrictBoolean()
    email_verified = StrictBoolean()
    mfa = plain_list(Choice(FACTORS), "factor")
    mfa_phone = Text()
    mfa_phone_country_code = Text()
    mfa_email = Text()

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The ``Case`` fields the user gives."""
        facts = UserFacts(
            user_id=data["id"],
            username=data.get("username"),
            email=data.get("email"),
            phone=data.get("phone"),
            phone_country_code=data.get("phone_country_code"),
            phone_verified=data.get("phone_verified", True),
            email_verified=data.get("email_verified", True),
            **{name: value for condition in _FIXTURES for name, value in condition.fixture_facts(data).items()},
        )
        return {
            "facts": facts,
            "enabled": tuple(factor for factor in FACTORS if factor in data.get("mfa", ())),
            "mfa_phone": data.get("mfa_phone"),
            "mfa_phone_country_code": data.get("mfa_phone_country_code"),
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
        return Case(name=data["name"], expect=data["expect"], today=data.get("today"), **data["user"])


class _SuiteSchema(Schema):
    error_messages = {"unknown": f"unknown key; expected {', '.join(SUITE_KEYS)}"}  # noqa: RUF012

    policy = Word("a policy file path")
    today = Day()
    cases = list_of(
        fields.Nested(_CaseSchema, error_messages={"null": "expected a case, got nothing"}), "case", required=True
    )
