"""``mfa-enforcer serve`` (web, plus the worker thread) and ``mfa-enforcer worker`` (the worker alone).

``serve`` without ``GENAUTH_ACCESS_KEY_ID`` starts the sandbox (bundled emulator, sample users); with it,
it runs gunicorn with ``config/gunicorn.conf.py``, exactly as the Procfile and the container do.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click
from prometheus_client import start_http_server

from service.app import build_workers
from service.cli.common import settings_or_exit
from service.errors import ConfigurationError
from service.policy import PolicyError
from service.policy_source import PolicySource
from service.settings import WorkerSettings, is_sandbox
from service.store.engine import create_engine
from service.store.migrating import ensure_schema, upgrade
from service.worker.loop import start_in_thread

GUNICORN_CONFIG = Path("config/gunicorn.conf.py")


@click.command()
def serve() -> None:
    """Run the web service on $PORT (the sandbox when no GenAuth credentials are set)."""
    if is_sandbox(os.environ):
        from service.cli.sandbox import run_sandbox

        run_sandbox()
        return
    # Fail here, once, with the full list of problems, rather than in every gunicorn worker.
    settings = settings_or_exit(logs=False, role="web")
    engine = create_engine(settings.database_url)
    try:
        upgrade(engine)  # `make run` prepares the database; production runs `db upgrade` as its release step
    finally:
        engine.dispose()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    arguments = [str(gunicorn), "--config", str(GUNICORN_CONFIG), "service.app:create_app()"]
    os.execv(arguments[0], arguments)  # noqa: S606 - replaces this process with gunicorn, as in production


@click.command()
def worker() -> None:
    """Run the worker until SIGTERM or Ctrl-C; the current job finishes first."""
    settings = settings_or_exit(role="worker")
    try:
        policies = PolicySource(settings.policy_file, check_interval=settings.policy_check_interval)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    engine = create_engine(settings.database_url)
    try:
        ensure_schema(engine, migrate=settings.migrate_on_start)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from error
    first, *others = build_workers(settings, engine, policy_getter=policies.current)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        for running in (first, *others):
            running.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    threads = [start_in_thread(running) for running in others]  # ENFORCER_WORKER_THREADS > 1
    first.run()  # returns once stopped, after its current job
    for thread in threads:
        thread.join()  # each finishes its current job too
    engine.dispose()


@click.command(name="worker-alive")
@click.option("--max-age", default=300.0, show_default=True, help="Seconds since the worker's last heartbeat.")
def worker_alive(max_age: float) -> None:
    """Exit 0 when the worker on this host showed a heartbeat recently (a Kubernetes liveness probe)."""
    path = Path(os.environ.get("ENFORCER_HEARTBEAT_FILE", "").strip() or WorkerSettings().heartbeat_file)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError as error:
        raise click.ClickException(f"no worker heartbeat at {path}") from error
    if age > max_age:
        raise click.ClickException(f"the worker's last heartbeat was {age:.0f} s ago (limit {max_age:.0f} s)")
    click.echo(f"worker alive: heartbeat {age:.1f} s ago")
