"""The webhook endpoint and the health probes.

Order of work for a delivery (ARCHITECTURE.md, "durable before 2xx"): check the secret in constant time,
bound the size, parse, validate and extract the users, commit the event record and the work rows in one
transaction, then answer 200. GenAuth is never called from here; the worker does that.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from service import metrics
from service.intake.authentication import is_authentic
from service.intake.context import runtime
from service.intake.errors import ForbiddenPoolError, InvalidDeliveryError, StoreUnavailableError, UnauthorizedError
from service.intake.parsing import decode_body
from service.intake.schemas import SUBJECT_SCHEMAS, interpret
from service.logs import log_event
from service.store.committing import GroupCommitTimeoutError
from service.store.engine import is_reachable
from service.store.inbox import Delivery
from service.store.queue import queue_stats
from service.store.sweeps import sweep_gauges

logger = logging.getLogger(__name__)

blueprint = Blueprint("intake", __name__)

POOL_HEADERS = ("x-authing-userpool-id", "x-genauth-userpool-id")
MAX_POOL_ID = 64


@blueprint.post("/webhooks/genauth")
def receive_webhook() -> tuple[dict[str, Any], int]:
    state = runtime()
    settings = state.settings.webhook
    if not is_authentic(request.headers, settings.secrets):
        log_event(logger, "webhook_unauthorized", level=logging.WARNING, remote=request.remote_addr)
        raise UnauthorizedError()
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH (the limit + 1) bounds this read
    if len(raw) > settings.max_body_bytes:
        raise RequestEntityTooLarge()
    body = decode_body(request.mimetype, raw)
    interpretation = interpret(body)
    g.event_name = interpretation.event_name
    header_pool = next((value for name in POOL_HEADERS if (value := request.headers.get(name))), None)
    if header_pool is not None and len(header_pool) > MAX_POOL_ID:
        raise InvalidDeliveryError("the user-pool header is too long", errors={"x-authing-userpool-id": ["Too long."]})
    pools = {pool for pool in (header_pool, *interpretation.userpool_ids) if pool}
    if settings.userpool_id and pools - {settings.userpool_id}:
        log_event(logger, "webhook_wrong_userpool", level=logging.WARNING, event_name=interpretation.event_name)
        raise ForbiddenPoolError()
    delivery = Delivery(
        event_name=interpretation.event_name,
        userpool_id=state.settings.pool_key,
        user_ids=interpretation.subjects.users,
        digest=hashlib.sha256(raw).hexdigest(),
        content_type=request.mimetype,
        outcome=interpretation.outcome,
        departments=interpretation.subjects.departments,
        groups=interpretation.subjects.groups,
        removed_user_ids=interpretation.subjects.removed,
    )
    try:
        event_id = state.inbox.record(delivery, now=time.time())
        g.outcome = delivery.outcome
    except (sa.exc.SQLAlchemyError, GroupCommitTimeoutError) as error:
        log_event(
            logger,
            "webhook_not_recorded",
            level=logging.ERROR,
            event_name=delivery.event_name,
            error_type=type(error).__name__,
        )
        raise StoreUnavailableError() from error
    log_event(
        logger,
        "webhook_received",
        event_id=event_id,
        event_name=delivery.event_name,
        outcome=delivery.outcome,
        users=len(delivery.user_ids),
        expansions=len(delivery.departments) + len(delivery.groups),
        removed=len(delivery.removed_user_ids),
    )
    return {
        "success": True,
        "eventId": event_id,
        "event": delivery.event_name,
        "outcome": delivery.outcome,
        "queued": len(delivery.user_ids),
    }, 200


@blueprint.before_request
def _start_clock() -> None:
    g.started = time.perf_counter()


@blueprint.after_request
def _count_delivery(response: Response) -> Response:
    """Every answer to a delivery is counted, by event and outcome (or the error it got)."""
    if request.endpoint == "intake.receive_webhook":
        outcome = g.get("outcome") or _ERROR_OUTCOMES.get(response.status_code, f"http_{response.status_code}")
        # Only known event names become label values, so a sender cannot grow the series without bound.
        event = g.get("event_name", "-")
        event = event if event in SUBJECT_SCHEMAS or event in ("test", "-") else "other"
        metrics.DELIVERIES.labels(event=event, outcome=outcome).inc()
        metrics.ACK_SECONDS.observe(time.perf_counter() - g.get("started", time.perf_counter()))
    return response


_ERROR_OUTCOMES = {
    400: "malformed",
    401: "unauthorized",
    403: "wrong_userpool",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "error",
    503: "store_unavailable",
}


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus exposition: this service's counters plus queue gauges read from the database."""
    engine = runtime().engine
    body, content_type = metrics.render(metrics.DatabaseCollector(lambda now: _database_gauges(engine, now)))
    return Response(body, content_type=content_type)


def _database_gauges(engine: sa.Engine, now: float) -> dict[str, float | None]:
    stats = queue_stats(engine, now=now)
    oldest = None if stats.oldest_due_at is None else max(0.0, now - stats.oldest_due_at)
    return {
        "queue_depth": stats.pending,
        "queue_leased": stats.leased,
        "queue_oldest_due_age_seconds": oldest or 0.0,
        "dead_letters": stats.dead,
        **sweep_gauges(engine),
    }


@blueprint.get("/healthz")
def healthz() -> dict[str, Any]:
    """Alive: the process answers."""
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready: the database answers and a policy is loaded."""
    state = runtime()
    database = is_reachable(state.engine)
    policy = state.policies.status()
    checks: dict[str, Any] = {
        "database": "ok" if database else "unreachable",
        "policy": f"{policy.rules} rule(s) from {policy.source}",
        "mode": state.settings.mode,
    }
    if policy.error:
        # Still ready: the last good rules are enforced. Operators see why the file on disk is not.
        checks["policy_error"] = policy.error
    return {"status": "ok" if database else "unavailable", "checks": checks}, 200 if database else 503
