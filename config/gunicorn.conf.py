"""Gunicorn settings for production (Procfile, container) and `mfa-enforcer serve` with real credentials.

Each web worker process runs `service.app:create_app()`; with ENFORCER_RUN_WORKER=true it also runs one
reconcile worker thread. Oversized request lines and headers are refused by the limits below, and the body is
bounded by ENFORCER_MAX_BODY_BYTES inside the app (413).

The worker class is gthread with one change (service/intake/connections.py): each request is read whole by
the worker's event loop, without a thread, and only then handed to one of the `threads`. A client that sends
half a request, or sends it slowly, costs a connection and never a thread, and a request that has not
arrived within ENFORCER_REQUEST_READ_TIMEOUT (10 s) is answered 408. So gunicorn is safe to face the Internet
without a buffering proxy (the Procfile path); a proxy still helps against floods of connections, which only
a per-client limit stops. gunicorn's own refusals (400, 414, 431, 501) are JSON like the app's. See
docs/operations.md, "Slow or abusive clients", and the measurements in docs/benchmarks.md.
"""

import os
import tempfile

from service.errors import ConfigurationError
from service.settings import GenAuthSettings, Settings, WebhookSettings, WorkerSettings, load_settings

try:
    settings, problem = load_settings(os.environ, role="web"), None
except ConfigurationError as error:  # on_starting says what is wrong and stops; these defaults are never served
    settings, problem = Settings(GenAuthSettings(), WebhookSettings(), WorkerSettings()), error

# Metrics from every worker process are merged through files in this folder (prometheus_client's
# multiprocess mode). It must exist before the workers import the service, so it is set here.
if not settings.metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mfa-enforcer-metrics-")

bind = f"{settings.host}:{settings.port}"
workers = settings.web_processes
worker_class = "service.intake.connections.BufferingThreadWorker"
# 8 threads: concurrent deliveries share one commit (group commit, service/store/committing.py), so more
# requests in flight per process means fewer commits per delivery (docs/benchmarks.md).
threads = settings.web_threads
timeout = 30  # a request that takes longer than this is a stuck worker
graceful_timeout = 30  # SIGTERM: in-flight requests and the current job get this long
keepalive = 5
worker_connections = 1000  # connections per process, arriving, waiting or kept alive (gunicorn's default)
limit_request_line = 4094
limit_request_fields = 60
limit_request_field_size = 8190
control_socket_disable = True  # gunicorn 25+ would open one under $HOME; the root filesystem is read-only
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'
# gunicorn's own lines and its access log go through the service's formatter (LOG_FORMAT=json|console).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"service": {"()": "service.logs.formatter", "log_format": settings.log_format}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stdout"}},
    # The service adds its own handler to the root logger in create_app(); gunicorn must not add another.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def on_starting(server):
    """Check the settings and the schema once (upgrading it if allowed), before workers start.

    A problem stops the master with one readable message instead of every worker failing to boot. The policy
    is not checked here: no policy problem may stop the service (each worker logs one, and /readyz shows it).
    """
    import sys

    from sqlalchemy.exc import SQLAlchemyError

    from service.services import open_engine

    try:
        if problem is not None:
            raise problem
        open_engine(settings.database_url, migrate=settings.migrate_on_start).dispose()
    except ConfigurationError as error:
        print(f"mfa-enforcer: {error}", file=sys.stderr)
        sys.exit(1)
    except SQLAlchemyError as error:  # the database is unreachable: one line, not a traceback
        reason = (str(getattr(error, "orig", None) or error).strip().splitlines() or ["?"])[0]
        print(f"mfa-enforcer: cannot use the database (DATABASE_URL): {reason}", file=sys.stderr)
        sys.exit(1)


def worker_exit(server, worker):
    """Let the in-process reconcile worker finish its current job."""
    from service.app import stop_worker

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        stop_worker(app)


def child_exit(server, worker):
    """Forget a dead worker's live gauges; its counters stay merged."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
