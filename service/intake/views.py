"""The webhook endpoint and the health probes.

Order of work for a delivery (docs/architecture.md, "durable before 2xx"): check the secret in constant time,
bound the size, count the values (before parsing), parse, validate and extract the users, check the user pool
and the number of subjects, commit the event record and the work rows in one transaction, then answer 200.
GenAuth is never called from here; the worker does that.

An event that changes the organisation tree (``TREE_EVENTS``) is subscribed to only when a rule reads
departments (``webhooks subscribe``); delivered while no rule does, it is recorded as ``ignored``, as an event
the service does not act on: a department's members are not listed, and no process's tree is told (a tree no
rule reads is not loaded).

The steps from parsing to the ``Delivery`` are ``service.intake.deliveries``, shared with gap recovery. With
GENAUTH_USERPOOL_ID set the pool check fails closed (see there); GenAuth sends ``x-authing-userpool-id`` with
every delivery, test deliveries included.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from service import metrics
from service.enforcement.references import REFERENCES_EXTENSION
from service.genauth.access import ACCESS_EXTENSION, readiness
from service.intake.authentication import is_authentic
from service.intake.context import runtime
from service.intake.deliveries import accepted_delivery, interpret_body
from service.intake.errors import (
    StoreUnavailableError,
    UnauthorizedError,
)
from service.intake.schemas import SUBJECT_SCHEMAS
from service.logs import log_event
from service.policy.facts import Fact
from service.store.budget import brake_gauges, brake_readiness
from service.store.effectiveness import not_effective_summary
from service.store.effectiveness import readiness as effectiveness_readiness
from service.store.engine import write_problem
from service.store.errors import GroupCommitTimeoutError
from service.store.queue import queue_stats
from service.store.sweeps import sweep_gauges
from service.store.webhook_log import last_read, show_moment

logger = logging.getLogger(__name__)

blueprint = Blueprint("intake", __name__)


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
    reads_departments = Fact.DEPARTMENTS in state.policies.current().needs
    interpretation = interpret_body(request.mimetype, raw, settings=settings, reads_departments=reads_departments)
    g.event_name = interpretation.event_name
    delivery = accepted_delivery(
        interpretation,
        raw,
        request.mimetype,
        header=request.headers.get,
        settings=settings,
        pool_key=state.settings.pool_key,
        digest_key=state.digest_key,
    )
    count = len(delivery.subjects)
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
    users = sum(subject.is_user for subject in delivery.subjects)
    log_event(
        logger,
        "webhook_received",
        event_id=event_id,
        event_name=delivery.event_name,
        outcome=delivery.outcome,
        users=users,
        expansions=count - users,
    )
    return {
        "success": True,
        "eventId": event_id,
        "event": delivery.event_name,
        "outcome": delivery.outcome,
        "queued": users,
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
    """Prometheus exposition: this service's counters plus queue gauges read from the database (cached for a few
    seconds per process, on the read engine: a scrape never waits for the writer)."""
    state = runtime()
    gauges = state.gauges or (lambda now: database_gauges(state.reader, now))
    body, content_type = metrics.render(metrics.DatabaseCollector(gauges), multiprocess_dir=state.settings.metrics_dir)
    return Response(body, content_type=content_type)


def database_gauges(engine: sa.Engine, now: float) -> dict[str, float | None]:
    """The gauges /metrics reads from the database."""
    stats = queue_stats(engine, now=now)
    oldest = None if stats.oldest_due_at is None else max(0.0, now - stats.oldest_due_at)
    return {
        "queue_depth": stats.pending,
        "queue_leased": stats.leased,
        "queue_oldest_due_age_seconds": oldest or 0.0,
        "dead_letters": stats.dead,
        **sweep_gauges(engine),
        "not_effective_users": not_effective_summary(engine)["users"],
        **brake_gauges(engine),
    }


@blueprint.get("/healthz")
def healthz() -> dict[str, Any]:
    """Alive: the process answers."""
    return {"status": "ok"}


@blueprint.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready: the database commits a write. The policy and GenAuth are reported, but never make the pod
    unready: intake needs neither."""
    state = runtime()
    problem = write_problem(state.engine)
    policy = state.policies.status()
    checks: dict[str, Any] = {
        "database": "ok" if problem is None else "unavailable",
        "policy": f"{policy.rules} rule(s) from {policy.source}",
        "policy_state": policy.state,
        "mode": state.settings.mode,
    }
    if problem is not None:
        checks["database_error"] = problem
    else:  # held users and a pause are shown, never a reason to be unready (docs/operations.md, "Brakes")
        checks.update(brake_readiness(state.engine))
    if policy.error:
        # Still ready: the last good rules are enforced. Operators see why the file on disk is not.
        checks["policy_error"] = policy.error
    references = current_app.extensions.get(REFERENCES_EXTENSION)
    if references is not None:  # a process that runs workers checks what the rules name (still ready)
        checks["policy_warnings"] = list(references.warnings)
    access = current_app.extensions.get(ACCESS_EXTENSION)
    if access is not None:  # a process that runs workers: GenAuth's answer to the key (still ready)
        checks.update(readiness(access.access, state.breaker))
    if problem is None:  # users GenAuth will not challenge for an enforced factor (still ready)
        checks.update(effectiveness_readiness(state.reader))
        read = last_read(state.reader)  # when gap recovery last read GenAuth's delivery log (still ready)
        checks["webhook_log_read_at"] = show_moment(read["webhook_log_read_at"])
        checks["webhook_log_recovered"] = read["webhook_log_recovered"]
    ready = problem is None
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
