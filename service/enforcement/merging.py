"""Read-merge-write of a user's MFA trigger data, as pure functions.

``merge_factors`` takes what ``get-mfa-status`` returned and the factors policy requires, and returns the whole
object to send back to ``set-mfa-status``: every field and every ``applicationMfa`` entry it does not own is
kept exactly as read (the ``mfaToken`` above all, and entries it cannot interpret too), a required factor
that is missing is added and one that is disabled is enabled. It never removes or disables anything, and it
never replaces a stored ``mfaPhone``/``mfaEmail``, whatever its type. A factor the user cannot use (SMS with
no verified, well-formed phone; EMAIL likewise) is reported as unsatisfiable and left out entirely rather
than written half-way.

GenAuth offers no compare-and-set, so the reconciler reads the data back after a write: ``check_write`` says
whether GenAuth kept what was written (the factors enabled, and everything the service does not own), and
``restoration`` rebuilds the object that puts back what another writer lost. ``write_changes`` records exactly
what a write changed, so that an operator's ``revert`` can undo that and nothing else
(``service.enforcement.reverting``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.enforcement.errors import UnmergeableMfaDataError
from service.policy import contact_problem
from service.policy.facts import UserFacts
from service.policy.rules import FACTORS

ENABLED = 1
CONTACT_FIELDS = ("mfaPhone", "mfaPhoneCountryCode", "mfaEmail")
KEPT_FIELDS = ("mfaToken", *CONTACT_FIELDS)
"""Fields whose loss after a write is noticed and put back (a changed value is someone's choice; a lost one is not)."""


@dataclass(frozen=True)
class MergeResult:
    """What enforcing a set of factors would do to one user's trigger data."""

    trigger_data: dict[str, Any]
    """The whole object to write (equal to what was read when nothing changes)."""
    before: tuple[str, ...]
    """Factors enabled before."""
    after: tuple[str, ...]
    """Factors enabled after the write."""
    added: tuple[str, ...] = ()
    """Factors this merge enables."""
    unsatisfiable: dict[str, str] = field(default_factory=dict)
    """Factor -> why the user cannot be given it."""

    @property
    def is_changed(self) -> bool:
        return bool(self.added)


@dataclass(frozen=True)
class WriteCheck:
    """How the data read back after a write compares with what was written."""

    missing: tuple[str, ...] = ()
    """What this write set (factors, contacts) that GenAuth does not show."""
    lost: tuple[str, ...] = ()
    """What the service did not own, present before the write, that is gone now (factors, fields)."""

    @property
    def is_kept(self) -> bool:
        return not self.missing and not self.lost


def factor_entries(trigger_data: dict[str, Any]) -> list[dict[str, Any]]:
    """The object entries of ``applicationMfa`` (for reading; tolerates null and the single-object artefact)."""
    entries = trigger_data.get("applicationMfa")
    if isinstance(entries, dict):
        return [entries]
    if isinstance(entries, list):
        return [entry for entry in entries if isinstance(entry, dict)]
    return []


def enabled_factors(trigger_data: dict[str, Any]) -> tuple[str, ...]:
    """Factors whose entry has status 1, in the canonical order."""
    enabled = {
        str(entry.get("mfaPolicy", "")).upper()
        for entry in factor_entries(trigger_data)
        if _is_enabled(entry.get("status"))
    }
    return ordered_factors(enabled)


def stored_contact(trigger_data: dict[str, Any], key: str) -> str | None:
    """An MFA contact as stored: None when unset or blank; anything else (even a number or an object) counts
    as set, as text, so that it is never overwritten and is judged on its form like any other value."""
    value = trigger_data.get(key)
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return json.dumps(value, ensure_ascii=False)


def contact_problem_in(trigger_data: dict[str, Any], factor: str, facts: UserFacts) -> str | None:
    """Why ``factor`` cannot be given to the user whose stored trigger data this is (None: it can)."""
    return contact_problem(
        factor,
        facts,
        stored_contact(trigger_data, "mfaPhone"),
        stored_contact(trigger_data, "mfaEmail"),
        stored_contact(trigger_data, "mfaPhoneCountryCode"),
    )


def merge_factors(current: dict[str, Any], required: tuple[str, ...], facts: UserFacts) -> MergeResult:
    """Enable every satisfiable required factor, keeping everything else as read.

    Raises ``UnmergeableMfaDataError`` when ``applicationMfa`` has a shape that cannot be kept while adding.
    """
    before = enabled_factors(current)
    merged = copy.deepcopy(current)
    unsatisfiable: dict[str, str] = {}
    wanted: list[str] = []
    for factor in ordered_factors(set(required)):
        if factor in before:
            continue
        missing = _bind_contact(merged, factor, facts)
        if missing:
            unsatisfiable[factor] = missing
            continue
        wanted.append(factor)
    if not wanted:
        return MergeResult(trigger_data=current, before=before, after=before, unsatisfiable=unsatisfiable)
    entries = all_entries(merged)
    for factor in wanted:
        _enable(entries, factor)
    merged["applicationMfa"] = entries
    return MergeResult(
        trigger_data=merged,
        before=before,
        after=enabled_factors(merged),
        added=tuple(wanted),
        unsatisfiable=unsatisfiable,
    )


def check_write(read: dict[str, Any], written: dict[str, Any], verified: dict[str, Any]) -> WriteCheck:
    """Compare the data read back after a write (``verified``) with what was read before it and written."""
    now_enabled = set(enabled_factors(verified))
    missing = [factor for factor in enabled_factors(written) if factor not in now_enabled]
    lost = [factor for factor in enabled_factors(read) if factor not in now_enabled]
    for key in KEPT_FIELDS:
        if stored_contact(verified, key) is not None:
            continue
        if stored_contact(read, key) is not None:
            lost.append(key)
        elif stored_contact(written, key) is not None:
            missing.append(key)
    return WriteCheck(missing=tuple(dict.fromkeys(f for f in missing if f not in lost)), lost=tuple(lost))


def restoration(read: dict[str, Any], verified: dict[str, Any], lost: tuple[str, ...]) -> dict[str, Any]:
    """``verified`` with what was ``lost`` since ``read`` put back: factor entries as they were read, fields
    with their read value. Everything else in ``verified`` (a new token, a factor someone added) stays."""
    restored = copy.deepcopy(verified)
    entries = all_entries(restored)
    for name in lost:
        if name in KEPT_FIELDS:
            restored[name] = copy.deepcopy(read.get(name))
            continue
        original = next(
            (e for e in factor_entries(read) if str(e.get("mfaPolicy", "")).upper() == name), {"mfaPolicy": name}
        )
        same = [e for e in entries if isinstance(e, dict) and str(e.get("mfaPolicy", "")).upper() == name]
        if same:
            same[0]["status"] = original.get("status", ENABLED)
        else:
            entries.append(copy.deepcopy(original))
    restored["applicationMfa"] = entries
    return restored


def write_changes(read: dict[str, Any], written: dict[str, Any], digest: Callable[[str], str]) -> dict[str, Any]:
    """Exactly what writing ``written`` over ``read`` changed, as ``decisions.changes`` keeps it:
    ``entries``, one per factor enabled, ``{"factor": F}`` for an entry added, or with ``"was"``: the status it
    had; ``fields``, per contact filled, the ``digest`` of the value written (never the value), and what was
    there before (``present``, ``was``: a blank value, or nothing)."""
    already = set(enabled_factors(read))
    old = {str(entry.get("mfaPolicy", "")).upper(): entry for entry in factor_entries(read)}
    entries: list[dict[str, Any]] = []
    for factor in enabled_factors(written):
        if factor in already:
            continue
        was = {"was": old[factor].get("status")} if factor in old else {}
        entries.append({"factor": factor, **was})
    fields: dict[str, Any] = {}
    for key in CONTACT_FIELDS:
        value = stored_contact(written, key)
        if value is not None and stored_contact(read, key) is None:
            fields[key] = {"digest": digest(value), "present": key in read, "was": read.get(key)}
    return {"entries": entries, "fields": fields}


def all_entries(data: dict[str, Any]) -> list[Any]:
    """Every ``applicationMfa`` entry as read, objects or not, in a list the caller may append to."""
    entries = data.get("applicationMfa")
    if entries is None:
        return []
    if isinstance(entries, dict):
        return [entries]  # the single-object artefact of an old reference page; the write takes an array
    if isinstance(entries, list):
        return entries
    raise UnmergeableMfaDataError(
        f"GenAuth's MFA data for the user cannot be kept intact: applicationMfa is {type(entries).__name__}, not a list"
    )


def _bind_contact(data: dict[str, Any], factor: str, facts: UserFacts) -> str | None:
    """Fill the phone or email a factor sends codes to; returns why not when there is none fit for it."""
    problem = contact_problem_in(data, factor, facts)
    if problem is not None:
        return problem
    if factor == "SMS" and stored_contact(data, "mfaPhone") is None:
        data["mfaPhone"] = facts.phone
        if facts.phone_country_code and stored_contact(data, "mfaPhoneCountryCode") is None:
            data["mfaPhoneCountryCode"] = facts.phone_country_code
    elif factor == "EMAIL" and stored_contact(data, "mfaEmail") is None:
        data["mfaEmail"] = facts.email
    return None


def _enable(entries: list[Any], factor: str) -> None:
    for entry in entries:
        if isinstance(entry, dict) and str(entry.get("mfaPolicy", "")).upper() == factor:
            entry["status"] = ENABLED
            return
    sorts = [e["sort"] for e in entries if isinstance(e, dict) and isinstance(e.get("sort"), int | float)]
    entries.append({"mfaPolicy": factor, "status": ENABLED, "sort": int(max(sorts)) + 1 if sorts else 0})


def _is_enabled(status: Any) -> bool:
    return status is True or (isinstance(status, int | float) and status == ENABLED) or status == "1"


def ordered_factors(factors: set[str]) -> tuple[str, ...]:
    known = [factor for factor in FACTORS if factor in factors]
    return tuple(known + sorted(factors - set(FACTORS)))
