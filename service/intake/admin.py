"""The admin API behind a bearer token (``ENFORCER_ADMIN_TOKEN``): the report, a user's decisions, a live
explanation, and the brakes (holds, release, discard, pause, resume, revert) with the audit trail. With no token
configured every route answers 404, as if it did not exist. A user is named by id, username, email or phone
(explain asks GenAuth; decisions go by what the service recorded). A route that acts records itself in the
audit trail as ``audit_actor()``: ``admin-api`` and a fingerprint of the token.
The brake routes call what the commands call (``service.store.operator_actions``) and answer with the shapes
``holds --json`` and ``audit --json`` print; an action takes a JSON body, bounded like a webhook's
(ENFORCER_MAX_BODY_BYTES), and refuses one without a ``reason`` (400, ``invalid_action``).

``explain`` reads GenAuth from within the request: it is an operator's question, not a webhook, and it needs
the GenAuth credentials (a web process without them answers 503). One client serves these requests, one at
a time, and it paces its calls with the process's own rate limiter, the one its workers use: explanations
and enforcement together stay within GENAUTH_RATE_LIMIT.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from service.enforcement.brakes import PAUSE_TTL
from service.enforcement.explaining import explain_user
from service.errors import ReportFilterError
from service.genauth.errors import GenAuthUserNotFoundError
from service.genauth.users import find_user
from service.intake.context import runtime
from service.intake.errors import (
    ExplainUnavailableError,
    InvalidActionError,
    MalformedBodyError,
    RevertRefusedError,
    UnauthorizedError,
    UnknownRuleError,
    UnknownUserError,
)
from service.reports import build_report
from service.store import operator_actions, reverts
from service.store.audit import admin_api_actor
from service.store.decisions import decisions_for_user
from service.store.people import recorded_user_id

blueprint = Blueprint("admin", __name__, url_prefix="/api")
_explain_lock = threading.Lock()
EXPLAIN_WAIT = 2.0


@blueprint.before_request
def _require_token() -> None:
    expected = runtime().settings.webhook.admin_token
    if not expected:
        raise NotFound()
    offered = request.headers.get("Authorization", "")
    scheme, _, token = offered.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthorizedError("a valid admin bearer token is required")


def audit_actor() -> str:
    """Who the audit trail names for this request: ``admin-api:<fingerprint of the token>``, never the token
    (``service.store.audit.admin_api_actor``). Only for a request that passed ``_require_token``."""
    return admin_api_actor(request.headers.get("Authorization", "").partition(" ")[2])


@blueprint.get("/report")
def report() -> dict[str, Any]:
    state = runtime()
    try:
        return build_report(
            state.engine,
            state.policies.current(),
            today=datetime.now(UTC).date(),
            rule=request.args.get("rule") or None,
            with_users=request.args.get("users", "").lower() in ("1", "true", "yes"),
            outcome=request.args.get("outcome") or None,
        )
    except ReportFilterError as error:
        raise UnknownRuleError(str(error)) from error


@blueprint.get("/users/<user_id>/decisions")
def user_decisions(user_id: str) -> dict[str, Any]:
    """``user_id`` may also be a username or email the service has recorded with a decision."""
    user_id = recorded_user_id(runtime().engine, user_id) or user_id
    limit = request.args.get("limit", "50")
    rows = decisions_for_user(runtime().engine, user_id, limit=max(1, min(int(limit) if limit.isdigit() else 50, 500)))
    return {"user_id": user_id, "decisions": rows}


@blueprint.get("/users/<user_id>/explain")
def user_explain(user_id: str) -> dict[str, Any]:
    state = runtime()
    genauth = state.settings.genauth
    if not (genauth.access_key_id and genauth.access_key_secret) or state.explainer is None:
        raise ExplainUnavailableError()
    # One explanation at a time per process, and never queue behind one for long: the web threads are
    # also the ones answering webhook deliveries.
    if not _explain_lock.acquire(timeout=EXPLAIN_WAIT):
        raise ExplainUnavailableError("another explanation is running; try again in a moment")
    try:
        if state.admin_reconciler is None:
            state.admin_reconciler = state.explainer()
        reconciler = state.admin_reconciler
        try:
            found = find_user(reconciler.client, user_id)  # an id, username, email or phone
            return explain_user(reconciler, found.user_id, userpool_id=state.settings.pool_key)
        except GenAuthUserNotFoundError as error:
            raise UnknownUserError(f"no user {user_id!r} in GenAuth (by id, username, email or phone)") from error
    finally:
        _explain_lock.release()


@blueprint.get("/holds")
def held_users() -> dict[str, Any]:
    """What ``mfa-enforcer holds --json`` prints."""
    return operator_actions.holds_view(runtime().engine)


@blueprint.post("/holds/release")
def release_holds() -> dict[str, Any]:
    """``{reason, all | max | rule}``: let those held users through, as ``holds release`` does."""
    body = _action_body()
    reason = _reason(body)
    most = body.get("max")
    rule = body.get("rule")
    if most is not None and (isinstance(most, bool) or not isinstance(most, int)):
        raise InvalidActionError("max: expected a whole number of users")
    if rule is not None and not isinstance(rule, str):
        raise InvalidActionError("rule: expected a rule name")
    scope = operator_actions.ReleaseScope(release_all=body.get("all") is True, most=most, rule=rule or None)
    problem = scope.problem()
    if problem:
        raise InvalidActionError(problem.replace("--", "").replace(" N", "").replace(" R", ""))
    released = operator_actions.release(runtime().engine, scope, reason=reason, actor=audit_actor(), now=time.time())
    return {"released": len(released), "users": released}


@blueprint.post("/holds/discard")
def discard_holds() -> dict[str, Any]:
    """``{reason}``: drop every held user's planned change, as ``holds discard`` does."""
    body = _action_body()
    dropped = operator_actions.discard(runtime().engine, reason=_reason(body), actor=audit_actor())
    return {"discarded": len(dropped), "users": dropped}


@blueprint.post("/pause")
def pause_writes() -> dict[str, Any]:
    """``{reason}``: stop every GenAuth write on every process, as ``pause`` does."""
    body = _action_body()
    changed = operator_actions.pause(runtime().engine, reason=_reason(body), actor=audit_actor(), now=time.time())
    return {"paused": True, "changed": changed}


@blueprint.post("/resume")
def resume_writes() -> dict[str, Any]:
    """``{reason}``: let writes flow again, as ``resume`` does; ``requeued``: the users the pause held."""
    body = _action_body()
    requeued = operator_actions.resume(
        runtime().engine, reason=_reason(body), actor=audit_actor(), now=time.time(), settle=PAUSE_TTL
    )
    return {"paused": False, "changed": requeued is not None, "requeued": requeued or 0}


@blueprint.post("/revert")
def revert_writes() -> dict[str, Any]:
    """``{reason, since | until | rule | user | sweep, dry_run, force}``: as ``revert`` does; times as
    ``?since=`` takes them. A revert refused while an enforce-mode rule covers users in scope answers 409
    (``revert_refused``)."""
    body = _action_body()
    reason = _reason(body)
    moments: dict[str, float | None] = {}
    for key in ("since", "until"):
        value = body.get(key)
        if isinstance(value, bool) or (value is not None and not isinstance(value, str | int | float)):
            raise InvalidActionError(f"{key}: expected a time")
        try:
            moments[key] = None if value is None else operator_actions.parse_moment(str(value))
        except ValueError as error:
            raise InvalidActionError(f"{key}: {error}") from error
    texts: dict[str, str | None] = {}
    for key in ("rule", "user"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 320):
            raise InvalidActionError(f"{key}: expected a name")
        texts[key] = value
    sweep = body.get("sweep")
    if sweep is not None and (isinstance(sweep, bool) or not isinstance(sweep, int) or sweep < 1):
        raise InvalidActionError("sweep: expected a sweep id")
    state = runtime()
    user = texts["user"]
    scope = reverts.RevertScope(
        since=moments["since"],
        until=moments["until"],
        rule=texts["rule"],
        user_id=None if user is None else recorded_user_id(state.engine, user) or user,
        sweep=sweep,
    )
    problem = operator_actions.revert_problem(scope)
    if problem:
        raise InvalidActionError(problem.replace("--", "").replace(" TIME", "").replace(" R", "").replace(" U", ""))
    force = body.get("force") is True
    enforcing = frozenset() if state.settings.is_audit else state.policies.current().enforcing
    plan = operator_actions.plan_revert(state.engine, scope, enforcing=enforcing, force=force)
    if plan.refused:
        raise RevertRefusedError(plan.refused)
    if body.get("dry_run") is True:
        return {**plan.as_json(), "dry_run": True}
    claimed = operator_actions.revert(
        state.engine, scope, plan, reason=reason, actor=audit_actor(), now=time.time(), force=force
    )
    return {**plan.as_json(), "claimed": len(claimed)}


@blueprint.get("/audit")
def audit_trail() -> dict[str, Any]:
    """What ``audit --json`` prints (``?since=``: ISO 8601, UNIX seconds or an age; ``?limit=``, at most 10000),
    under ``records``."""
    since_text = request.args.get("since")
    try:
        since = None if since_text is None else operator_actions.parse_moment(since_text)
    except ValueError as error:
        raise InvalidActionError(f"since: {error}") from error
    limit = request.args.get("limit", "1000")
    count = max(1, min(int(limit) if limit.isdigit() else 1000, 10000))
    return {"records": operator_actions.audit_view(runtime().engine, since=since, limit=count)}


def _action_body() -> dict[str, Any]:
    """The JSON object an action was sent (an empty body is an empty object), bounded like a webhook's."""
    limit = runtime().settings.webhook.max_body_bytes
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH (the limit + 1) bounds this read
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedBodyError("the body is not JSON") from error
    if not isinstance(body, dict):
        raise MalformedBodyError("the body must be a JSON object")
    return body


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or operator_actions.reason_problem(reason):
        raise InvalidActionError(operator_actions.REASON_REQUIRED)
    return reason.strip()
