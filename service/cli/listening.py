"""``mfa-enforcer listen``: take GenAuth's events over its event WebSocket, for a deployment without a public URL.

A long-running process like ``mfa-enforcer worker`` (its own Procfile line and, in Kubernetes, its own
Deployment: deploy/k8s/overlays/listen). It subscribes to the event codes of the webhook events the loaded
rules need (``codes_for``: ``service.cli.webhooks.events_for`` mapped by ``service.genauth.events.EVENT_CODES``)
and feeds every message through the webhook's intake into the queue (``service.intake.listening``); a worker
does the rest, exactly as for a delivery. It needs the database and the GenAuth key, not the webhook secret.

After every connection the listener calls ``catch_up`` (built here, ``catch_up_hook``) for what the socket
may have missed while it was not connected: gap recovery from GenAuth's webhook delivery log
(``service.intake.recovery.recover_gap``) where the pool has a webhook the service manages, else a sweep of
every rule's scope (the one the worker's periodic sweep starts, joined when one is running).

GenAuth refusing the key at the handshake ends the command with one line and exit 1, like the worker at start
(Kubernetes then restarts it with its own growing delay, never at full speed); anything else (GenAuth or the
network down, a dropped connection, an oversized frame) is waited out with backoff, forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing

import click

from service.cli.common import check_port_free, serve_metrics, settings_or_exit, stop_on_signals
from service.cli.webhooks import events_for
from service.genauth.access import failure_line
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthAuthenticationError
from service.genauth.events import EVENT_CODES
from service.intake.listening import Listener
from service.intake.recovery import recover_gap
from service.logs import log_event
from service.policy.rules import Policy
from service.services import Services
from service.store.inbox import Inbox
from service.store.keys import deployment_key
from service.store.sweeps import ALL_RULES
from service.worker.errors import SweepBusyError
from service.worker.sweeping import begin_sweep

logger = logging.getLogger(__name__)


def codes_for(policy: Policy) -> tuple[list[str], list[str]]:
    """The event codes to subscribe to for ``policy``, and the events it needs that have no code (a sweep, or a
    webhook, covers those)."""
    events = events_for(policy)
    codes = list(dict.fromkeys(EVENT_CODES[event] for event in events if event in EVENT_CODES))
    return codes, [event for event in events if event not in EVENT_CODES]


def catch_up_hook(
    services: Services, client: GenAuthClient, policy_getter: Callable[[], Policy], digest_key: bytes
) -> Callable[[], None]:
    """What the listener runs after each (re)connection: catch up on what the socket missed meanwhile."""
    settings = services.settings

    def catch_up() -> None:
        # Where the pool has a webhook the service manages, GenAuth's delivery log holds what was sent meanwhile:
        # gap recovery takes it in (service.intake.recovery). Without one, every rule's scope is swept.
        recovered = recover_gap(
            services.database, client, settings=settings, digest_key=digest_key, policy=policy_getter()
        )
        if recovered.webhooks or recovered.busy:
            log_event(logger, "listen_catch_up", how="recovery", recovered=recovered.recovered)
            return
        try:
            started = begin_sweep(
                services.database,
                client,
                policy_getter().rules,
                scope=ALL_RULES,
                userpool_id=settings.pool_key,
                now=time.time(),
            )
        except SweepBusyError as busy:  # another scope is being swept: ours must still run, so try again
            log_event(logger, "listen_catch_up_waiting", sweep_id=busy.sweep.id)
            raise
        log_event(logger, "listen_catch_up", how="sweep", sweep_id=started.sweep.id, joined=started.joined)

    return catch_up


@click.command()
def listen() -> None:
    """Take GenAuth's events over its event WebSocket until SIGTERM or Ctrl-C (no webhook or public URL needed)."""
    settings = settings_or_exit(role="worker")  # the GenAuth key signs the subscription; no webhook secret
    listener: Listener | None = None
    stopping = False

    def _stop() -> None:
        nonlocal stopping
        stopping = True  # a stop asked for during the start ends the command as soon as it is up
        if listener is not None:
            listener.stop()

    stop_on_signals(_stop)
    if settings.metrics_port:
        check_port_free(settings.host, settings.metrics_port, "ENFORCER_METRICS_PORT")
    services = Services.open(settings)
    policies = services.policy_source()
    codes, uncovered = codes_for(policies.current())
    log_event(logger, "listen_started", codes=codes, events_without_code=uncovered, url=settings.listen.events_url)
    with closing(services.genauth()) as client:
        digest_key = deployment_key(services.database)
        listener = Listener(
            settings,
            Inbox(services.database, wakeup=services.wakeup),
            digest_key,
            policies.current,
            codes,
            catch_up=catch_up_hook(services, client, policies.current, digest_key),
        )
        serve_metrics(settings)
        if stopping:
            listener.stop()
        try:
            listener.run()
        except GenAuthAuthenticationError as error:
            raise click.ClickException(f"the listener cannot subscribe: {failure_line(error)}") from error
        finally:
            services.close()
    log_event(logger, "listen_stopped")
