"""An upper bound for the intake benchmark: the service exactly as deployed, except that recording a delivery
costs nothing (the inbox answers at once with a made-up event id and writes nothing).

It is NOT a way to run the service: it acknowledges deliveries it never stores. It answers one question in
``bench/intake.py --ablated``: how fast could the intake be if the database cost nothing? The gap between it
and the bare Flask app is what the rest of a delivery costs (secret check, parsing, validation, logging,
metrics); the gap between it and the real service is what the durable write costs.
"""

from __future__ import annotations

import itertools

from flask import Flask

from service.app import create_app
from service.intake.context import EXTENSION, Runtime
from service.store.inbox import Delivery


class FreeInbox:
    """Stands in for ``service.store.inbox.Inbox``: no transaction, no row."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def record(self, delivery: Delivery, *, now: float) -> int:
        return next(self._ids)


def create() -> Flask:
    app = create_app()
    runtime = app.extensions[EXTENSION]
    assert isinstance(runtime, Runtime)
    runtime.inbox = FreeInbox()  # type: ignore[assignment]
    return app
