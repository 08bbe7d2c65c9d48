"""The conditions of a match block, one class each: the one place that says everything about a condition.

A condition names its key in the policy file and the ``Match`` attribute holding it, the fact beyond the
user record it needs (``fact``, gathered by ``service.enforcement.facts``) and the webhook events that change
that fact, the marshmallow fields that read it, how it is judged against a user and described in words, and
the key of a test suite's fixture user that gives what it reads, the ``get-user`` flag that brings a fact
with the user record, and how ``explain`` shows the fact. Everything else is derived from ``CONDITIONS``:
``CONDITION_KEYS``, the values ``Match`` holds and ``Match.needs``, ``FACT_EVENTS`` (what ``webhooks
subscribe`` adds), the match and fixture user schemas, ``judge``, ``describe_match`` and the flags asked for.

``judge(match, facts)`` returns ``(holds, reasons)``: when the block holds, the reasons say what matched
(``department finance``, ``role approver (namespace finance-app)``); when it does not, they say only what
failed (``status Suspended is not one of [Activated]``). Every condition is judged, without short cuts, so
the reasons are complete. The caller guarantees the facts the block needs were gathered (see
``evaluation``). How each condition compares:

- ``departments``: a selector matches a department of the user by id (exact), code or name (ignoring case and
  surrounding spaces), or, unless ``include_subdepartments`` is false, one of that department's ancestors
  the same way.
- ``email_domains``: the domain of the user's email equals one of them, ignoring case; no subdomains.
- ``groups``, ``roles`` (code and namespace), ``status``, ``user_source_type``, ``register_source``,
  ``identity_providers``: ignoring case. ``userSourceType`` ``sync`` (the SDK's spelling) counts as ``syncTask``.
- value tests (``external_id``, ``custom_data``): text equals text exactly, numbers equal numbers (``5`` and
  ``5.0``), booleans equal booleans; text never equals a number. A value exists when it is set and is not
  empty text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from marshmallow import Schema, ValidationError, fields, post_load, validate

from service.policy.documents import kind
from service.policy.facts import Department, Fact, Role, UserFacts
from service.policy.fields import (
    Choice,
    StrictBoolean,
    Text,
    ValueTestField,
    Word,
    list_of,
    plain_list,
    unique,
    unique_folded,
    value_test,
)
from service.policy.rules import DEFAULT_NAMESPACE, Match, Scalar, ValueTest

Judgement = tuple[bool, list[str]]


class Condition:
    """One key of a match block. Subclasses set the class attributes and judge, describe and read it."""

    key: ClassVar[str]
    """The key in the policy file."""
    attribute: ClassVar[str | None] = None
    """The ``Match`` attribute that holds it; None: named like ``key``."""
    subject: ClassVar[str | None] = None
    """What descriptions (and reasons) call it, such as the ``UserDto`` field; None: its ``key``."""
    default: ClassVar[Any] = ()  # what ``Match`` holds when the block does not give it
    fact: ClassVar[str | None] = None
    """The ``UserFacts`` fact beyond the user record that judging it needs; None: the user record suffices."""
    user_flag: ClassVar[str | None] = None  # the ``get-user`` flag that brings the fact (then ``read`` reads it)
    events: ClassVar[tuple[str, ...]] = ()
    """The webhook events that change that fact (changes to the user record come with the base events)."""
    fixture: ClassVar[str | None] = None
    """The fixture user's key in a test suite, named like the ``UserFacts`` attribute it gives."""
    fixture_default: ClassVar[Any] = ()
    """What a fixture user who does not give it has: none (the fact was fetched: empty)."""

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        """The match block's keys this condition reads, with their fields."""
        raise NotImplementedError

    def defaults(self) -> dict[str, Any]:
        """The ``Match`` names this condition holds its values under, with their defaults."""
        return {self.attribute or self.key: self.default}

    def read(self, user: Mapping[str, Any]) -> Any:
        """The fact from the ``get-user`` record fetched with ``user_flag``."""
        raise NotImplementedError

    def shown(self, value: Any) -> dict[str, Any]:
        """The fetched fact as ``explain`` shows it."""
        return {str(self.fact): list(value)}

    def values(self, loaded: Mapping[str, Any]) -> dict[str, Any]:
        """The ``Match`` keyword values from what the match schema loaded (none when the key is absent)."""
        names = zip(self.schema_fields(), self.defaults(), strict=True)
        return {name: self.convert(loaded[key]) for key, name in names if key in loaded}

    def convert(self, loaded: Any) -> Any:
        """What ``Match`` holds for the loaded value: a list without repeats, anything else as loaded."""
        return unique(loaded) if isinstance(loaded, list) else loaded

    def value(self, match: Match) -> Any:
        return getattr(match, self.attribute or self.key)

    def is_given(self, match: Match) -> bool:
        """True when ``match`` gives this condition."""
        return bool(self.value(match))

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        raise NotImplementedError

    def describe(self, match: Match) -> list[str]:
        """``departments any of [finance]``: the condition in words, for ``policy check``."""
        return [f"{self.subject or self.key} any of [{', '.join(self.value(match))}]"]

    def fixture_field(self) -> fields.Field[Any]:
        """The field that reads ``fixture`` from a test suite's user (only asked when there is one)."""
        raise NotImplementedError

    def fixture_facts(self, loaded: Mapping[str, Any]) -> dict[str, Any]:
        """The ``UserFacts`` keyword values from a fixture user as loaded."""
        if self.fixture is None:
            return {}
        value = loaded.get(self.fixture, self.fixture_default)
        return {self.fixture: tuple(value) if isinstance(value, list) else value}


class _Listed(Condition):
    """A list of text the user's values are compared with, ignoring case; ``word`` and ``item`` name an entry
    in messages (``must be a group code, not empty``, ``must list at least one group code``)."""

    word: ClassVar[str]
    item: ClassVar[str]
    fixture_word: ClassVar[str | None] = None
    """How the fixture user's entries are named, when not as ``word``."""

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {self.key: list_of(Word(self.word), self.item)}

    def convert(self, loaded: Any) -> Any:
        return unique_folded(loaded)

    def fixture_field(self) -> fields.Field[Any]:
        return plain_list(Word(self.fixture_word or self.word), self.item)


def _any_of(wanted: tuple[str, ...], held: tuple[str, ...], matched: str, failed: str) -> Judgement:
    """``matched <entry>`` for each wanted entry the user holds (ignoring case), else ``failed``."""
    folded = {_fold(value) for value in held}
    reasons = [f"{matched} {entry}" for entry in wanted if _fold(entry) in folded]
    return (True, reasons) if reasons else (False, [failed])


# --- the user's place in the directory -----------------------------------------------------------------

TREE_EVENTS: tuple[str, ...] = (
    "organization:node-moved",
    "organization:node-added",
    "organization:node-updated",
    "organization:node-deleted",
    "organization:created",
    "organization:deleted",
    "organization:imported",
    "organization:tree-updated",
)
"""The events that change the organisation tree (a department's name, code or place, or which departments
and organisations exist), as opposed to who is in a department: each marks every process's cached tree out
of date (``service.enforcement.organisation``). ``organization:udv-changed`` is not one: it changes a
department's custom fields (docs/genauth.md §1.7), which no rule reads."""


class Departments(_Listed):
    key = fixture = "departments"
    fact = Fact.DEPARTMENTS
    events = ("organization:member-added", "organization:member-removed", *TREE_EVENTS)
    word, item = "a department code, name or id", "department"

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {**super().schema_fields(), "include_subdepartments": StrictBoolean()}

    convert = Condition.convert  # ids compare exactly; include_subdepartments as loaded

    def defaults(self) -> dict[str, Any]:
        return {**super().defaults(), "include_subdepartments": True}

    def shown(self, value: Any) -> dict[str, Any]:
        shown = [(d.code, d.name, d.department_id, list(d.ancestor_codes or d.ancestor_names)) for d in value]
        return {"departments": [dict(zip(("code", "name", "id", "ancestors"), d, strict=True)) for d in shown]}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert facts.departments is not None  # the caller checked the facts
        reasons: list[str] = []
        for department in facts.departments:
            reason = _department_reason(match.departments, department, match.include_subdepartments)
            if reason is not None and reason not in reasons:
                reasons.append(reason)
        if reasons:
            return True, reasons
        directly = "" if match.include_subdepartments else "directly "
        return False, [f"not {directly}in any of departments [{', '.join(match.departments)}]"]

    def describe(self, match: Match) -> list[str]:
        direct = "" if match.include_subdepartments else " (direct members only)"
        return [f"departments any of [{', '.join(match.departments)}]{direct}"]

    def fixture_field(self) -> fields.Field[Any]:
        return plain_list(_DepartmentField(), "department")


def _department_reason(selectors: tuple[str, ...], department: Department, include_subdepartments: bool) -> str | None:
    """Why ``department`` is selected, preferring the department itself over its ancestors."""
    for selector in selectors:
        if _is_selected(selector, (department.department_id,), (department.code, department.name)):
            return f"department {selector}"
    if not include_subdepartments:
        return None
    for selector in selectors:
        if _is_selected(selector, department.ancestor_ids, (*department.ancestor_codes, *department.ancestor_names)):
            label = department.code or department.name or department.department_id
            return f"department {selector} (via ancestor of {label})"
    return None


def _is_selected(selector: str, ids: tuple[str, ...], codes_and_names: tuple[str | None, ...]) -> bool:
    """Ids compare exactly (they are opaque); codes and names ignoring case and surrounding spaces."""
    folded = _fold(selector)
    return selector in ids or any(text is not None and _fold(text) == folded for text in codes_and_names)


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


DEPARTMENT_KEYS = ("code", "name", "id", "ancestors")


class _DepartmentSchema(Schema):
    error_messages = {"unknown": f"unknown key; expected {', '.join(DEPARTMENT_KEYS)}"}  # noqa: RUF012

    code = Word("a department code", required=True)
    name = Word("a department name")
    id = Word("a department id")
    ancestors = plain_list(Word("a department code"), "department code")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> Department:
        return Department(
            department_id=data.get("id", data["code"]),
            code=data["code"],
            name=data.get("name"),
            ancestor_codes=tuple(data.get("ancestors", ())),
        )


class Groups(_Listed):
    key = fixture = "groups"
    fact = Fact.GROUPS
    events = ("group:member-added", "group:member-removed")
    word, item = "a group code", "group code"

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert facts.groups is not None
        return _any_of(match.groups, facts.groups, "group", f"not in any of groups [{', '.join(match.groups)}]")


class Roles(Condition):
    key = fixture = "roles"
    fact = Fact.ROLES
    events = ("role:assigned", "role:unassigned")

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {"roles": list_of(RoleSelector(), "role")}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert facts.roles is not None
        held = {(_fold(role.code), _fold(role.namespace)) for role in facts.roles}
        selectors = match.roles
        reasons = [f"role {role_label(s)}" for s in selectors if (_fold(s.code), _fold(s.namespace)) in held]
        if reasons:
            return True, reasons
        return False, [f"has none of roles [{', '.join(role_label(selector) for selector in selectors)}]"]

    def describe(self, match: Match) -> list[str]:
        return [f"roles any of [{', '.join(role_label(role) for role in match.roles)}]"]

    def fixture_field(self) -> fields.Field[Any]:
        return plain_list(RoleSelector(), "role")

    def shown(self, value: Any) -> dict[str, Any]:
        return {"roles": [f"{role.code}@{role.namespace}" for role in value]}

    def fixture_facts(self, loaded: Mapping[str, Any]) -> dict[str, Any]:
        return {"roles": unique(loaded.get("roles", []))}


def role_label(role: Role) -> str:
    """``admin`` for the default namespace, ``approver (namespace finance-app)`` otherwise."""
    if _fold(role.namespace) == DEFAULT_NAMESPACE:
        return role.code
    return f"{role.code} (namespace {role.namespace})"


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


# --- the user record ------------------------------------------------------------------------------------

_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")


class EmailDomains(Condition):
    key = "email_domains"
    # The fixture user's ``email`` is a contact as well, so it is one of the suite's own keys.

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {"email_domains": list_of(_EmailDomain(), "email domain")}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        domains = match.email_domains
        local, at, domain = (facts.email or "").strip().rpartition("@")
        if not (local and at and domain):
            return False, [f"no email address, so not in any of email domains [{', '.join(domains)}]"]
        domain = domain.casefold()
        if domain in {allowed.casefold() for allowed in domains}:
            return True, [f"email domain {domain}"]
        return False, [f"email domain {domain} is not one of [{', '.join(domains)}]"]


class _EmailDomain(Text):
    def _convert(self, text: str) -> str:
        domain = text.strip().lower().removeprefix("@")
        if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
            raise ValidationError(f"{text!r} does not look like an email domain (like corp.example.com)")
        return domain


class _OneOf(Condition):
    """Any-of the user's value of one ``UserDto`` field, among fixed ``choices``."""

    choices: ClassVar[tuple[str, ...]]
    aliases: ClassVar[Mapping[str, str]] = {}

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {self.key: list_of(Choice(self.choices, aliases=self.aliases), self.key.replace("_", " "))}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        allowed: tuple[str, ...] = self.value(match)
        value = getattr(facts, self.key)
        value = self.aliases.get(_fold(value), value) if value is not None else None
        listed = ", ".join(allowed)
        if value is None or not value.strip():
            return False, [f"no {self.subject}, so not one of [{listed}]"]
        if _fold(value) in {_fold(item) for item in allowed}:
            return True, [f"{self.subject} {value}"]
        return False, [f"{self.subject} {value} is not one of [{listed}]"]

    fixture_default = None

    def fixture_field(self) -> fields.Field[Any]:
        return Choice(self.choices, aliases=self.aliases)


class Status(_OneOf):
    key = fixture = subject = "status"
    choices = ("Activated", "Suspended", "Deactivated", "Resigned", "Archived")  # v3 ``UserDto.status``

    def fixture_field(self) -> fields.Field[Any]:
        return Choice(self.choices, load_default="Activated")


class ExternalId(Condition):
    key = fixture = "external_id"
    default = fixture_default = None

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {"external_id": ValueTestField(text_only=True)}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert match.external_id is not None
        return _value_test("externalId", match.external_id, facts.external_id)

    def describe(self, match: Match) -> list[str]:
        assert match.external_id is not None
        return [_describe_test("externalId", match.external_id)]

    def fixture_field(self) -> fields.Field[Any]:
        return Text()


class UserSourceType(_OneOf):
    key = fixture = "user_source_type"
    # v3 ``UserDto.userSourceType`` values (the SDK spells the last one ``sync``; both mean ``syncTask``).
    choices = ("excel", "register", "adminCreated", "syncTask")
    aliases = {"sync": "syncTask"}  # noqa: RUF012 - read only
    subject = "userSourceType"


class RegisterSource(_Listed):
    key = fixture = "register_source"
    subject = "registerSource"
    word, item, fixture_word = "a register source like import:manual", "register source", "a register source"

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        allowed, sources = match.register_source, facts.register_source
        listed = ", ".join(allowed)
        wanted = {_fold(item) for item in allowed}
        reasons = [f"registerSource {source}" for source in sources if _fold(source) in wanted]
        if reasons:
            return True, reasons
        if not sources:
            return False, [f"no registerSource, so none of [{listed}]"]
        return False, [f"registerSource [{', '.join(sources)}] has none of [{listed}]"]


class CustomData(Condition):
    key = fixture = "custom_data"
    fact = Fact.CUSTOM_DATA  # its changes come with ``user:updated``
    user_flag = "withCustomData"
    fixture_default = MappingProxyType({})

    def read(self, user: Mapping[str, Any]) -> Any:
        data = user.get("customData")
        return data if isinstance(data, dict) else {}

    def shown(self, value: Any) -> dict[str, Any]:
        return {"custom_data_keys": sorted(value)}

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {"custom_data": _CustomDataTests()}

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert facts.custom_data is not None
        data = facts.custom_data
        return _every([_value_test(f"customData.{key}", test, data.get(key)) for key, test in match.custom_data])

    def describe(self, match: Match) -> list[str]:
        return [_describe_test(f"customData.{key}", test) for key, test in match.custom_data]

    def fixture_field(self) -> fields.Field[Any]:
        return _CustomDataValues()


class _CustomDataTests(fields.Field[tuple[tuple[str, ValueTest], ...]]):
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


class _CustomDataValues(fields.Field[dict[str, Any]]):
    """A fixture user's custom data: text keys to any values."""

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


class IdentityProviders(_Listed):
    """Users with an identity from one of the listed external identity sources (``get-user`` with
    ``withIdentities``: each ``IdentityDto.provider``, docs/genauth.md §3.5), such as ``wechatwork`` or
    ``lark``. An identity is linked when the user first signs in through its source, and that sign-in is a
    ``login`` event, so the fact needs no events of its own."""

    key = fixture = fact = "identity_providers"
    user_flag = "withIdentities"
    word, item = "an identity provider like wechatwork", "identity provider"

    def read(self, user: Mapping[str, Any]) -> Any:
        """The ``provider`` of each ``IdentityDto``, without repeats (a user may have two from one source)."""
        items = user.get("identities")
        found = (item.get("provider") for item in items if isinstance(item, dict)) if isinstance(items, list) else ()
        return tuple(dict.fromkeys(p for p in found if isinstance(p, str) and p.strip()))

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert facts.identity_providers is not None
        wanted = match.identity_providers
        failed = f"has no identity from any of [{', '.join(wanted)}]"
        return _any_of(wanted, facts.identity_providers, "identity provider", failed)


# --- combinators ----------------------------------------------------------------------------------------


def _blocks() -> fields.List[Any]:
    return fields.List(
        fields.Nested("NestedMatchSchema", error_messages={"null": "expected a match block, got nothing"}),
        validate=validate.Length(min=1, error="must list at least one match block"),
        error_messages={"null": "must list at least one match block", "invalid": "expected a list of match blocks"},
    )


class _Blocks(Condition):
    """``all`` and ``any``: a list of match blocks."""

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        return {self.key: _blocks()}

    def convert(self, loaded: Any) -> Any:
        return tuple(loaded)


class AllOf(_Blocks):
    key = "all"
    attribute = "all_of"

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        holds, reasons = _every([judge(block, facts) for block in match.all_of])
        return holds, reasons if holds else [f"all: {reason}" for reason in reasons]

    def describe(self, match: Match) -> list[str]:
        return [f"all of ({'; '.join(describe_match(block) for block in match.all_of)})"]


class AnyOf(_Blocks):
    key = "any"
    attribute = "any_of"

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        judgements = [judge(block, facts) for block in match.any_of]
        for holds, reasons in judgements:
            if holds:
                return True, [f"any: {'; '.join(reasons)}"]
        failed = "; ".join(reason for _, reasons in judgements for reason in reasons)
        return False, [f"any: none of {len(match.any_of)} conditions held ({failed})"]

    def describe(self, match: Match) -> list[str]:
        return [f"any of ({'; '.join(describe_match(block) for block in match.any_of)})"]


class Not(Condition):
    key = "not"
    attribute = "negated"
    default = None

    def schema_fields(self) -> dict[str, fields.Field[Any]]:
        conditions = ", ".join(CONDITION_KEYS)
        return {
            "not": fields.Nested(
                "NestedMatchSchema",
                error_messages={"null": f"must not be empty; give a match block with any of {conditions}"},
            )
        }

    def judge(self, match: Match, facts: UserFacts) -> Judgement:
        assert match.negated is not None
        holds, reasons = judge(match.negated, facts)
        if holds:
            return False, [f"not: {'; '.join(reasons)} matched"]
        return True, [f"not: {'; '.join(reasons)}"]

    def describe(self, match: Match) -> list[str]:
        assert match.negated is not None
        return [f"not ({describe_match(match.negated)})"]


# --- value tests ----------------------------------------------------------------------------------------


def _value_test(subject: str, test: ValueTest, value: Any) -> Judgement:
    present = value is not None and not (isinstance(value, str) and not value.strip())
    if test.operator == "exists":
        # The value itself is not repeated: it is the user's data, and reasons are stored in decisions.
        return present == test.present, [f"{subject} is set" if present else f"{subject} is not set"]
    if test.operator == "equals":
        expected = show(test.values[0])
    else:
        expected = f"one of [{', '.join(show(wanted) for wanted in test.values)}]"
    if not present:
        return False, [f"{subject} is not set, so not {expected}"]
    if any(_same(value, wanted) for wanted in test.values):
        return True, [f"{subject} = {show(value)}"]
    return False, [f"{subject} is {show(value)}, not {expected}"]


def _same(actual: Any, wanted: Scalar) -> bool:
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return isinstance(wanted, bool) and isinstance(actual, bool) and actual == wanted
    if isinstance(wanted, int | float):
        return isinstance(actual, int | float) and actual == wanted
    return isinstance(actual, str) and actual == wanted


def _describe_test(subject: str, test: ValueTest) -> str:
    if test.operator == "exists":
        return f"{subject} {'set' if test.present else 'not set'}"
    if test.operator == "equals":
        return f"{subject} = {show(test.values[0])}"
    return f"{subject} in [{', '.join(show(value) for value in test.values)}]"


def show(value: Any) -> str:
    """A value as reasons print it: text as is, booleans as true/false, anything else as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _fold(text: str) -> str:
    return text.strip().casefold()


# --- the registry and what derives from it --------------------------------------------------------------

#: Every condition, in the order reasons and descriptions list them.
CONDITIONS: tuple[Condition, ...] = (
    Departments(),
    Groups(),
    Roles(),
    EmailDomains(),
    Status(),
    ExternalId(),
    UserSourceType(),
    RegisterSource(),
    CustomData(),
    IdentityProviders(),
    AllOf(),
    AnyOf(),
    Not(),
)

#: The keys of a match block that are conditions, in the order reasons list them.
CONDITION_KEYS: tuple[str, ...] = tuple(condition.key for condition in CONDITIONS)

#: Every key a match block understands, in file order (``include_subdepartments`` qualifies ``departments``).
MATCH_KEYS: tuple[str, ...] = tuple(key for condition in CONDITIONS for key in condition.schema_fields())

#: The facts beyond the user record that conditions read, the names ``UserFacts`` takes besides the record's.
FACTS: tuple[str, ...] = tuple(dict.fromkeys(str(c.fact) for c in CONDITIONS if c.fact is not None))

#: The events that change each fact a rule reads (``service.genauth.webhooks.events_for``).
FACT_EVENTS: dict[str, tuple[str, ...]] = {c.fact: c.events for c in CONDITIONS if c.fact is not None and c.events}


def judge(match: Match, facts: UserFacts) -> Judgement:
    """``(True, what matched)`` when every condition of ``match`` holds, else ``(False, what failed)``."""
    return _every([condition.judge(match, facts) for condition in CONDITIONS if condition.is_given(match)])


def _every(judgements: list[Judgement]) -> Judgement:
    """``(True, every reason)`` when every judgement holds, else ``(False, the reasons of those that failed)``."""
    failed = [reason for holds, reasons in judgements if not holds for reason in reasons]
    if failed:
        return False, failed
    return True, [reason for _, reasons in judgements for reason in reasons]


def describe_match(match: Match) -> str:
    """``departments any of [finance], groups any of [contractors], customData.level in [L5, L6]``."""
    return ", ".join(
        part for condition in CONDITIONS if condition.is_given(match) for part in condition.describe(match)
    )
