"""Gunicorn settings for production (Procfile, container) and `mfa-enforcer serve` with real credentials.

Each web worker process runs `service.app:create_app()`; with ENFORCER_RUN_WORKER=true it also runs one
reconcile worker thread. Oversized request lines and headers are refused by the limits below, and the body is
bounded by ENFORCER_MAX_BODY_BYTES inside the app (413). A client that sends its body slowly holds one gthread
thread while it does (gunicorn has no per-request read timeout), so run behind a buffering proxy or ingress
(ingress-nginx buffers request bodies by default); see docs/operations.md, "Slow or abusive clients".
"""

import os
import tempfile

# Metrics from every worker process are merged through files in this folder (prometheus_client's
# multiprocess mode). It must exist before the workers import the service, so it is set here.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mfa-enforcer-metrics-")

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104 - a server binds all
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# 8 threads: concurrent deliveries share one commit (group commit, service/store/committing.py), so more
# requests in flight per process means fewer commits per delivery (docs/benchmarks.md).
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30  # a request that takes longer than this is a stuck worker
graceful_timeout = 30  # SIGTERM: in-flight requests and the current job get this long
keepalive = 5
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
    "formatters": {"service": {"()": "service.logs.formatter_from_environment"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stdout"}},
    # The service adds its own handler to the root logger in create_app(); gunicorn must not add another.
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def on_starting(server):
    """Check the settings, the policy and the schema once (upgrading it if allowed), before workers start.

    A problem stops the master with one readable message instead of every worker failing to boot.
    """
    import sys

    from service.errors import ConfigurationError
    from service.policy import load_policy
    from service.settings import load_settings
    from service.store.engine import create_engine
    from service.store.migrating import ensure_schema

    try:
        settings = load_settings(os.environ, role="web")
        load_policy(settings.policy_file)
        engine = create_engine(settings.database_url)
        try:
            ensure_schema(engine, migrate=settings.migrate_on_start)
        finally:
            engine.dispose()
    except ConfigurationError as error:
        print(f"mfa-enforcer: {error}", file=sys.stderr)
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
