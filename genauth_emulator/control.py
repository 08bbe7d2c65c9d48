"""The `/_emulator/*` test-control API: JSON endpoints (no auth) to read the journal and users and to queue
faults or change settings from another process, e.g. the e2e tests driving `python -m genauth_emulator`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from genauth_emulator.faults import Faults
from genauth_emulator.journal import Journal
from genauth_emulator.state import EmulatorState, UnknownUserError

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
        except (TypeError, ValueError) as error:
            return {"error": str(error)}, 400
        return _settings(state, faults), 200

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
    }


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
