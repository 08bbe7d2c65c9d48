"""`/_emulator/events*`: control endpoints for the event WebSocket (`event_socket`), so that a test driving
`python -m genauth_emulator` from another process can see subscribers, choose the message shape, publish
any frame (a user's event, raw garbage, an oversized one) and cut every connection."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from genauth_emulator.event_socket import SHAPES, EventSocketServer
from genauth_emulator.state import UnknownUserError

JsonReply = tuple[dict[str, Any], int]
_NO_EVENTS = {"error": "this emulator has no event WebSocket (started without one, or websockets is missing)"}


def events_blueprint(events: EventSocketServer | None) -> Blueprint:
    """Build the endpoints around the event server (all answer 404 when there is none)."""
    blueprint = Blueprint("emulator_events", __name__, url_prefix="/_emulator/events")

    @blueprint.get("")
    def describe() -> JsonReply:
        if events is None:
            return _NO_EVENTS, 404
        return {
            "url": events.url if events.is_running else None,
            "shape": events.shape,
            "subscribers": events.subscribed_codes(),
            "published": len(events.published),
            "refused": events.refused,
        }, 200

    @blueprint.post("/settings")
    def change_settings() -> JsonReply:
        spec = request.get_json(silent=True)
        if events is None:
            return _NO_EVENTS, 404
        if not isinstance(spec, dict) or spec.get("shape") not in SHAPES:
            return {"error": f"send {{shape}} with one of {', '.join(SHAPES)}"}, 400
        events.shape = spec["shape"]
        return {"shape": events.shape}, 200

    @blueprint.post("/publish")
    def publish() -> JsonReply:
        """`{code, userId}` (the user in the current shape), `{code, data}`, `{code, raw}`, `{code, size}`."""
        spec = request.get_json(silent=True)
        if events is None:
            return _NO_EVENTS, 404
        if not isinstance(spec, dict) or not isinstance(spec.get("code"), str):
            return {"error": "send {code, and one of userId, data, raw, size}"}, 400
        code = spec["code"]
        if isinstance(spec.get("userId"), str):
            try:
                sent = events.publish(code, events.state.user_view(spec["userId"]))
            except UnknownUserError:
                return {"error": f"unknown user {spec['userId']}"}, 404
        elif "data" in spec:
            sent = events.publish(code, spec["data"], shape=spec.get("shape") if spec.get("shape") in SHAPES else None)
        elif isinstance(spec.get("raw"), str):
            sent = events.publish_raw(code, spec["raw"])
        elif isinstance(spec.get("size"), int) and spec["size"] > 0:
            sent = events.publish_oversized(code, spec["size"])
        else:
            return {"error": "send one of userId, data, raw (text) or size (bytes)"}, 400
        return {"recipients": sent}, 200

    @blueprint.post("/drop")
    def drop() -> JsonReply:
        spec = request.get_json(silent=True) or {}
        if events is None:
            return _NO_EVENTS, 404
        abrupt = not (isinstance(spec, dict) and spec.get("abrupt") is False)
        return {"dropped": events.drop_connections(abrupt=abrupt)}, 200

    return blueprint
