"""GenAuth refusing the key or down when a long-running process starts (docs/architecture.md, principle 11):
a process that takes deliveries (`serve`, gunicorn from the Procfile, with the worker thread) starts anyway,
says so in one log line and in /readyz (still ready), takes deliveries, and its worker enforces once GenAuth
answers; `mfa-enforcer worker` alone waits out an unreachable GenAuth the same way (a refused key stops it:
test_traps.py). Real subprocesses against the emulator and a real database."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests
import sqlalchemy as sa

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject
from service.store.tables import events
from tests.support.processes import BIN, free_port, service_env, stop
from tests.support.values import ROOT, WEBHOOK_SECRET
from tests.support.waiting import wait_until

FAST_RETRIES = {
    "ENFORCER_BACKOFF_BASE": "0.05",
    "ENFORCER_BACKOFF_MAX": "0.2",
    "GENAUTH_CIRCUIT_COOLDOWN": "0.5",
    "GENAUTH_CONNECT_TIMEOUT": "1",
    "GENAUTH_READ_TIMEOUT": "2",
}


def readiness(url):
    try:
        answer = requests.get(f"{url}/readyz", timeout=5)
    except requests.RequestException:  # still booting
        return None
    return answer


def log_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize(
    ("fault", "command", "auth"),
    [
        ("refused", ["mfa-enforcer", "serve"], "token"),
        ("refused", ["mfa-enforcer", "serve"], "signature"),
        ("unreachable", ["gunicorn"], "token"),
    ],
    ids=["keys-refused-serve", "signature-refused-serve", "unreachable-gunicorn"],
)
def test_a_web_process_starts_and_takes_deliveries_whatever_genauth_says(
    emulator, database_url, tmp_path, fault, command, auth
):
    """Refused key (serve; a refused token or, with GENAUTH_AUTH=signature, a refused signature alike) or GenAuth
    failing every call (the Procfile's gunicorn): the process starts, /readyz answers 200 with `genauth` and a
    warning naming what to check, a delivery is stored, the log says it once; with GenAuth back, the worker
    enforces the delivered user and /readyz shows `ok` again."""
    port = free_port()
    extra = {"PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1", "GENAUTH_AUTH": auth, **FAST_RETRIES}
    if fault == "refused":
        extra["GENAUTH_ACCESS_KEY_SECRET"] = "a-wrong-secret"
        named = "GENAUTH_ACCESS_KEY_SECRET"
    else:
        emulator.faults.add("http_503", times=None)
        named = "GENAUTH_HOST"
    if command[0] == "gunicorn":
        command = ["gunicorn", "--config", "config/gunicorn.conf.py", "service.app:create_app()"]
    log_path = tmp_path / "web.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=service_env(emulator, database_url, **extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    engine = create_engine(database_url)
    url = f"http://127.0.0.1:{port}"
    alice = emulator.users["fin.alice"]
    try:
        answer = wait_until(
            lambda: (r := readiness(url)) is not None and r.json()["checks"].get("genauth") == fault and r,
            timeout=30,
            what=f"/readyz to show genauth {fault}",
        )
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
        assert named in answer.json()["checks"]["genauth_warning"]
        assert process.poll() is None
        sender = WebhookSender(f"{url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id)
        try:
            assert sender.deliver(event_body(emulator.state, "login", alice)).status_code == 200
        finally:
            sender.close()
        with engine.connect() as connection:
            assert connection.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1
        if fault == "unreachable":  # GenAuth comes back: the worker enforces, /readyz says ok
            emulator.faults.clear()
            decision = wait_until(lambda: decisions_for_user(engine, alice), timeout=30, what="alice's decision")
            assert decision[0]["action"] == "enforced"
            wait_until(lambda: readiness(url).json()["checks"]["genauth"] == "ok", timeout=30, what="genauth ok")
        else:
            assert emulator.journal.count("/api/v3/set-mfa-status") == 0
        if auth == "signature":
            assert emulator.journal.count("/api/v3/get-management-token") == 0
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    output = log_path.read_text()
    assert "Traceback" not in output
    event = "genauth_access_refused" if fault == "refused" else "genauth_unreachable"
    said = [line for line in log_lines(log_path) if line["event"] == event]
    assert len(said) == 1 and named in said[0]["problem"], said


def test_the_worker_alone_waits_out_an_unreachable_genauth_and_enforces_once_it_answers(
    emulator, database_url, tmp_path
):
    """`mfa-enforcer worker` with GenAuth failing every call: it starts, logs one line naming GENAUTH_HOST, and
    keeps running; once GenAuth answers it enforces the queued user, and SIGTERM ends it with exit 0."""
    engine = create_engine(database_url)
    prepare_database(engine)
    alice = emulator.users["fin.alice"]
    record_delivery(
        engine,
        Delivery("login", emulator.state.userpool_id, (Subject.user(alice),), "0" * 64, "application/json", "queued"),
        now=time.time(),
    )
    emulator.faults.add("http_503", times=None)
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"],
        cwd=ROOT,
        env=service_env(emulator, database_url, **FAST_RETRIES),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: "genauth_unreachable" in log_path.read_text(), timeout=30, what="the unreachable line")
        wait_until(lambda: "job_retry_scheduled" in log_path.read_text(), timeout=30, what="the worker retrying")
        assert process.poll() is None, log_path.read_text()
        assert decisions_for_user(engine, alice) == []
        emulator.faults.clear()
        decision = wait_until(lambda: decisions_for_user(engine, alice), timeout=30, what="alice's decision")
        assert decision[0]["action"] == "enforced"
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    said = [line for line in log_lines(log_path) if line["event"] == "genauth_unreachable"]
    assert len(said) == 1 and "GENAUTH_HOST" in said[0]["problem"], said
    assert "Traceback" not in log_path.read_text()
