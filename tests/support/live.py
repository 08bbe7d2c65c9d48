"""The service over real HTTP on loopback, built from a test's settings, with or without its worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from genauth_emulator.sender import WebhookSender
from service.app import WORKER_EXTENSION, create_app, stop_worker
from service.intake.context import EXTENSION
from service.settings import Settings
from tests.support.serving import serve_in_thread, wsgi_server
from tests.support.values import WEBHOOK_SECRET


@dataclass
class LiveService:
    url: str
    app: Any
    engine: sa.Engine
    sender: WebhookSender
    """Signs and sends GenAuth-shaped deliveries to the service's webhook."""

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/genauth"


@contextmanager
def serve_service(settings: Settings, emulator: Any, *, run_worker: bool) -> Iterator[LiveService]:
    """Serve the app built from ``settings`` (its worker thread on or off) until the block ends, then stop
    the server, the worker and every client and engine the app opened."""
    live_settings = replace(settings, worker=replace(settings.worker, run_in_web=run_worker))
    application = create_app(live_settings, configure_logs=False)
    try:
        with serve_in_thread(wsgi_server(application, quiet=False)) as server:
            url = f"http://127.0.0.1:{server.server_port}"
            sender = WebhookSender(f"{url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id)
            engine = application.extensions[EXTENSION].engine
            try:
                yield LiveService(url=url, app=application, engine=engine, sender=sender)
            finally:
                sender.close()
    finally:
        stop_worker(application)
        worker = application.extensions.get(WORKER_EXTENSION)
        if worker is not None:
            worker.reconciler.client.close()
        if application.extensions[EXTENSION].admin_reconciler is not None:
            application.extensions[EXTENSION].admin_reconciler.client.close()
        application.extensions[EXTENSION].engine.dispose()
