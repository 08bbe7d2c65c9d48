"""`create_emulator_app`: the Flask app that speaks GenAuth's management API (docs/genauth.md §2-3) on
`/api/v3/*` and the test-control API on `/_emulator/*`.

Every `/api/v3/*` request goes: fault check (and latency), route lookup, authentication (a management token
or an AK/SK signature; none for `get-management-token`), handler, GenAuth envelope with HTTP 200, journal
entry. `server.EmulatorServer` serves this app; tests may also use it directly through Flask's test client
(except `disconnect` faults, which need a real socket).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from flask import Flask, Response, request

from genauth_emulator import (
    authentication,
    department_endpoints,
    group_role_endpoints,
    mfa_endpoints,
    organization_endpoints,
    user_endpoints,
    webhook_endpoints,
)
from genauth_emulator.control import control_blueprint
from genauth_emulator.delivery import WebhookTarget, delivery_blueprint
from genauth_emulator.event_socket import EventSocketServer
from genauth_emulator.events_control import events_blueprint
from genauth_emulator.faults import API_PREFIX, Fault, Faults
from genauth_emulator.journal import Entry, Journal, redact_body, redact_headers
from genauth_emulator.parsing import ApiCall, Handler
from genauth_emulator.responses import ApiError, Reply, error_envelope, success_envelope
from genauth_emulator.state import EmulatorState

THROTTLE_MESSAGE = "Your request has exceeded the maximum limit, please try again later"
_GATEWAY_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def api_routes() -> dict[tuple[str, str], Handler]:
    """Map `(HTTP method, endpoint name)` to the function that answers it."""
    return {
        ("POST", authentication.TOKEN_ENDPOINT): authentication.get_management_token,
        ("GET", "get-user"): user_endpoints.get_user,
        ("GET", "get-user-batch"): user_endpoints.get_user_batch,
        ("POST", "list-users"): user_endpoints.list_users,
        ("GET", "list-users"): user_endpoints.list_users_legacy,
        ("GET", "get-user-departments"): department_endpoints.get_user_departments,
        ("GET", "list-department-members"): department_endpoints.list_department_members,
        ("GET", "get-user-groups"): group_role_endpoints.get_user_groups,
        ("GET", "get-user-roles"): group_role_endpoints.get_user_roles,
        ("GET", "list-group-members"): group_role_endpoints.list_group_members,
        ("GET", "list-groups"): group_role_endpoints.list_groups,
        ("GET", "list-roles"): group_role_endpoints.list_roles,
        ("GET", "get-mfa-status"): mfa_endpoints.get_mfa_status,
        ("POST", "set-mfa-status"): mfa_endpoints.set_mfa_status,
        ("GET", "get-user-mfa-info"): mfa_endpoints.get_user_mfa_info,
        ("GET", "get-global-mfa-settings"): mfa_endpoints.get_global_mfa_settings,
        ("POST", "update-global-mfa-settings"): mfa_endpoints.update_global_mfa_settings,
        ("POST", "disable-global-mfa-settings"): mfa_endpoints.disable_global_mfa_settings,
        ("POST", "update-application-mfa-settings"): mfa_endpoints.update_application_mfa_settings,
        ("GET", "get-mfa-trigger-data"): mfa_endpoints.get_mfa_trigger_data,
        ("GET", "get-application"): mfa_endpoints.get_application,
        ("GET", "list-applications"): mfa_endpoints.list_applications,
        ("GET", "list-organizations"): organization_endpoints.list_organizations,
        ("GET", "get-department"): organization_endpoints.get_department,
        ("GET", "get-all-departments"): organization_endpoints.get_all_departments,
        ("POST", "search-departments"): organization_endpoints.search_departments,
        ("POST", "create-webhook"): webhook_endpoints.create_webhook,
        ("GET", "list-webhooks"): webhook_endpoints.list_webhooks,
        ("GET", "get-webhook"): webhook_endpoints.get_webhook,
        ("POST", "update-webhook"): webhook_endpoints.update_webhook,
        ("POST", "delete-webhook"): webhook_endpoints.delete_webhook,
        ("GET", "get-webhook-event-list"): webhook_endpoints.get_webhook_event_list,
        ("POST", "get-webhook-logs"): webhook_endpoints.get_webhook_logs,
        ("POST", "trigger-webhook"): webhook_endpoints.trigger_webhook,
        ("GET", "list-events"): webhook_endpoints.list_events,
    }


def create_emulator_app(
    state: EmulatorState, journal: Journal, faults: Faults, events: EventSocketServer | None = None
) -> Flask:
    """Build the emulator app around the given pool, journal and fault queue (and event WebSocket, whose
    control endpoints it then serves)."""
    app = Flask("genauth_emulator")
    routes = api_routes()
    app.register_blueprint(control_blueprint(state, journal, faults))
    app.register_blueprint(delivery_blueprint(state, WebhookTarget()))
    app.register_blueprint(events_blueprint(events))

    @app.route(API_PREFIX + "<path:name>", methods=_METHODS)
    def management_api(name: str) -> Response:
        headers = {key.lower(): value for key, value in request.headers.items()}
        body = request.get_json(silent=True)
        reply = _answer(state, faults, routes, name, headers, body)
        journal.record(
            Entry(
                method=request.method,
                path=request.path,
                query=request.args.to_dict(flat=False),
                body=redact_body(body),
                headers=redact_headers(headers),
                status_code=None if reply is None else reply.status_code,
                http_status=None if reply is None else reply.http_status,
                time=time.time(),
            )
        )
        if reply is None:
            _drop_connection()
            return Response(status=500)  # never reaches the client: the socket is already shut
        return _response(reply)

    return app


def _answer(
    state: EmulatorState,
    faults: Faults,
    routes: dict[tuple[str, str], Handler],
    name: str,
    headers: dict[str, str],
    body: Any,
) -> Reply | None:
    fault = faults.take(API_PREFIX + name)
    delay = faults.latency + (fault.seconds or 0.0 if fault is not None and fault.kind == "latency" else 0.0)
    if delay > 0:
        time.sleep(delay)  # the emulated server is slow; the client is the one being tested
    if fault is not None and fault.kind in ("drop_write", "null_data"):
        return Reply(200, success_envelope({"success": True} if fault.kind == "drop_write" else None))
    if fault is not None and fault.kind != "latency":
        return _fault_reply(fault)
    handler = routes.get((request.method, name))
    if handler is None:
        return Reply(404, {"statusCode": 404, "message": f"Cannot {request.method} {request.path}"})
    try:
        if name != authentication.TOKEN_ENDPOINT:
            authentication.check_authorization(state, headers, request.method, request.path, request.args, body)
        data = handler(ApiCall(state=state, args=request.args, body=body))
    except ApiError as error:
        return Reply(200, error_envelope(error))
    return Reply(200, success_envelope(data))


def _fault_reply(fault: Fault) -> Reply | None:
    """The answer a fault stands for; None means "hang up without answering"."""
    if fault.kind == "status_429":
        return Reply(200, {"statusCode": 429, "message": THROTTLE_MESSAGE})
    if fault.kind == "status_500":
        return Reply(200, {"statusCode": 500, "message": "Internal server error"})
    if fault.kind == "http_429":
        extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return Reply(429, {"statusCode": 429, "message": THROTTLE_MESSAGE}, extra)
    if fault.kind == "http_500":
        return Reply(500, {"statusCode": 500, "message": "Internal Server Error"})
    if fault.kind == "http_503":
        # What a load balancer in front of the API answers: HTML, not the GenAuth envelope.
        return Reply(503, _GATEWAY_503, {"Content-Type": "text/html"})
    return None


def _response(reply: Reply) -> Response:
    if isinstance(reply.body, str):
        response = Response(reply.body, status=reply.http_status)
    else:
        response = Response(json.dumps(reply.body), status=reply.http_status, mimetype="application/json")
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response


def _drop_connection() -> None:
    """Shut the client's socket so it sees the connection close with no response."""
    connection = request.environ.get("werkzeug.socket")
    if not isinstance(connection, socket.socket):
        raise RuntimeError("a disconnect fault needs a real server (EmulatorServer), not a test client")
    connection.shutdown(socket.SHUT_RDWR)
