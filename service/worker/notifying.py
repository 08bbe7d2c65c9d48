"""The worker's notification round every ``ENFORCER_NOTIFY_INTERVAL`` seconds (``service.notices.sending``).

It runs in a thread of its own next to the worker that runs the sweeps and the prune, so a slow or absent mail
server delays notices, never a job. Several processes running it at once send each notice once (the outbox
claims rows under a lease).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.background import Repeating
from service.genauth.client import GenAuthClient
from service.logs import log_event
from service.notices.sending import Notifier

logger = logging.getLogger(__name__)


@dataclass
class PeriodicNotify(Repeating):
    """Runs ``notifier`` now and then every ``interval`` seconds; closes ``client`` (the digest's reference
    check) when it stops."""

    thread_name = "mfa-enforcer-notify"
    crash_event = "notify_round_crashed"
    notifier: Notifier
    interval: float
    client: GenAuthClient | None = None

    def tick(self) -> bool:
        done = self.notifier.run()
        if done.queued or done.sent or done.failed:
            log_event(logger, "notify_round", queued=done.queued, sent=done.sent, failed=done.failed)
        return False

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
