"""Whether one match block holds for a user, and why, in words an operator can act on.

``judge(match, facts)`` returns ``(holds, reasons)``: when the block holds, the reasons say what matched
(``department finance``, ``role approver (namespace finance-app)``); when it does not, they say only what
failed (``status Suspended is not one of [Activated]``). Every condition is judged, without short cuts, so
the reasons are complete. The caller guarantees the facts the block needs were gathered (see
``evaluation``).

How each condition compares:

- ``departments``: a selector matches a department of the user by id (exact), code or name (ignoring case and
  surrounding spaces), or, unless ``include_subdepartments`` is false, one of that department's ancestors
  the same way.
- ``email_domains``: the domain of the user's email equals one of them, ignoring case; no subdomains.
- ``groups``, ``roles`` (code and namespace), ``status``, ``user_source_type``, ``register_source``: ignoring
  case. ``userSourceType`` ``sync`` (the SDK's spelling) counts as ``syncTask``.
- value tests (``external_id``, ``custom_data``): text equals text exactly, numbers equal numbers (``5`` and
  ``5.0``), booleans equal booleans; text never equals a number. A value exists when it is set and is not
  empty text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.policy.facts import Department, Role, UserFacts
from service.policy.rules import DEFAULT_NAMESPACE, Match, Scalar, ValueTest

Judgement = tuple[bool, list[str]]


def judge(match: Match, facts: UserFacts) -> Judgement:
    """``(True, what matched)`` when every condition of ``match`` holds, else ``(False, what failed)``."""
    conditions = list(_conditions(match, facts))
    failed = [reason for holds, reasons in conditions if not holds for reason in reasons]
    if failed:
        return False, failed
    return True, [reason for _, reasons in conditions for reason in reasons]


def _conditions(match: Match, facts: UserFacts) -> Iterable[Judgement]:
    """Each condition the block gives, as (holds, reasons), in ``CONDITION_KEYS`` order."""
    if match.departments:
        assert facts.departments is not None  # the caller checked the facts
        yield _departments(match.departments, facts.departments, match.include_subdepartments)
    if match.groups:
        assert facts.groups is not None
        yield _groups(match.groups, facts.groups)
    if match.roles:
        assert facts.roles is not None
        yield _roles(match.roles, facts.roles)
    if match.email_domains:
        yield _email_domain(match.email_domains, facts.email)
    if match.status:
        yield _one_of("status", match.status, facts.status)
    if match.external_id is not None:
        yield _value_test("externalId", match.external_id, facts.external_id)
    if match.user_source_type:
        yield _one_of("userSourceType", match.user_source_type, _source_type(facts.user_source_type))
    if match.register_source:
        yield _register_source(match.register_source, facts.register_source)
    if match.custom_data:
        assert facts.custom_data is not None
        yield _custom_data(match.custom_data, facts.custom_data)
    if match.all_of:
        yield _all(match.all_of, facts)
    if match.any_of:
        yield _any(match.any_of, facts)
    if match.negated is not None:
        yield _not(match.negated, facts)


# --- combinators ----------------------------------------------------------------------------------------


def _all(blocks: tuple[Match, ...], facts: UserFacts) -> Judgement:
    judgements = [judge(block, facts) for block in blocks]
    failed = [reason for holds, reasons in judgements if not holds for reason in reasons]
    if failed:
        return False, [f"all: {reason}" for reason in failed]
    return True, [reason for _, reasons in judgements for reason in reasons]


def _any(blocks: tuple[Match, ...], facts: UserFacts) -> Judgement:
    judgements = [judge(block, facts) for block in blocks]
    for holds, reasons in judgements:
        if holds:
            return True, [f"any: {'; '.join(reasons)}"]
    failed = "; ".join(reason for _, reasons in judgements for reason in reasons)
    return False, [f"any: none of {len(blocks)} conditions held ({failed})"]


def _not(block: Match, facts: UserFacts) -> Judgement:
    holds, reasons = judge(block, facts)
    if holds:
        return False, [f"not: {'; '.join(reasons)} matched"]
    return True, [f"not: {'; '.join(reasons)}"]


# --- departments ----------------------------------------------------------------------------------------


def _departments(
    selectors: tuple[str, ...], departments: tuple[Department, ...], include_subdepartments: bool
) -> Judgement:
    reasons: list[str] = []
    for department in departments:
        reason = _department_reason(selectors, department, include_subdepartments)
        if reason is not None and reason not in reasons:
            reasons.append(reason)
    if reasons:
        return True, reasons
    directly = "" if include_subdepartments else "directly "
    return False, [f"not {directly}in any of departments [{', '.join(selectors)}]"]


def _department_reason(selectors: tuple[str, ...], department: Department, include_subdepartments: bool) -> str | None:
    """Why ``department`` is selected, preferring the department itself over its ancestors."""
    for selector in selectors:
        if _is_selected(selector, (department.department_id,), (department.code, department.name)):
            return f"department {selector}"
    if not include_subdepartments:
        return None
    for selector in selectors:
        if _is_selected(selector, department.ancestor_ids, (*department.ancestor_codes, *department.ancestor_names)):
            return f"department {selector} (via ancestor of {_label(department)})"
    return None


def _is_selected(selector: str, ids: tuple[str, ...], codes_and_names: tuple[str | None, ...]) -> bool:
    """Ids compare exactly (they are opaque); codes and names ignoring case and surrounding spaces."""
    folded = _fold(selector)
    return selector in ids or any(text is not None and _fold(text) == folded for text in codes_and_names)


def _label(department: Department) -> str:
    return department.code or department.name or department.department_id


# --- groups and roles -----------------------------------------------------------------------------------


def _groups(selectors: tuple[str, ...], groups: tuple[str, ...]) -> Judgement:
    held = {_fold(code) for code in groups}
    reasons = [f"group {selector}" for selector in selectors if _fold(selector) in held]
    if reasons:
        return True, reasons
    return False, [f"not in any of groups [{', '.join(selectors)}]"]


def _roles(selectors: tuple[Role, ...], roles: tuple[Role, ...]) -> Judgement:
    held = {(_fold(role.code), _fold(role.namespace)) for role in roles}
    reasons = [
        f"role {role_label(selector)}"
        for selector in selectors
        if (_fold(selector.code), _fold(selector.namespace)) in held
    ]
    if reasons:
        return True, reasons
    return False, [f"has none of roles [{', '.join(role_label(selector) for selector in selectors)}]"]


def role_label(role: Role) -> str:
    """``admin`` for the default namespace, ``approver (namespace finance-app)`` otherwise."""
    if _fold(role.namespace) == DEFAULT_NAMESPACE:
        return role.code
    return f"{role.code} (namespace {role.namespace})"


# --- the user record ------------------------------------------------------------------------------------


def _email_domain(domains: tuple[str, ...], email: str | None) -> Judgement:
    local, at, domain = (email or "").strip().rpartition("@")
    if not (local and at and domain):
        return False, [f"no email address, so not in any of email domains [{', '.join(domains)}]"]
    domain = domain.casefold()
    if domain in {allowed.casefold() for allowed in domains}:
        return True, [f"email domain {domain}"]
    return False, [f"email domain {domain} is not one of [{', '.join(domains)}]"]


def _one_of(subject: str, allowed: tuple[str, ...], value: str | None) -> Judgement:
    listed = ", ".join(allowed)
    if value is None or not value.strip():
        return False, [f"no {subject}, so not one of [{listed}]"]
    if _fold(value) in {_fold(item) for item in allowed}:
        return True, [f"{subject} {value}"]
    return False, [f"{subject} {value} is not one of [{listed}]"]


def _source_type(value: str | None) -> str | None:
    return "syncTask" if value is not None and _fold(value) == "sync" else value


def _register_source(allowed: tuple[str, ...], sources: tuple[str, ...]) -> Judgement:
    listed = ", ".join(allowed)
    wanted = {_fold(item) for item in allowed}
    reasons = [f"registerSource {source}" for source in sources if _fold(source) in wanted]
    if reasons:
        return True, reasons
    if not sources:
        return False, [f"no registerSource, so none of [{listed}]"]
    return False, [f"registerSource [{', '.join(sources)}] has none of [{listed}]"]


def _custom_data(tests: tuple[tuple[str, ValueTest], ...], data: Mapping[str, Any]) -> Judgement:
    judgements = [_value_test(f"customData.{key}", test, data.get(key)) for key, test in tests]
    failed = [reason for holds, reasons in judgements if not holds for reason in reasons]
    if failed:
        return False, failed
    return True, [reason for _, reasons in judgements for reason in reasons]


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


def show(value: Any) -> str:
    """A value as reasons print it: text as is, booleans as true/false, anything else as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _fold(text: str) -> str:
    return text.strip().casefold()
