"""Management API endpoints for per-user MFA: `get-mfa-status` (§3.2), `set-mfa-status` (§3.1) and
`get-user-mfa-info` (§3.3). Registered by `app.api_routes`."""

from __future__ import annotations

from typing import Any

from genauth_emulator.mfa import problem_with_trigger_data
from genauth_emulator.parsing import ApiCall, json_object, lookup_user, required
from genauth_emulator.responses import ApiError


def get_mfa_status(call: ApiCall) -> dict[str, Any]:
    """Answer the user's stored trigger data, every documented key present."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    return call.state.get_mfa(user_id)


def set_mfa_status(call: ApiCall) -> dict[str, Any]:
    """Validate and store trigger data (replace or merge, per the state's `set_mode`)."""
    body = json_object(call.body)
    if not isinstance(body.get("userId"), str) or not body["userId"]:
        raise ApiError(400, "userId must be a non-empty string")
    problem = problem_with_trigger_data(body.get("mfaTriggerData"))
    if problem:
        raise ApiError(400, problem)
    user_id = lookup_user(call.state, body["userId"], body.get("userIdType"))
    call.state.write_mfa(user_id, body["mfaTriggerData"])
    return {"success": True}


def get_user_mfa_info(call: ApiCall) -> dict[str, str]:
    """Answer which factors are enabled, as `enabled`/`disabled` strings."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    return call.state.mfa_info(user_id)
