"""Management API endpoints for MFA: per user `get-mfa-status` (§3.2), `set-mfa-status` (§3.1) and
`get-user-mfa-info` (§3.3); for the layers above them (see `mfa_settings` for what the SDKs say)
`get-global-mfa-settings`, `update-global-mfa-settings`, `disable-global-mfa-settings`,
`update-application-mfa-settings` and `get-mfa-trigger-data`; and `get-application` / `list-applications`.
Registered by `app.api_routes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genauth_emulator.mfa import problem_with_trigger_data
from genauth_emulator.mfa_settings import APP_NOT_FOUND_API_CODE, UnknownApplicationError
from genauth_emulator.parsing import ApiCall, json_object, lookup_user, paginated, query_page_and_limit, required
from genauth_emulator.responses import ApiError


def get_mfa_status(call: ApiCall) -> dict[str, Any]:
    """Answer the user's stored trigger data, every documented key present."""
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    return call.state.get_mfa(user_id)


def set_mfa_status(call: ApiCall) -> dict[str, Any]:
    """Validate and store trigger data (replace or merge, per the state's `set_mode`). Optional strings may be
    absent or null: the SDKs leave unset fields out of the body."""
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


def get_global_mfa_settings(call: ApiCall) -> dict[str, Any]:
    """Answer `{enabledFactors}`: the factors enabled for the whole pool."""
    return {"enabledFactors": call.state.global_mfa_factors()}


def update_global_mfa_settings(call: ApiCall) -> dict[str, Any]:
    """Make `enabledFactors` the pool's enabled factors; answer them."""
    factors = _factor_list(json_object(call.body), "enabledFactors", required_field=True)
    return {"enabledFactors": _settings_call(lambda: call.state.set_global_mfa_factors(factors))}


def disable_global_mfa_settings(call: ApiCall) -> dict[str, Any]:
    """Switch off the factors in `disableFactors`; answer the ones still enabled."""
    factors = _factor_list(json_object(call.body), "disableFactors", required_field=True)
    return {"enabledFactors": _settings_call(lambda: call.state.disable_global_mfa_factors(factors))}


def update_application_mfa_settings(call: ApiCall) -> dict[str, Any]:
    """Enable and disable factors for one app (which then stops inheriting the pool's); answer its factors."""
    body = json_object(call.body)
    app_id = body.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise ApiError(400, "appId is required")
    enabled = _factor_list(body, "enabledFactors")
    disabled = _factor_list(body, "disabledFactors")
    return {
        "enabledFactors": _settings_call(
            lambda: call.state.update_application_mfa(app_id, enabled=enabled, disabled=disabled), app_id
        )
    }


def get_mfa_trigger_data(call: ApiCall) -> dict[str, Any]:
    """Answer the user's trigger data as the app sees it: only the factors the app challenges."""
    app_id = required(call.args, "appId")
    user_id = lookup_user(call.state, required(call.args, "userId"), call.args.get("userIdType"))
    data: dict[str, Any] = _settings_call(lambda: call.state.mfa_trigger_data(app_id, user_id), app_id)
    return data


def get_application(call: ApiCall) -> dict[str, Any]:
    """Answer one `ApplicationDto` (with `customSecurityEnabled`)."""
    app_id = required(call.args, "appId")
    data: dict[str, Any] = _settings_call(lambda: call.state.application(app_id), app_id)
    return data


def list_applications(call: ApiCall) -> dict[str, Any]:
    """Answer one page of applications, oldest first, optionally those whose name contains `keywords`."""
    page, limit = query_page_and_limit(call.args)
    needle = call.args.get("keywords", "").strip().casefold()
    apps = [app for app in call.state.applications() if needle in app["appName"].casefold()]
    return paginated(apps, page, limit)


def _factor_list(body: dict[str, Any], name: str, *, required_field: bool = False) -> list[str]:
    value = body.get(name)
    if value is None and not required_field:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, f"{name} must be an array of factor names")
    return value


def _settings_call(action: Callable[[], Any], app_id: str | None = None) -> Any:
    try:
        return action()
    except UnknownApplicationError:
        raise ApiError(404, f"Application {app_id} does not exist", APP_NOT_FOUND_API_CODE) from None
    except ValueError as error:
        raise ApiError(400, str(error)) from None
