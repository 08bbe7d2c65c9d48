"""Crash safety with real processes: kill -9 of web and worker, SIGTERM draining, a database that drops every
connection, and several workers sharing one PostgreSQL queue."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.tables import decisions, events, work
from tests.support.factories import enqueue
from tests.support.processes import BIN, free_port, is_ready, run_command, service_env, stop
from tests.support.values import ROOT, WEBHOOK_SECRET
from tests.support.waiting import wait_until

SET_MFA = "/api/v3/set-mfa-status"


@pytest.fixture
def store(database_url):
    engine = create_engine(database_url)
    prepare_database(engine)
    yield engine
    engine.dispose()


def start_worker(emulator, database_url, log_path, **extra):
    log = open(log_path, "a")  # noqa: SIM115 - closed by the caller through the process
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"],
        cwd=ROOT,
        env=service_env(emulator, database_url, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log = log
    return process


def finish(process, sig=signal.SIGTERM):
    try:
        return stop(process, sig)
    finally:
        process.log.close()


def count(engine, table, *conditions):
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table).where(*conditions)).scalar_one()


def test_killed_worker_loses_nothing_its_lease_returns_the_row(emulator, database_url, store, tmp_path):
    """kill -9 in the middle of a GenAuth call: after the lease runs out another worker enforces the user."""
    alice = emulator.users["fin.alice"]
    emulator.faults.add("latency", path="/api/v3/get-mfa-status", times=1, seconds=5)
    enqueue(store, alice, pool=emulator.state.userpool_id)
    first = start_worker(emulator, database_url, tmp_path / "w1.log", ENFORCER_LEASE_SECONDS="2")
    try:
        emulator.journal.wait_for(lambda e: e.path == "/api/v3/get-user", timeout=20)  # sent with the slow read
        wait_until(lambda: count(store, work, work.c.leased_until.is_not(None)), what="the row to be leased")
    finally:
        finish(first, signal.SIGKILL)
    assert count(store, work) == 1 and decisions_for_user(store, alice) == []
    second = start_worker(emulator, database_url, tmp_path / "w2.log", ENFORCER_LEASE_SECONDS="2")
    try:
        wait_until(lambda: decisions_for_user(store, alice), timeout=30, what="the second worker's decision")
    finally:
        assert finish(second) == 0
    [decision] = decisions_for_user(store, alice)
    assert decision["action"] == "enforced" and decision["attempt"] == 2
    assert count(store, work) == 0


def test_a_worker_killed_mid_page_leaves_no_write_without_its_decision(emulator, database_url, store, tmp_path):
    """A sweep's page holds Alice and Bob, who both need SMS. The first write is answered at once, the second
    only after 8 s: kill -9 while it waits. Every write GenAuth answered by then has its enforced decision;
    after the lease a second worker reads the page again, skips the user decided, and finishes the sweep."""
    env = service_env(emulator, database_url)
    assert run_command(["mfa-enforcer", "reconcile"], env).returncode == 0
    emulator.faults.add("latency", path=SET_MFA, times=1, seconds=0)
    emulator.faults.add("latency", path=SET_MFA, times=1, seconds=8)
    first = start_worker(emulator, database_url, tmp_path / "w1.log", ENFORCER_LEASE_SECONDS="2")
    try:
        [write] = emulator.journal.wait_for(SET_MFA, timeout=30)
        written = write.body["userId"]
        with contextlib.suppress(AssertionError):  # without its decision yet: the kill shows whether it is lost
            wait_until(lambda: decisions_for_user(store, written), timeout=5, what="the first write's decision")
    finally:
        finish(first, signal.SIGKILL)
    answered = {entry.body["userId"] for entry in emulator.journal.entries(SET_MFA)}
    assert answered == {written}
    assert [d["action"] for d in decisions_for_user(store, written)] == ["enforced"]
    second = start_worker(emulator, database_url, tmp_path / "w2.log", ENFORCER_LEASE_SECONDS="2")
    try:
        wait_until(lambda: count(store, work) == 0, timeout=40, what="the sweep's work to drain")
    finally:
        assert finish(second) == 0
    assert [d["action"] for d in decisions_for_user(store, written)] == ["enforced"]
    for name in ("fin.alice", "fin.bob", "fin.carol", "fin.frank"):
        assert decisions_for_user(store, emulator.users[name]), name


def test_sigterm_finishes_the_current_job_and_releases_the_rest(emulator, database_url, store, tmp_path):
    """SIGTERM mid-batch (one worker thread): the job in flight completes, the unstarted ones go back without
    spending an attempt."""
    users = [emulator.users[name] for name in ("fin.alice", "fin.bob", "eng.dave", "new.erin")]
    emulator.faults.latency = 0.4
    enqueue(store, *users, pool=emulator.state.userpool_id)
    process = start_worker(
        emulator, database_url, tmp_path / "w.log", ENFORCER_BATCH_SIZE="10", ENFORCER_WORKER_THREADS="1"
    )
    try:
        emulator.journal.wait_for(lambda e: e.path == "/api/v3/get-user", timeout=20)
    finally:
        started = time.monotonic()
        assert finish(process) == 0
    assert time.monotonic() - started < 10
    assert count(store, decisions) == 1
    assert count(store, work) == 3
    assert count(store, work, work.c.leased_until.is_(None), work.c.attempts == 0) == 3


def test_killed_web_process_loses_no_acknowledged_delivery(emulator, database_url, store, tmp_path):
    """kill -9 of gunicorn during a burst: every delivery that got a 200 is in the database."""
    port = free_port()
    env = service_env(
        emulator, database_url, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", ENFORCER_RUN_WORKER="false"
    )
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py", "service.app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    acknowledged: list[int] = []
    lock = threading.Lock()
    url = f"http://127.0.0.1:{port}/webhooks/genauth"
    try:
        wait_until(lambda: is_ready(f"http://127.0.0.1:{port}"), what="gunicorn")

        def send(number):
            body = {"eventName": "login", "data": {"id": f"user-{number}", "userPoolId": emulator.state.userpool_id}}
            try:
                response = requests.post(url, json=body, headers={"x-authing-token": WEBHOOK_SECRET}, timeout=5)
            except requests.RequestException:
                return
            if response.status_code == 200:
                with lock:
                    acknowledged.append(number)
                if len(acknowledged) == 150:
                    os.killpg(process.pid, signal.SIGKILL)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(2000)))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        log.close()
    assert 150 <= len(acknowledged) < 2000, "the kill should land mid-burst"
    with store.connect() as connection:
        queued = {user for (user,) in connection.execute(sa.select(work.c.user_id))}
        recorded = connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    missing = {f"user-{number}" for number in acknowledged} - queued
    assert not missing, f"{len(missing)} acknowledged deliveries were lost"
    assert recorded >= len(acknowledged)


def test_worker_survives_the_database_dropping_every_connection(emulator, postgres_url, tmp_path):
    """PostgreSQL terminating all sessions (as on a restart) costs a reconnect; the worker keeps enforcing."""
    # Tag our own sessions, so that only they are terminated (other tests or tools may share the server).
    url = make_url(postgres_url).update_query_dict({"application_name": "mfa_enforcer_restart_test"})
    tagged = url.render_as_string(hide_password=False)
    engine = create_engine(tagged)
    prepare_database(engine)
    process = start_worker(emulator, tagged, tmp_path / "w.log", ENFORCER_POLL_INTERVAL="0.05")
    try:
        for name in ("fin.alice", "fin.bob", "new.erin"):
            user = emulator.users[name]
            if name == "new.erin":
                emulator.state.add_member(user, "finance")
            with engine.connect() as connection:
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": "mfa_enforcer_restart_test"},
                )
                connection.commit()
            engine.dispose()
            enqueue(engine, user, pool=emulator.state.userpool_id)
            wait_until(lambda user=user: decisions_for_user(engine, user), timeout=30, what=f"{name} enforced")
        assert process.poll() is None, "the worker must not crash"
    finally:
        assert finish(process) == 0
        engine.dispose()


def test_several_workers_share_a_burst_without_reconciling_a_user_twice_at_once(emulator, postgres_url, tmp_path):
    """3 worker processes and 2 web processes on PostgreSQL: 3,000 deliveries over 300 users, each user
    enforced with exactly one write, and no two reconciles of one user overlapping in time."""
    state = emulator.state
    users = [
        state.add_user(username=f"burst{i}", phone=f"139{i:08d}", departments=("finance",))["userId"]
        for i in range(300)
    ]
    engine = create_engine(postgres_url)
    prepare_database(engine)
    port = free_port()
    web_log = (tmp_path / "web.log").open("w")
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py", "service.app:create_app()"],
        cwd=ROOT,
        env=service_env(
            emulator, postgres_url, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", ENFORCER_RUN_WORKER="false"
        ),
        stdout=web_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    workers = [
        start_worker(
            emulator, postgres_url, tmp_path / f"w{i}.log", ENFORCER_BATCH_SIZE="5", ENFORCER_POLL_INTERVAL="0.05"
        )
        for i in range(3)
    ]
    try:
        wait_until(lambda: is_ready(f"http://127.0.0.1:{port}"), what="gunicorn")
        bodies = [event_body(state, "login", user) for user in users]
        sender = WebhookSender(f"http://127.0.0.1:{port}/webhooks/genauth", WEBHOOK_SECRET, state.userpool_id)

        def send(number):
            return sender.deliver(bodies[number % len(bodies)]).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(send, range(3000)))
        sender.close()
        assert statuses.count(200) == 3000
        wait_until(
            lambda: count(engine, work) == 0 and count(engine, decisions) >= 300, timeout=120, what="the queue to drain"
        )
    finally:
        for process in workers:
            assert finish(process) == 0
        stop(web)
        web_log.close()
    writes = [e.body["userId"] for e in emulator.journal.entries("/api/v3/set-mfa-status")]
    assert sorted(writes) == sorted(users), "every user written exactly once"
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(decisions.c.user_id, decisions.c.started_at, decisions.c.decided_at, decisions.c.action)
        ).all()
    engine.dispose()
    by_user: dict[str, list[tuple[float, float]]] = {}
    for user, started, decided, action in rows:
        assert action in ("enforced", "none")
        by_user.setdefault(user, []).append((started, decided))
    assert set(by_user) == set(users)
    for user, spans in by_user.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"user {user} was reconciled by two workers at once"
    shares = [(tmp_path / f"w{i}.log").read_text().count('"event": "decision_recorded"') for i in range(3)]
    assert sum(shares) >= 300 and all(shares), f"every worker should take a share: {shares}"


def test_worker_threads_reconcile_users_side_by_side_and_drain_on_sigterm(emulator, database_url, store, tmp_path):
    """ENFORCER_WORKER_THREADS=3: while GenAuth is slow, three users are reconciled at once (never one user
    twice at once), every user is enforced, and SIGTERM lets every thread finish its job."""
    users = list(emulator.users.values())  # six sample users
    emulator.faults.latency = 0.3
    enqueue(store, *users, pool=emulator.state.userpool_id)
    process = start_worker(emulator, database_url, tmp_path / "w.log", ENFORCER_WORKER_THREADS="3")
    try:
        wait_until(lambda: count(store, work) == 0, timeout=60, what="every user reconciled")
    finally:
        assert finish(process) == 0
    with store.connect() as connection:
        spans = connection.execute(sa.select(decisions.c.user_id, decisions.c.started_at, decisions.c.decided_at)).all()
    assert sorted(user for user, _, _ in spans) == sorted(users)  # one decision per user
    overlapping = sum(
        1
        for (a, a_start, a_end), (b, b_start, b_end) in itertools.combinations(spans, 2)
        if a_start < b_end and b_start < a_end
    )
    assert overlapping > 0, f"with 3 threads some reconciles must overlap in time: {spans}"
    lines = [json.loads(line) for line in (tmp_path / "w.log").read_text().splitlines() if line.startswith("{")]
    owners = [line["owner"] for line in lines if line["event"] == "worker_started"]
    assert len(owners) == 3 and len(set(owners)) == 3  # three workers, each with its own lease owner
