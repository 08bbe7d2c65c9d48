"""The `/_emulator/*` test-control API: JSON endpoints (no auth) to read the journal and users and to queue
faults or change settings from another process, e.g. the e2e tests driving `python -m genauth_emulator`.

Beyond reading: create users and sign them in (which fires `user:created` / `login` to the webhooks and the
event WebSocket), switch pool and application MFA factors, create applications, and wait until automatic
webhook deliveries have been attempted. The event WebSocket's endpoints live in `events_control`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from genauth_emulator.directory import UnknownDepartmentError
from genauth_emulator.faults import Faults
from genauth_emulator.journal import Journal
from genauth_emulator.state import EmulatorState, UnknownApplicationError, UnknownUserError

JsonReply = tuple[dict[str, Any], int]


def control_blueprint(state: EmulatorState, journal: Journal, faults: Faults) -> Blueprint:
    """Build the control endpoints around the emulator's pool, journal and fault queue."""
    blueprint = Blueprint("emulator_control", __name__, url_prefix="/_emulator")

    @blueprint.get("/journal")
    def read_journal() -> JsonReply:
        return {"entries": [entry.to_dict() for entry in journal.entries(request.args.get("path"))]}, 200

    @blueprint.delete("/journal")
    def clear_journal() -> JsonReply:
        journal.clear()
        return {"cleared": True}, 200

    @blueprint.get("/faults")
    def read_faults() -> JsonReply:
        return {"faults": [fault.to_dict() for fault in faults.pending()], "latency": faults.latency}, 200

    @blueprint.post("/faults")
    def add_fault() -> JsonReply:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            return {"error": "send a JSON object with at least a string kind"}, 400
        try:
            fault = faults.add(
                spec["kind"],
                path=spec.get("path"),
                times=spec.get("times", 1),  # an explicit null means until cleared
                retry_after=spec.get("retry_after"),
                seconds=spec.get("seconds"),
            )
        except (TypeError, ValueError) as error:
            return {"error": str(error)}, 400
        return {"fault": fault.to_dict()}, 201

    @blueprint.delete("/faults")
    def clear_faults() -> JsonReply:
        faults.clear()
        return {"cleared": True}, 200

    @blueprint.get("/users")
    def list_users() -> JsonReply:
        described = []
        for user_id in state.user_ids():
            try:
                described.append(_describe(state, user_id))
            except UnknownUserError:
                continue  # deleted while we were listing
        return {"users": described}, 200

    @blueprint.post("/users")
    def create_user() -> JsonReply:
        """`{username?, email?, phone?, name?, departments?, externalId?, customData?, identities?}`."""
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return {"error": "send a JSON object"}, 400
        try:
            user = state.add_user(
                username=_optional_text(spec, "username"),
                email=_optional_text(spec, "email"),
                phone=_optional_text(spec, "phone"),
                name=_optional_text(spec, "name"),
                departments=[str(code) for code in spec.get("departments") or []],
                external_id=_optional_text(spec, "externalId"),
                custom_data=spec.get("customData") if isinstance(spec.get("customData"), dict) else None,
                identities=list(spec.get("identities") or []),
            )
        except UnknownDepartmentError as error:
            return {"error": f"unknown department {error}"}, 404
        except (TypeError, ValueError) as error:
            return {"error": str(error)}, 400
        return {"user": user}, 201

    @blueprint.post("/departments/<code>")
    def change_department(code: str) -> JsonReply:
        """`{name}`: rename the department (GenAuth's console edit), which emits `organization:node-updated`."""
        spec = request.get_json(silent=True)
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name.strip():
            return {"error": "send {name}"}, 400
        try:
            state.rename_department(code, name)
        except UnknownDepartmentError:
            return {"error": f"unknown department {code}"}, 404
        return {"department": {"code": code, "name": name}}, 200

    @blueprint.post("/users/<user_id>/login")
    def login(user_id: str) -> JsonReply:
        try:
            return {"user": state.login(user_id)}, 200
        except UnknownUserError:
            return {"error": f"unknown user {user_id}"}, 404

    @blueprint.get("/users/<user_id>/mfa")
    def user_mfa(user_id: str) -> JsonReply:
        try:
            return state.get_mfa(user_id), 200
        except UnknownUserError:
            return {"error": f"unknown user {user_id}"}, 404

    @blueprint.get("/info")
    def info() -> JsonReply:
        return _settings(state, faults), 200

    @blueprint.post("/settings")
    def change_settings() -> JsonReply:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return {"error": "send a JSON object"}, 400
        try:
            if "setMode" in spec:
                state.set_mode = spec["setMode"]
            if "tokenLifetime" in spec:
                state.token_lifetime = int(spec["tokenLifetime"])
            if "latency" in spec:
                faults.latency = max(0.0, float(spec["latency"]))
            if "autoDeliver" in spec:
                state.auto_deliver = spec["autoDeliver"] is True
            if "deliveryTimeout" in spec:
                state.delivery_timeout = float(spec["deliveryTimeout"])
            if "signatureSkew" in spec:
                state.signature_skew = float(spec["signatureSkew"])
        except (TypeError, ValueError) as error:
            return {"error": str(error)}, 400
        return _settings(state, faults), 200

    @blueprint.get("/mfa-settings")
    def read_mfa_settings() -> JsonReply:
        return _mfa_settings(state), 200

    @blueprint.post("/mfa-settings")
    def change_mfa_settings() -> JsonReply:
        """`{enabledFactors}` sets the pool's factors; `{enable}` / `{disable}` switch some on or off."""
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return {"error": "send {enabledFactors} or {enable} / {disable}"}, 400
        try:
            if isinstance(spec.get("enabledFactors"), list):
                state.set_global_mfa_factors(spec["enabledFactors"])
            if isinstance(spec.get("enable"), list):
                state.enable_global_mfa_factors(spec["enable"])
            if isinstance(spec.get("disable"), list):
                state.disable_global_mfa_factors(spec["disable"])
        except ValueError as error:
            return {"error": str(error)}, 400
        return _mfa_settings(state), 200

    @blueprint.post("/applications")
    def create_application() -> JsonReply:
        spec = request.get_json(silent=True) or {}
        if not isinstance(spec, dict):
            return {"error": "send {name?, appId?}"}, 400
        try:
            app_id = state.add_application(str(spec.get("name") or "Web App"), app_id=_optional_text(spec, "appId"))
        except ValueError as error:
            return {"error": str(error)}, 409
        return {"application": state.application(app_id), "enabledFactors": state.application_mfa_factors(app_id)}, 201

    @blueprint.post("/applications/<app_id>/mfa")
    def change_application_mfa(app_id: str) -> JsonReply:
        """`{enabledFactors?, disabledFactors?}` customises the app's factors; `{inherit: true}` undoes that."""
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return {"error": "send {enabledFactors?, disabledFactors?} or {inherit: true}"}, 400
        try:
            if spec.get("inherit") is True:
                factors = state.inherit_application_mfa(app_id)
            else:
                factors = state.update_application_mfa(
                    app_id, enabled=spec.get("enabledFactors") or [], disabled=spec.get("disabledFactors") or []
                )
        except UnknownApplicationError:
            return {"error": f"unknown application {app_id}"}, 404
        except (TypeError, ValueError) as error:
            return {"error": str(error)}, 400
        return {"enabledFactors": factors, "application": state.application(app_id)}, 200

    @blueprint.post("/deliveries/wait")
    def wait_for_deliveries() -> JsonReply:
        """Block until automatic webhook deliveries are attempted (`{timeout}` seconds, default 10)."""
        spec = request.get_json(silent=True) or {}
        try:
            timeout = float(spec.get("timeout", 10.0)) if isinstance(spec, dict) else 10.0
        except (TypeError, ValueError):
            return {"error": "timeout must be a number of seconds"}, 400
        idle = state.wait_for_deliveries(min(max(timeout, 0.0), 60.0))
        return {"idle": idle}, 200 if idle else 504

    @blueprint.post("/tokens/revoke")
    def revoke_tokens() -> JsonReply:
        state.revoke_tokens()
        return {"revoked": True}, 200

    @blueprint.post("/tokens/expire")
    def expire_tokens() -> JsonReply:
        state.expire_tokens()
        return {"expired": True}, 200

    return blueprint


def _settings(state: EmulatorState, faults: Faults) -> dict[str, Any]:
    return {
        "userpoolId": state.userpool_id,
        "accessKeyId": state.access_key_id,
        "setMode": state.set_mode,
        "tokenLifetime": state.token_lifetime,
        "latency": faults.latency,
        "autoDeliver": state.auto_deliver,
        "deliveryTimeout": state.delivery_timeout,
        "signatureSkew": state.signature_skew,
    }


def _mfa_settings(state: EmulatorState) -> dict[str, Any]:
    return {
        "enabledFactors": state.global_mfa_factors(),
        "applications": [
            {
                "appId": app["appId"],
                "appName": app["appName"],
                "customSecurityEnabled": app["customSecurityEnabled"],
                "enabledFactors": state.application_mfa_factors(app["appId"]),
            }
            for app in state.applications()
        ],
    }


def _optional_text(spec: dict[str, Any], name: str) -> str | None:
    value = spec.get(name)
    return None if value is None else str(value)


def _describe(state: EmulatorState, user_id: str) -> dict[str, Any]:
    user = state.user(user_id)
    departments = state.user_departments(user_id, with_paths=False, with_custom_data=False)
    return {
        "userId": user["userId"],
        "username": user["username"],
        "email": user["email"],
        "phone": user["phone"],
        "phoneCountryCode": user["phoneCountryCode"],
        "status": user["status"],
        "departments": [
            {key: item[key] for key in ("organizationCode", "departmentId", "code", "isMainDepartment")}
            for item in departments
        ],
        "mfa": state.get_mfa(user_id),
    }
