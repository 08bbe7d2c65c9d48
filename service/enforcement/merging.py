"""Read-merge-write of a user's MFA trigger data, as a pure function.

``merge_factors`` takes what ``get-mfa-status`` returned and the factors policy requires, and returns the whole
object to send back to ``set-mfa-status``: every field and factor it does not own is kept exactly as read (the
``mfaToken`` above all), a required factor that is missing is added and one that is disabled is enabled. It
never removes or disables anything. A factor the user cannot use (SMS with no phone on record, EMAIL with no
address) is reported as unsatisfiable and left out entirely rather than written half-way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from service.policy import contact_problem
from service.policy.facts import UserFacts

ENABLED = 1
FACTOR_ORDER = ("SMS", "EMAIL", "OTP", "FACE")


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


def factor_entries(trigger_data: dict[str, Any]) -> list[dict[str, Any]]:
    """``applicationMfa`` as a list of entries, tolerating null and the single-object doc artefact."""
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


def merge_factors(current: dict[str, Any], required: tuple[str, ...], facts: UserFacts) -> MergeResult:
    """Enable every satisfiable required factor, keeping everything else as read."""
    before = enabled_factors(current)
    merged = copy.deepcopy(current)
    entries = factor_entries(merged)
    unsatisfiable: dict[str, str] = {}
    added: list[str] = []
    for factor in ordered_factors(set(required)):
        if factor in before:
            continue
        missing = _bind_contact(merged, factor, facts)
        if missing:
            unsatisfiable[factor] = missing
            continue
        _enable(entries, factor)
        added.append(factor)
    if not added:
        return MergeResult(trigger_data=current, before=before, after=before, unsatisfiable=unsatisfiable)
    merged["applicationMfa"] = entries
    return MergeResult(
        trigger_data=merged,
        before=before,
        after=enabled_factors(merged),
        added=tuple(added),
        unsatisfiable=unsatisfiable,
    )


def _bind_contact(data: dict[str, Any], factor: str, facts: UserFacts) -> str | None:
    """Fill the phone or email a factor sends codes to; returns why not when there is none."""
    mfa_phone = data.get("mfaPhone") if _has_text(data.get("mfaPhone")) else None
    mfa_email = data.get("mfaEmail") if _has_text(data.get("mfaEmail")) else None
    problem = contact_problem(factor, facts, mfa_phone, mfa_email)
    if problem is not None:
        return problem
    if factor == "SMS" and mfa_phone is None:
        data["mfaPhone"] = facts.phone
        if facts.phone_country_code and not _has_text(data.get("mfaPhoneCountryCode")):
            data["mfaPhoneCountryCode"] = facts.phone_country_code
    elif factor == "EMAIL" and mfa_email is None:
        data["mfaEmail"] = facts.email
    return None


def _enable(entries: list[dict[str, Any]], factor: str) -> None:
    for entry in entries:
        if str(entry.get("mfaPolicy", "")).upper() == factor:
            entry["status"] = ENABLED
            return
    sorts = [entry["sort"] for entry in entries if isinstance(entry.get("sort"), int | float)]
    entries.append({"mfaPolicy": factor, "status": ENABLED, "sort": int(max(sorts)) + 1 if sorts else 0})


def _is_enabled(status: Any) -> bool:
    return status is True or (isinstance(status, int | float) and status == ENABLED) or status == "1"


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def ordered_factors(factors: set[str]) -> tuple[str, ...]:
    known = [factor for factor in FACTOR_ORDER if factor in factors]
    return tuple(known + sorted(factors - set(FACTOR_ORDER)))
