"""The webhook endpoint and the health probes.

Order of work for a delivery (docs/architecture.md, "durable before 2xx"): check the secret in constant time,
bound the size, count the values (before parsing), parse, validate and extract the users, check the user pool
and the number of subjects, commit the event record and the work rows in one transaction, then answer 200.
GenAuth is never called from here; the worker does that.

An event that changes the organisation tree (``TREE_EVENTS``) is subscribed to only when a rule reads
departments (``webhooks subscribe``); delivered while no rule does, it is recorded as ``ignored``, as an event
the service does not act on: a department's members are not listed, and no process's tree is told (a tree no
rule reads is not loaded).

With GENAUTH_USERPOOL_ID set the pool check fails closed: a delivery is refused (403) when any pool header
or any pool id in its body names another pool, and also when it names no pool at all. GenAuth sends
``x-authing-userpool-id`` with every delivery, test deliveries included; ``test`` deliveries (which change
nothing) are the one exception and are accepted without a pool, so a console or ``webhooks test`` check works
through proxies that drop the header.
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
from service.intake.errors import (
    ForbiddenPoolError,
    InvalidDeliveryError,
    MissingPoolError,
    StoreUnavailableError,
    TooManySubjectsError,
    UnauthorizedError,
)
from service.intake.parsing import decode_body
from service.intake.schemas import SUBJECT_SCHEMAS, TEST_EVENT, Interpretation, interpret
from service.logs import log_event
from service.policy.facts import Fact
from service.settings import WebhookSettings
from service.store.budget import brake_gauges, brake_readiness
from service.store.effectiveness import not_effective_summary
from service.store.effectiveness import readiness as effectiveness_readiness
from service.store.engine import write_problem
from service.store.errors import GroupCommitTimeoutError
from service.store.inbox import Delivery
from service.store.keys import body_digest
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
    body = decode_body(request.mimetype, raw, max_values=settings.max_values)
    interpretation = interpret(body)
    if interpretation.changes_tree and Fact.DEPARTMENTS not in state.policies.current().needs:
        interpretation = interpretation.ignored()  # no rule reads departments: as if not subscribed
    g.event_name = interpretation.event_name
    _check_pool(settings, interpretation)
    count = len(interpretation.subjects)
    if count > settings.max_subjects:
        raise TooManySubjectsError(
            f"the delivery names {count} subjects and at most {settings.max_subjects} are accepted "
            "(ENFORCER_MAX_SUBJECTS); nothing was stored, and a reconcile will find these users"
        )
    delivery = Delivery(
        event_name=interpretation.event_name,
        userpool_id=state.settings.pool_key,
        subjects=interpretation.subjects,
        digest=body_digest(state.digest_key, raw),
        content_type=request.mimetype,
        outcome=interpretation.outcome,
        changes_tree=interpretation.changes_tree,
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


def _check_pool(settings: WebhookSettings, interpretation: Interpretation) -> None:
    """Refuse a delivery for another pool, or (with GENAUTH_USERPOOL_ID set) one that names no pool."""
    # One value per name: the WSGI server joins a repeated header into one (a cheap lookup, where getlist walks
    # every header of the request).
    header_pools = [value for name in POOL_HEADERS if (value := request.headers.get(name))]
    # Header values are only compared, never stored or logged, so any text is fine; only the length is bounded.
    if any(len(value) > MAX_POOL_ID for value in header_pools):
        raise InvalidDeliveryError("the user-pool header is too long", errors={"x-authing-userpool-id": ["Too long."]})
    expected = settings.userpool_id
    if not expected:
        return
    pools = {*header_pools, *interpretation.userpool_ids}
    if pools - {expected}:
        log_event(logger, "webhook_wrong_userpool", level=logging.WARNING, event_name=interpretation.event_name)
        raise ForbiddenPoolError()
    if not pools and interpretation.event_name != TEST_EVENT:
        log_event(logger, "webhook_userpool_missing", level=logging.WARNING, event_name=interpretation.event_name)
        raise MissingPoolError()


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
    ready = problem is None
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
