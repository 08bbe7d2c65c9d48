"""``mfa-enforcer serve`` (web, plus the worker thread) and ``mfa-enforcer worker`` (the worker alone).

``serve`` without ``GENAUTH_ACCESS_KEY_ID`` starts the sandbox (bundled emulator, sample users); with it,
it runs gunicorn with ``config/gunicorn.conf.py``, exactly as the Procfile and the container do.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click
from prometheus_client import start_http_server

from service.app import build_worker
from service.cli.common import settings_or_exit
from service.policy import PolicyError
from service.policy_source import PolicySource
from service.settings import is_sandbox
from service.store.engine import create_engine, prepare_database

GUNICORN_CONFIG = Path("config/gunicorn.conf.py")


@click.command()
def serve() -> None:
    """Run the web service on $PORT (the sandbox when no GenAuth credentials are set)."""
    if is_sandbox(os.environ):
        from service.cli.sandbox import run_sandbox

        run_sandbox()
        return
    settings_or_exit(logs=False)  # fail here, once, with the full list, rather than in every gunicorn worker
    gunicorn = Path(sys.executable).with_name("gunicorn")
    arguments = [str(gunicorn), "--config", str(GUNICORN_CONFIG), "service.app:create_app()"]
    os.execv(arguments[0], arguments)  # noqa: S606 - replaces this process with gunicorn, as in production


@click.command()
def worker() -> None:
    """Run the worker until SIGTERM or Ctrl-C; the current job finishes first."""
    settings = settings_or_exit()
    try:
        policies = PolicySource(settings.policy_file, check_interval=settings.policy_check_interval)
    except PolicyError as error:
        raise click.ClickException(str(error)) from error
    engine = create_engine(settings.database_url)
    prepare_database(engine)
    running = build_worker(settings, engine, policy_getter=policies.current)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        running.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    running.run()
    engine.dispose()
