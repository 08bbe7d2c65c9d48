"""``create_app(settings)``: wires settings, logging, the database, the policy, the views and the error handler.

Gunicorn calls ``create_app()`` with no argument, which reads the production settings from the environment and
fails with one message listing every missing variable. Tests and the sandbox pass ``Settings`` they built.
With ``ENFORCER_RUN_WORKER`` on, a worker thread runs inside each web process (single node).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from service.enforcement.reconciling import Reconciler
from service.genauth.client import GenAuthClient
from service.genauth.throttling import RateLimiter
from service.intake.admin import blueprint as admin_blueprint
from service.intake.context import EXTENSION, Runtime
from service.intake.errors import HttpError
from service.intake.views import blueprint
from service.logs import bind_request, configure_logging, log_event, unbind_request
from service.policy_source import PolicySource
from service.settings import Settings, load_settings
from service.store.engine import create_engine
from service.store.inbox import Inbox
from service.store.migrating import ensure_schema
from service.worker.loop import Worker, default_owner, start_in_thread
from service.worker.sweeping import PeriodicSweep, userpool_id_for

logger = logging.getLogger(__name__)

WORKER_EXTENSION = "mfa_enforcer_worker"
WORKER_THREAD_EXTENSION = "mfa_enforcer_worker_threads"
WORKERS_EXTENSION = "mfa_enforcer_workers"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Flask:
    if settings is None:
        settings = load_settings(os.environ, role="web")
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    policies = PolicySource(settings.policy_file, check_interval=settings.policy_check_interval)
    engine = create_engine(settings.database_url)
    ensure_schema(engine, migrate=settings.migrate_on_start)

    app = Flask(__name__)
    # One byte over the limit is let through to the view, which refuses it: a chunked body (no
    # Content-Length) is cut at MAX_CONTENT_LENGTH by the server rather than refused, so the view must see
    # that it went over (413) instead of parsing a truncated body (400).
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = Runtime(settings=settings, engine=engine, policies=policies, inbox=Inbox(engine))
    app.register_blueprint(blueprint)
    app.register_blueprint(admin_blueprint)
    app.before_request(_bind_request_id)
    app.after_request(_send_request_id)
    app.teardown_request(_unbind_request_id)
    app.register_error_handler(HttpError, _render_service_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)

    if settings.worker.run_in_web:
        workers = build_workers(settings, engine, policy_getter=policies.current)
        app.extensions[WORKER_EXTENSION] = workers[0]
        app.extensions[WORKERS_EXTENSION] = workers
        app.extensions[WORKER_THREAD_EXTENSION] = [start_in_thread(worker) for worker in workers]
    log_event(
        logger,
        "app_started",
        mode=settings.mode,
        rules=len(policies.current().rules),
        worker=settings.worker.run_in_web,
        genauth=settings.genauth.host,
    )
    return app


def build_worker(
    settings: Settings,
    engine: Any,
    *,
    policy_getter: Any,
    limiter: RateLimiter | None = None,
    owner: str | None = None,
    sweeps: bool = True,
) -> Worker:
    """A worker with its own GenAuth client (one pooled session per worker thread).

    ``limiter``: a rate limit shared with the process's other workers (a new one when None). ``sweeps``:
    whether this worker runs the periodic reconcile sweeps (one worker per process does).
    """
    if limiter is None:
        limiter = RateLimiter(settings.genauth.rate_limit, settings.genauth.rate_burst)
    client = GenAuthClient(settings.genauth, limiter=limiter)
    reconciler = Reconciler(client, policy_getter, force_audit=settings.is_audit)
    sweeper = None
    if sweeps:
        sweeper = PeriodicSweep(
            engine,
            client,
            policy_getter,
            interval=settings.worker.reconcile_interval,
            userpool_id=userpool_id_for(settings),
        )
    return Worker(engine, reconciler, settings.worker, owner=owner, sweeper=sweeper)


def build_workers(settings: Settings, engine: Any, *, policy_getter: Any) -> list[Worker]:
    """``ENFORCER_WORKER_THREADS`` workers for one process: one GenAuth rate limit for all of them (so the
    per-process limit holds), distinct lease owners, and the periodic sweeps in the first only."""
    limiter = RateLimiter(settings.genauth.rate_limit, settings.genauth.rate_burst)
    base = default_owner()
    count = settings.worker.threads
    return [
        build_worker(
            settings,
            engine,
            policy_getter=policy_getter,
            limiter=limiter,
            owner=base if count == 1 else f"{base}:{index}",
            sweeps=index == 0,
        )
        for index in range(count)
    ]


def stop_worker(app: Flask, *, wait: float = 30.0) -> None:
    """Stop the in-process workers after their current jobs, waiting up to ``wait`` seconds in all.

    Gunicorn's ``worker_exit`` hook calls this, so SIGTERM drains the workers within the grace period.
    """
    for worker in app.extensions.get(WORKERS_EXTENSION, []):
        worker.stop()
    deadline = time.monotonic() + wait
    for thread in app.extensions.get(WORKER_THREAD_EXTENSION, []):
        if isinstance(thread, threading.Thread):
            thread.join(max(0.0, deadline - time.monotonic()))


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}\Z")


def _bind_request_id() -> None:
    """Every log line of a request carries its id: the caller's X-Request-Id if sane, else a fresh one."""
    offered = request.headers.get("X-Request-Id", "")
    g.request_id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
    g.log_token = bind_request(request_id=g.request_id)


def _send_request_id(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    return response


def _unbind_request_id(_error: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        unbind_request(token)


def _body(code: str, status: int, message: str, errors: Any = None) -> tuple[dict[str, Any], int]:
    return {"code": code, "status": status, "message": message, "errors": errors or {}}, status


def _render_service_error(error: HttpError) -> tuple[dict[str, Any], int]:
    return _body(error.reason, error.status, error.message, error.errors)


def _render_http_exception(error: HTTPException) -> tuple[dict[str, Any], int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return _body(code, status, error.description or error.name)


def _render_unexpected(error: Exception) -> tuple[dict[str, Any], int]:
    logger.exception("request_crashed", extra={"fields": {}})
    return _body("internal_error", 500, "the service failed; the delivery was not recorded, send it again")
