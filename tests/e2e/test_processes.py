"""The service as operators run it: gunicorn from the Procfile, `mfa-enforcer worker`, and the CLI, each as a
real subprocess against the emulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from tests.conftest import ROOT, WEBHOOK_SECRET
from tests.e2e.test_metrics import sample

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(emulator, database_url, **extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.update(
        GENAUTH_HOST=emulator.url,
        GENAUTH_ACCESS_KEY_ID=emulator.state.access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=emulator.state.access_key_secret,
        GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GENAUTH_USERPOOL_ID=emulator.state.userpool_id,
        DATABASE_URL=database_url,
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
        ENFORCER_POLL_INTERVAL="0.05",
        ENFORCER_MIGRATE_ON_START="true",
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


def run_command(arguments, env):
    """Run one of the venv's commands from the repository root and capture its output."""
    return subprocess.run(
        [str(BIN / arguments[0]), *arguments[1:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_until(check, *, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process, sig=signal.SIGTERM, timeout=20.0):
    process.send_signal(sig)
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()


def test_gunicorn_from_the_procfile_serves_and_enforces(emulator, database_url, tmp_path):
    """The Procfile's web command accepts a delivery, its worker thread enforces, and SIGTERM stops it cleanly."""
    port = free_port()
    procfile = (ROOT / "Procfile").read_text()
    assert "gunicorn --config config/gunicorn.conf.py 'service.app:create_app()'" in procfile
    log = (tmp_path / "web.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py", "service.app:create_app()"],
        cwd=ROOT,
        env=service_env(emulator, database_url, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url), what="gunicorn to answer /readyz")
        alice = emulator.users["fin.alice"]
        sender = WebhookSender(f"{url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id)
        for _ in range(6):
            assert sender.deliver(event_body(emulator.state, "login", alice)).status_code == 200
        sender.close()
        emulator.journal.wait_for(lambda e: e.path == "/api/v3/set-mfa-status", timeout=20)
        # Two worker processes answered; every scrape, whichever process serves it, counts all six.
        for _ in range(4):
            text = requests.get(f"{url}/metrics", timeout=5).text
            assert sample(text, "mfa_enforcer_deliveries_total", event="login", outcome="queued") == 6
    finally:
        assert stop(process) == 0
        log.close()
    output = (tmp_path / "web.log").read_text()
    assert '"event": "decision_recorded"' in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == len(output.splitlines()), "every line, gunicorn's included, is JSON"
    received = [line for line in lines if line["event"] == "webhook_received"]
    accessed = {line["request_id"] for line in lines if line["event"] == "http_request" and line["method"] == "POST"}
    assert received and all(line["request_id"] in accessed for line in received), "one request id per request"
    assert all("job_id" in line for line in lines if line["event"] == "decision_recorded")


def _ready(url):
    try:
        return requests.get(f"{url}/readyz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_worker_command_enforces_and_stops_on_sigterm(emulator, database_url, tmp_path):
    """`mfa-enforcer worker` drains queued work, then exits 0 on SIGTERM."""
    engine = create_engine(database_url)
    prepare_database(engine)
    alice = emulator.users["fin.alice"]
    record_delivery(
        engine,
        Delivery("login", emulator.state.userpool_id, (alice,), "0" * 64, "application/json", "queued"),
        now=time.time(),
    )
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"],
        cwd=ROOT,
        env=service_env(emulator, database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: decisions_for_user(engine, alice), what="the worker's decision")
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    output = (tmp_path / "worker.log").read_text()
    assert '"event": "worker_stopped"' in output


def test_missing_settings_stop_startup_with_every_variable_named(tmp_path):
    """With credentials half set, `serve` and `worker` refuse to start and list each missing variable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env["GENAUTH_ACCESS_KEY_ID"] = "pool"
    expected = {
        "serve": ("GENAUTH_ACCESS_KEY_SECRET", "GENAUTH_WEBHOOK_SECRET"),
        "worker": ("GENAUTH_ACCESS_KEY_SECRET",),
    }
    for command, missing in expected.items():
        result = subprocess.run(
            [str(BIN / "mfa-enforcer"), command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode != 0
        assert all(name in result.stderr for name in missing)
        assert f"{len(missing)} problem(s)" in result.stderr, "a worker is not asked for the webhook secret"
        assert "Traceback" not in result.stderr


def test_policy_check_validates_files(tmp_path):
    """`policy check` prints the rules of a good file and exits 1 naming the rule and field of a bad one."""
    ok = subprocess.run(
        [str(BIN / "mfa-enforcer"), "policy", "check", "config/policies.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0 and "finance-sms (enforce)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMSS]\n")
    result = subprocess.run(
        [str(BIN / "mfa-enforcer"), "policy", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "finance-sms" in result.stderr and "require_mfa" in result.stderr and "SMSS" in result.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_policy_file_stops_the_web_service(emulator, database_url, tmp_path):
    """A policy file that does not validate stops gunicorn at startup with the rule and field named."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: x\n    match: {departments: [finance]}\n    require_mfa: []\n")
    result = subprocess.run(
        [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py", "service.app:create_app()"],
        cwd=ROOT,
        env=service_env(
            emulator, database_url, PORT=str(free_port()), HOST="127.0.0.1", POLICY_FILE=str(bad), WEB_CONCURRENCY="1"
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "require_mfa" in result.stderr and "Traceback" not in result.stderr


def test_sandbox_reaches_an_enforced_finance_user(tmp_path):
    """`serve` without credentials starts the sandbox; `sandbox deliver fin.alice` prints an enforced decision."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        PORT=str(free_port()),
        ENFORCER_SANDBOX_EMULATOR_PORT=str(free_port()),
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
    )
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "serve"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: "Sandbox ready" in (tmp_path / "sandbox.log").read_text(), what="the sandbox banner")
        result = subprocess.run(
            [str(BIN / "mfa-enforcer"), "sandbox", "deliver", "fin.alice"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "decision for fin.alice: enforced" in result.stdout
        assert '"mfaPolicy": "SMS"' in result.stdout
        moved = subprocess.run(
            [str(BIN / "mfa-enforcer"), "sandbox", "move", "new.erin", "finance"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "decision for new.erin: enforced" in moved.stdout, moved.stderr
    finally:
        assert stop(process) == 0
        log.close()
    banner = (tmp_path / "sandbox.log").read_text()
    assert "mfa-enforcer sandbox deliver fin.alice" in banner


def test_worker_alive_reads_the_heartbeat(emulator, database_url, tmp_path):
    """worker-alive fails with no heartbeat, passes while the worker runs, and fails once it is stale."""
    heartbeat = tmp_path / "alive"
    env = service_env(emulator, database_url, ENFORCER_HEARTBEAT_FILE=str(heartbeat))

    def probe(*extra):
        return subprocess.run(
            [str(BIN / "mfa-enforcer"), "worker-alive", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert probe().returncode == 1 and "no worker heartbeat" in probe().stderr
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(heartbeat.exists, what="the first heartbeat")
        assert probe().returncode == 0
    finally:
        assert stop(process) == 0
        log.close()
    os.utime(heartbeat, (time.time() - 1000, time.time() - 1000))
    stale = probe("--max-age", "300")
    assert stale.returncode == 1 and "last heartbeat" in stale.stderr


def test_web_and_worker_refuse_an_old_schema_and_db_upgrade_fixes_it(emulator, database_url, tmp_path):
    """On an empty database gunicorn and the worker stop, naming `db upgrade`; after it, the worker starts."""
    env = service_env(
        emulator,
        database_url,
        ENFORCER_MIGRATE_ON_START="false",
        PORT=str(free_port()),
        HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
    )
    web = run_command(["gunicorn", "--config", "config/gunicorn.conf.py", "service.app:create_app()"], env)
    assert web.returncode != 0 and "mfa-enforcer db upgrade" in web.stderr
    worker = run_command(["mfa-enforcer", "worker"], env)
    assert worker.returncode != 0 and "mfa-enforcer db upgrade" in worker.stderr
    status = run_command(["mfa-enforcer", "db", "status"], env)
    assert status.returncode == 1 and "schema revision none" in status.stdout
    upgraded = run_command(["mfa-enforcer", "db", "upgrade"], env)
    assert upgraded.returncode == 0 and "upgraded from empty" in upgraded.stdout
    assert "up to date" in run_command(["mfa-enforcer", "db", "upgrade"], env).stdout
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: "worker_started" in (tmp_path / "worker.log").read_text(), what="the worker to start")
    finally:
        assert stop(process) == 0
        log.close()
