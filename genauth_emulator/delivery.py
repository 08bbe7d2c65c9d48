"""Webhook delivery from the emulator, as GenAuth would send it: `/_emulator/webhook-target` says where (URL
and request key), `/_emulator/deliver` makes a change (for membership events) and sends the event.

The sandbox (`mfa-enforcer serve` without credentials) points the target at the service, so that
`mfa-enforcer sandbox deliver|move` can drive a whole round trip from the command line.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from flask import Blueprint, request

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from genauth_emulator.state import EmulatorState, UnknownDepartmentError, UnknownUserError

JsonReply = tuple[dict[str, Any], int]
USER_EVENTS = ("login", "register", "user:created", "user:updated")
MEMBER_EVENTS = ("organization:member-added", "organization:member-removed")


class WebhookTarget:
    """Where deliveries go; unset until configured."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.url: str | None = None
        self.secret: str = ""

    def set(self, url: str, secret: str) -> None:
        with self._lock:
            self.url, self.secret = url, secret


def delivery_blueprint(state: EmulatorState, target: WebhookTarget) -> Blueprint:
    blueprint = Blueprint("emulator_delivery", __name__, url_prefix="/_emulator")

    @blueprint.post("/webhook-target")
    def set_target() -> JsonReply:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            return {"error": "send {url, secret}"}, 400
        target.set(spec["url"], str(spec.get("secret", "")))
        return {"url": spec["url"]}, 200

    @blueprint.post("/deliver")
    def deliver() -> JsonReply:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return {"error": "send {event, userId, departmentCode?, encoding?}"}, 400
        if target.url is None:
            return {"error": "no webhook target: POST /_emulator/webhook-target first"}, 409
        event, user_id = spec.get("event"), spec.get("userId")
        department = spec.get("departmentCode")
        if event not in USER_EVENTS + MEMBER_EVENTS or not isinstance(user_id, str):
            return {"error": f"event must be one of {USER_EVENTS + MEMBER_EVENTS} and userId a string"}, 400
        try:
            if event in MEMBER_EVENTS:
                if not isinstance(department, str):
                    return {"error": "membership events need departmentCode"}, 400
                _change_membership(state, user_id, department, added=event.endswith("added"))
            body = event_body(state, event, user_id, department_code=department)
        except (UnknownUserError, UnknownDepartmentError) as error:
            return {"error": str(error)}, 404
        with WebhookSender(target.url, target.secret, state.userpool_id) as sender:
            try:
                response = sender.deliver(body, encoding=str(spec.get("encoding", "json")))
            except requests.RequestException as error:
                return {"error": f"delivery failed: {type(error).__name__}"}, 502
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        return {"status": response.status_code, "body": answer}, 200

    return blueprint


def _change_membership(state: EmulatorState, user_id: str, department: str, *, added: bool) -> None:
    member_of = {item["code"] for item in state.user_departments(user_id, with_paths=False, with_custom_data=False)}
    if added and department not in member_of:
        state.add_member(user_id, department)
    elif not added and department in member_of:
        state.remove_member(user_id, department)
