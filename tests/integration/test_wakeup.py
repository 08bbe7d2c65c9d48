"""Committed work wakes an idle worker at once (an in-process signal, LISTEN/NOTIFY on PostgreSQL); polling,
with its interval unchanged, is the fallback when the signal is lost."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from service.app import WORKERS_EXTENSION, create_app, stop_worker
from service.intake.context import EXTENSION
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.wakeup import Wakeup
from service.worker.loop import Worker
from tests.support.factories import enqueue
from tests.support.values import WEBHOOK_SECRET
from tests.support.waiting import wait_until


def _decided_after(engine: sa.Engine, user_id: str, started: float, *, timeout: float) -> float:
    """Seconds from ``started`` until the user's first decision is recorded (polled every 10 ms)."""
    wait_until(
        lambda: decisions_for_user(engine, user_id), timeout=timeout, what=f"a decision for {user_id}", interval=0.01
    )
    return time.monotonic() - started


def test_a_delivery_wakes_the_idle_worker_long_before_its_poll(settings, emulator):
    """With a 30 s poll interval, one of the web process's (default 16) idle workers picks a delivery up within a
    small fraction of it."""
    poll = 30.0
    woken = replace(settings, worker=replace(settings.worker, run_in_web=True, poll_interval=poll))
    app = create_app(woken, configure_logs=False)
    runtime = app.extensions[EXTENSION]
    try:
        workers = app.extensions[WORKERS_EXTENSION]
        wakeup = workers[0].wakeup
        assert wakeup is not None and len(workers) == woken.worker.threads
        wait_until(lambda: wakeup.waiting == len(workers), what="the workers to go idle")
        alice = emulator.users["fin.alice"]
        body = event_body(emulator.state, "login", alice)
        started = time.monotonic()
        response = app.test_client().post(
            "/webhooks/genauth",
            json=body,
            headers={"x-authing-token": WEBHOOK_SECRET, "x-authing-userpool-id": emulator.state.userpool_id},
        )
        assert response.status_code == 200
        gap = _decided_after(runtime.engine, alice, started, timeout=poll / 2)
        assert gap < poll / 10, f"picked up after {gap:.2f} s with a {poll:g} s poll interval"
    finally:
        stop_worker(app, wait=10)
        runtime.engine.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_dropped_listen_connection_falls_back_to_polling_and_recovers(settings, emulator, database_url):
    """pg_terminate_backend on the LISTEN connection: work is still done by polling while it is gone, and once
    the listener is back a commit wakes the worker at once again. A wake-up must come well inside half a poll
    interval (a loaded CI machine once took 1.0 s for the first one, so the interval is 3 s, not 2)."""
    poll, reconnect = 3.0, 10.0
    app = create_app(settings, configure_logs=False)
    runtime = app.extensions[EXTENSION]
    engine = runtime.engine
    services = Services(replace(settings, worker=replace(settings.worker, poll_interval=poll)), engine)
    wakeup = Wakeup(engine, reconnect_first=reconnect)
    reconciler = services.reconciler(services.genauth(), runtime.policies.current)
    worker = Worker(engine, reconciler, services.settings.worker, wakeup=wakeup)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    admin = sa.create_engine(database_url)
    pool = emulator.state.userpool_id
    try:
        wait_until(lambda: wakeup.listener is not None and wakeup.listener.connected.is_set(), what="LISTEN")
        listener = wakeup.listener
        assert listener is not None
        wait_until(lambda: wakeup.waiting == 1, what="the worker to go idle")

        alice = emulator.users["fin.alice"]
        started = time.monotonic()
        enqueue(engine, alice, pool=pool)
        gap = _decided_after(engine, alice, started, timeout=poll * 5)
        assert gap < poll / 2, f"picked up after {gap:.2f} s with a {poll:g} s poll interval"

        with admin.connect() as connection:
            pid = listener.backend_pid
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        wait_until(lambda: not listener.connected.is_set(), what="the listener to notice")
        bob = emulator.users["fin.bob"]
        enqueue(engine, bob, pool=pool)
        _decided_after(engine, bob, time.monotonic(), timeout=reconnect)
        assert listener.connections == 1, "done by polling, before the listener was back"

        wait_until(
            lambda: listener.connections == 2 and listener.connected.is_set(),
            timeout=reconnect * 3,
            what="the listener to reconnect",
        )
        wait_until(lambda: wakeup.waiting == 1, what="the worker to go idle again")
        carol = emulator.users["fin.carol"]
        started = time.monotonic()
        enqueue(engine, carol, pool=pool)
        gap = _decided_after(engine, carol, started, timeout=poll * 5)
        assert gap < poll / 2, f"picked up after {gap:.2f} s once the listener was back"
    finally:
        worker.stop()
        thread.join(10)
        reconciler.client.close()
        stop_worker(app)
        engine.dispose()
        admin.dispose()
    assert wakeup.listener is None and not listener.connected.is_set()


def test_a_ring_while_no_worker_waits_is_kept_for_the_next_wait():
    """A worker that found the queue empty just before work was committed does not sleep through it."""
    wakeup = Wakeup()
    wakeup.ring()
    wakeup.ring()  # a second signal while nobody waits is the same news
    assert wakeup.wait(5.0) is True
    started = time.monotonic()
    assert wakeup.wait(0.05) is False
    assert time.monotonic() - started >= 0.05


def test_a_stopping_worker_is_not_kept_waiting():
    """interrupt() wakes every waiter; a wait after the stop was set does not start."""
    wakeup, stop = Wakeup(), threading.Event()
    finished = []
    waiter = threading.Thread(target=lambda: finished.append(wakeup.wait(30.0, unless=stop)))
    waiter.start()
    wait_until(lambda: wakeup.waiting == 1, what="the waiter")
    stop.set()
    wakeup.interrupt()
    waiter.join(5)
    assert finished == [False]
    started = time.monotonic()
    assert wakeup.wait(30.0, unless=stop) is False
    assert time.monotonic() - started < 5


def test_of_many_idle_workers_one_polls_and_a_ring_wakes_one():
    """Three idle workers with a 0.1 s poll look at the queue about ten times a second together, not thirty;
    each ring wakes one of them."""
    wakeup, stop = Wakeup(), threading.Event()
    timed_out, rung = [], []

    def idle_worker() -> None:
        while not stop.is_set():
            (rung if wakeup.wait(0.1, unless=stop) else timed_out).append(time.monotonic())

    workers = [threading.Thread(target=idle_worker) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(timed_out) >= 10, what="ten polls")
        started, polls = time.monotonic(), len(timed_out)
        wait_until(lambda: time.monotonic() - started >= 1.0, what="a second")
        assert len(timed_out) - polls <= 12, "every idle worker polled"
        for count in (1, 2, 3):
            wait_until(lambda: wakeup.waiting == 3, what="all three waiting")
            for _ in range(count):
                wakeup.ring()
            wait_until(lambda count=count: len(rung) >= count * (count + 1) // 2, what=f"{count} ring(s) heard")
    finally:
        stop.set()
        wakeup.interrupt()
        for worker in workers:
            worker.join(5)
    assert not any(worker.is_alive() for worker in workers)
