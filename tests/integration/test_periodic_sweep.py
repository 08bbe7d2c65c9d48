"""ENFORCER_RECONCILE_INTERVAL: the worker sweeps everyone in scope by itself, with no webhook at all."""

from __future__ import annotations

import time
from dataclasses import replace

from service.app import build_worker
from service.intake.context import EXTENSION
from service.store.decisions import decisions_for_user
from service.worker.loop import start_in_thread
from tests.e2e.test_metrics import sample


def test_worker_sweeps_on_its_interval_and_enforces_users_nobody_reported(app, settings, engine, emulator):
    """With an interval set, finance users are found by the worker's own sweep and enforced; /metrics shows it."""
    sweeping = replace(settings, worker=replace(settings.worker, reconcile_interval=0.2))
    worker = build_worker(sweeping, engine, policy_getter=app.extensions[EXTENSION].policies.current)
    thread = start_in_thread(worker)
    alice, carol = emulator.users["fin.alice"], emulator.users["fin.carol"]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            decisions_for_user(engine, alice) and decisions_for_user(engine, carol)
        ):
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(30)
        worker.reconciler.client.close()
    assert decisions_for_user(engine, alice)[0]["action"] == "enforced"
    assert decisions_for_user(engine, alice)[0]["trigger"] == "reconcile"
    assert decisions_for_user(engine, carol)[0]["action"] == "unsatisfiable"
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert sample(metrics, "mfa_enforcer_reconcile_last_success_timestamp_seconds") > 0


def test_no_interval_means_no_sweep(app, settings, engine, emulator, worker):
    """The default interval (0) never lists users: the worker only drains its queue."""
    assert settings.worker.reconcile_interval == 0
    for _ in range(5):
        worker.sweeper.maybe_sweep(time.time() + 86400)
    listing = [e.path for e in emulator.journal.entries() if "list" in e.path]
    assert listing == []
