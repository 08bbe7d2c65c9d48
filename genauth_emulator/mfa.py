"""MFA trigger data (docs/genauth.md §3.1-3.3): its default shape, validation of writes, replace/merge, and the
enabled/disabled summary `get-user-mfa-info` reports.

Pure functions over plain dicts; `state.EmulatorState` stores the data and `mfa_endpoints` validates requests.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

MFA_POLICIES = ("SMS", "EMAIL", "OTP", "FACE")
SET_MODES = ("replace", "merge")
STRING_FIELDS = (
    "mfaPhone",
    "mfaPhoneCountryCode",
    "mfaEmail",
    "nickname",
    "username",
    "phone",
    "phoneCountryCode",
)
BOOLEAN_FIELDS = ("faceMfaEnabled", "totpMfaEnabled")
# get-user-mfa-info key for each factor.
INFO_KEYS = {"OTP": "totpStatus", "FACE": "faceMfaStatus", "SMS": "smsMfaStatus", "EMAIL": "emailMfaStatus"}


def normalise_factors(factors: Sequence[Mapping[str, Any] | str]) -> list[dict[str, Any]]:
    """Turn helper input (`"SMS"` or full `{mfaPolicy, status, sort}` dicts) into `applicationMfa` entries."""
    entries: list[dict[str, Any]] = []
    for position, factor in enumerate(factors):
        if isinstance(factor, str):
            entries.append({"mfaPolicy": factor, "status": 1, "sort": position})
        else:
            entries.append(dict(factor))
    return entries


def trigger_view(stored: Mapping[str, Any]) -> dict[str, Any]:
    """What `get-mfa-status` answers: every documented key (null/false when unset), then the stored values."""
    view: dict[str, Any] = {"mfaToken": None}
    view.update(dict.fromkeys(STRING_FIELDS))
    view.update(dict.fromkeys(BOOLEAN_FIELDS, False))
    view["applicationMfa"] = []
    view.update(copy.deepcopy(dict(stored)))
    return view


def problem_with_trigger_data(data: Any) -> str | None:
    """Return a message describing what is wrong with an `mfaTriggerData` value, or None if it is valid."""
    if not isinstance(data, dict):
        return "mfaTriggerData must be an object"
    if not isinstance(data.get("mfaToken"), str):
        return "mfaTriggerData.mfaToken must be a string"
    factors = data.get("applicationMfa")
    if not isinstance(factors, list):
        return "mfaTriggerData.applicationMfa must be an array"
    for index, factor in enumerate(factors):
        problem = _problem_with_factor(factor)
        if problem:
            return f"mfaTriggerData.applicationMfa[{index}]: {problem}"
    for name in STRING_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], str):
            return f"mfaTriggerData.{name} must be a string"
    for name in BOOLEAN_FIELDS:
        if data.get(name) is not None and not isinstance(data[name], bool):
            return f"mfaTriggerData.{name} must be a boolean"
    return None


def _problem_with_factor(factor: Any) -> str | None:
    if not isinstance(factor, dict):
        return "must be an object"
    if factor.get("mfaPolicy") not in MFA_POLICIES:
        return f"mfaPolicy must be one of {', '.join(MFA_POLICIES)}"
    for name in ("status", "sort"):
        if not _is_number(factor.get(name)):
            return f"{name} must be a number"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def replaced(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """Replace semantics: keep exactly what was sent minus top-level nulls; keep the old mfaToken if none came."""
    result = {key: copy.deepcopy(value) for key, value in sent.items() if value is not None}
    if "mfaToken" not in result and "mfaToken" in stored:
        result["mfaToken"] = stored["mfaToken"]
    return result


def merged(stored: Mapping[str, Any], sent: Mapping[str, Any]) -> dict[str, Any]:
    """Merge semantics: `applicationMfa` entries merge by `mfaPolicy`; other non-null fields overwrite."""
    result = copy.deepcopy(dict(stored))
    for key, value in sent.items():
        if value is None:
            continue
        if key == "applicationMfa":
            result[key] = _merge_factors(result.get(key) or [], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_factors(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    factors = [dict(entry) for entry in old]
    for entry in new:
        positions = [i for i, existing in enumerate(factors) if existing.get("mfaPolicy") == entry.get("mfaPolicy")]
        if positions:
            factors[positions[0]] = dict(entry)
        else:
            factors.append(dict(entry))
    return factors


def mfa_info(stored: Mapping[str, Any]) -> dict[str, str]:
    """Summarise `applicationMfa` as `get-user-mfa-info` does: `enabled` when a factor has status 1."""
    enabled = {
        entry.get("mfaPolicy")
        for entry in stored.get("applicationMfa") or []
        if isinstance(entry, dict) and entry.get("status") == 1
    }
    return {key: ("enabled" if policy in enabled else "disabled") for policy, key in INFO_KEYS.items()}
