"""``create_app(settings)``: the web process: logging, the views and the error handler on the collaborators the
composition root builds (``service.services``: the database, the policy, GenAuth clients, the workers).

Gunicorn calls ``create_app()`` with no argument, which reads the production settings from the environment and
fails with one message listing every missing variable. Tests and the sandbox pass ``Settings`` they built.
With ``ENFORCER_RUN_WORKER`` on, a worker thread runs inside each web process (single node), and so do two
watches that ask GenAuth in the background: whether it takes the access key (``service.genauth.access``) and
whether the departments, groups and roles the rules name exist (``service.enforcement.references``). Neither
can stop the process or make it unready: intake needs only the database (docs/architecture.md, principle 11).

Nothing about the policy can stop it: a file that does not validate (or cannot be read) leaves the last good
copy from the database in force, or no rules (``service.policy_source``), because intake needs no policy and
a gunicorn worker that fails to boot makes gunicorn stop every other one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from service.enforcement.references import REFERENCES_EXTENSION
from service.genauth.access import ACCESS_EXTENSION
from service.intake.admin import blueprint as admin_blueprint
from service.intake.context import EXTENSION, Runtime
from service.intake.errors import HttpError, error_body
from service.intake.views import blueprint, database_gauges
from service.logs import bind_request, configure_logging, log_event, unbind_request
from service.metrics import CachedReading
from service.services import Services
from service.settings import Settings, load_settings
from service.store.inbox import Inbox
from service.store.keys import deployment_key
from service.worker.loop import start_in_thread

logger = logging.getLogger(__name__)

WORKER_EXTENSION = "mfa_enforcer_worker"
WORKER_THREAD_EXTENSION = "mfa_enforcer_worker_threads"
WORKERS_EXTENSION = "mfa_enforcer_workers"


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Flask:
    if settings is None:
        settings = load_settings(role="web")
    if configure_logs:
        configure_logging(settings.log_format, settings.log_level)
    services = Services.open(settings)
    engine = services.database
    read_engine = services.read_engine or engine
    policies = services.policy_source()

    app = Flask(__name__)
    # One byte over the limit is let through to the view, which refuses it: a chunked body (no
    # Content-Length) is cut at MAX_CONTENT_LENGTH by the server rather than refused, so the view must see
    # that it went over (413) instead of parsing a truncated body (400).
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        engine=engine,
        policies=policies,
        inbox=Inbox(engine, wakeup=services.wakeup),
        read_engine=read_engine,
        digest_key=deployment_key(engine),
        gauges=CachedReading(lambda now: database_gauges(read_engine, now)),
        limiter=services.limiter,
        breaker=services.breaker,
        explainer=lambda: services.explainer(policies.current),
    )
    app.register_blueprint(blueprint)
    app.register_blueprint(admin_blueprint)
    app.before_request(_bind_request_id)
    app.after_request(_send_request_id)
    app.teardown_request(_unbind_request_id)
    app.register_error_handler(HttpError, _render_service_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)

    if settings.worker.run_in_web:
        # GenAuth refusing the key or down never stops intake: the access watch logs it, /readyz shows it.
        app.extensions[ACCESS_EXTENSION] = services.watch_access()
        app.extensions[REFERENCES_EXTENSION] = services.watch_references(policies.current)
        workers = services.workers(policies.enforceable)
        app.extensions[WORKER_EXTENSION] = workers[0]
        app.extensions[WORKERS_EXTENSION] = workers
        app.extensions[WORKER_THREAD_EXTENSION] = [start_in_thread(worker) for worker in workers]
    policy = policies.status()
    log_event(
        logger,
        "app_started",
        mode=settings.mode,
        rules=policy.rules,
        policy=policy.state,
        worker=settings.worker.run_in_web,
        genauth=settings.genauth.host,
    )
    return app


def stop_worker(app: Flask, *, wait: float = 30.0) -> None:
    """Stop the in-process workers after their current jobs, waiting up to ``wait`` seconds in all.

    Gunicorn's ``worker_exit`` hook calls this, so SIGTERM drains the workers within the grace period.
    """
    for worker in app.extensions.get(WORKERS_EXTENSION, []):
        worker.stop()
    for watch in (REFERENCES_EXTENSION, ACCESS_EXTENSION):
        if watch in app.extensions:
            app.extensions.pop(watch).stop()
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
    return error_body(code, status, message, errors), status


def _render_service_error(error: HttpError) -> tuple[dict[str, Any], int]:
    return _body(error.reason, error.status, error.message, error.errors)


def _render_http_exception(error: HTTPException) -> tuple[dict[str, Any], int]:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return _body(code, status, error.description or error.name)


def _render_unexpected(error: Exception) -> tuple[dict[str, Any], int]:
    logger.exception("request_crashed", extra={"fields": {}})
    return _body("internal_error", 500, "the service failed; the delivery was not recorded, send it again")
