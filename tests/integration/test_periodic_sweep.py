"""ENFORCER_RECONCILE_INTERVAL: the worker sweeps everyone in scope by itself, with no webhook at all."""

from __future__ import annotations

import time
from dataclasses import replace

from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from service.worker.loop import start_in_thread
from tests.support.metrics import sample
from tests.support.waiting import wait_until


def test_worker_sweeps_on_its_interval_and_enforces_users_nobody_reported(app, settings, engine, emulator):
    """With an interval set, finance users are found by the worker's own sweep and enforced; /metrics shows it."""
    sweeping = replace(settings, worker=replace(settings.worker, reconcile_interval=0.2))
    worker = Services(sweeping, engine).worker(app.extensions[EXTENSION].policies.current)
    thread = start_in_thread(worker)
    alice, carol = emulator.users["fin.alice"], emulator.users["fin.carol"]
    try:
        wait_until(
            lambda: decisions_for_user(engine, alice) and decisions_for_user(engine, carol),
            timeout=30,
            what="the sweep to decide alice and carol",
        )
    finally:
        worker.stop()
        thread.join(30)
        worker.reconciler.client.close()
    first = decisions_for_user(engine, alice)[-1]  # a later round may find her compliant before the stop
    assert first["action"] == "enforced" and first["trigger"] == "reconcile"
    assert decisions_for_user(engine, carol)[-1]["action"] == "unsatisfiable"
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert sample(metrics, "mfa_enforcer_reconcile_last_success_timestamp_seconds") > 0


def test_no_interval_means_no_sweep(app, settings, engine, emulator, worker):
    """The default interval (0) never lists users: the worker only drains its queue."""
    assert settings.worker.reconcile_interval == 0
    for _ in range(5):
        worker.sweeper.maybe_sweep(time.time() + 86400)
    listing = [e.path for e in emulator.journal.entries() if "list" in e.path]
    assert listing == []
