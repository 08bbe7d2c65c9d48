"""``mfa-enforcer serve`` (web, plus the worker thread) and ``mfa-enforcer worker`` (the worker alone).

``serve`` is always production: it runs gunicorn with ``config/gunicorn.conf.py``, exactly as the Procfile and
the container do, and never starts the sandbox (``mfa-enforcer sandbox`` does that, when asked). Before it
hands over to gunicorn, and before the worker starts, the process checks what would otherwise fail later with
a traceback in every gunicorn worker: the settings (every problem listed), the port (naming the variable that
moves it), the database and its schema.

GenAuth is not one of those checks for ``serve``: a process that takes deliveries starts whatever GenAuth says
(docs/architecture.md, principle 11), and says what is wrong in its log and ``/readyz``
(``service.genauth.access``). The worker alone stops with one line when GenAuth refuses the access key, and
starts anyway when GenAuth cannot be reached, to wait for it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import click

from service.cli.common import (
    check_port_free,
    refuse_notices_without_email,
    serve_metrics,
    settings_or_exit,
    stop_on_signals,
)
from service.genauth.access import OK, REFUSED, check_access, log_access
from service.services import Services, open_engine
from service.settings import heartbeat_file_from
from service.worker.loop import Worker, start_in_thread

GUNICORN_CONFIG = Path("config/gunicorn.conf.py")


@click.command()
def serve() -> None:
    """Run the web service on $HOST:$PORT with gunicorn (production; `mfa-enforcer sandbox` is the sandbox)."""
    # Fail here, once, with the full list of problems, rather than in every gunicorn worker.
    settings = settings_or_exit(logs=False, role="web")
    refuse_notices_without_email(settings)
    check_port_free(settings.host, settings.port, "PORT")
    open_engine(settings.database_url, migrate=settings.migrate_on_start).dispose()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    arguments = [str(gunicorn), "--config", str(GUNICORN_CONFIG), "service.app:create_app()"]
    os.execv(arguments[0], arguments)  # noqa: S606 - replaces this process with gunicorn, as in production


def check_worker_access(services: Services) -> None:
    """The standalone worker's start: stop with one line when GenAuth refuses the access key (no retry fixes
    that); when GenAuth cannot be reached, say so in one log line and start anyway, to wait for it (the circuit
    breaker pauses the workers while every call fails), so an outage does not crash-loop workers."""
    with closing(services.genauth()) as client:
        access = check_access(client)
    if access.state == REFUSED:
        raise click.ClickException(f"the worker cannot start: {access.message}")
    if access.state != OK:
        log_access(access, what="the worker starts and retries until GenAuth answers")


@click.command()
def worker() -> None:
    """Run the worker until SIGTERM or Ctrl-C; the current job finishes first."""
    settings = settings_or_exit(role="worker")
    refuse_notices_without_email(settings)
    # Stop requests count from the first moment: one that comes while the worker starts (its checks can
    # take seconds) ends it cleanly as soon as it is up, instead of killing it half-way.
    stopping = threading.Event()
    running_workers: list[Worker] = []

    def _stop() -> None:
        stopping.set()
        for running in running_workers:
            running.stop()

    stop_on_signals(_stop)
    if settings.metrics_port:
        check_port_free(settings.host, settings.metrics_port, "ENFORCER_METRICS_PORT")
    services = Services.open(settings)
    # A bad policy file never stops the worker: it uses the last good copy, or waits for a valid file.
    policies = services.policy_source()
    check_worker_access(services)
    references = services.watch_references(policies.current)
    running_workers.extend(services.workers(policies.enforceable))
    first, *others = running_workers
    if stopping.is_set():
        for running in running_workers:
            running.stop()
    serve_metrics(settings)
    threads = [start_in_thread(running) for running in others]  # ENFORCER_WORKER_THREADS > 1
    first.run()  # returns once stopped, after its current job
    for thread in threads:
        thread.join()  # each finishes its current job too
    references.stop()
    services.close()


@click.command(name="worker-alive")
@click.option("--max-age", default=300.0, show_default=True, help="Seconds since the worker's last heartbeat.")
def worker_alive(max_age: float) -> None:
    """Exit 0 when the worker on this host showed a heartbeat recently (a Kubernetes liveness probe)."""
    path = heartbeat_file_from()
    try:
        age = time.time() - path.stat().st_mtime
    except OSError as error:
        raise click.ClickException(f"no worker heartbeat at {path}") from error
    if age > max_age:
        raise click.ClickException(f"the worker's last heartbeat was {age:.0f} s ago (limit {max_age:.0f} s)")
    click.echo(f"worker alive: heartbeat {age:.1f} s ago")
