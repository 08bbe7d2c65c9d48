"""The service as operators run it: gunicorn from the Procfile, `mfa-enforcer worker`, and the CLI, each as a
real subprocess against the emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from service.settings import AUTH_MODES
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.inbox import Delivery, record_delivery
from service.store.subjects import Subject
from tests.support.metrics import sample
from tests.support.processes import BIN, free_port, is_ready, run_command, service_env, stop
from tests.support.values import ROOT, WEBHOOK_SECRET
from tests.support.waiting import wait_until


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
        wait_until(lambda: is_ready(url), what="gunicorn to answer /readyz")
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


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_worker_command_enforces_and_stops_on_sigterm(emulator, database_url, tmp_path, auth):
    """`mfa-enforcer worker` drains queued work, then exits 0 on SIGTERM; with GENAUTH_AUTH=signature it signs
    every call and never asks for a management token."""
    engine = create_engine(database_url)
    prepare_database(engine)
    alice = emulator.users["fin.alice"]
    record_delivery(
        engine,
        Delivery("login", emulator.state.userpool_id, (Subject.user(alice),), "0" * 64, "application/json", "queued"),
        now=time.time(),
    )
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"],
        cwd=ROOT,
        env=service_env(emulator, database_url, GENAUTH_AUTH=auth),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        [decision] = wait_until(lambda: decisions_for_user(engine, alice), what="the worker's decision")
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    output = (tmp_path / "worker.log").read_text()
    assert '"event": "worker_stopped"' in output
    assert decision["action"] == "enforced" and emulator.journal.count("/api/v3/set-mfa-status") == 1
    schemes = {
        entry.headers["authorization"].split()[0]
        for entry in emulator.journal.entries()
        if "authorization" in entry.headers
    }
    tokens = emulator.journal.count("/api/v3/get-management-token")
    assert (schemes, tokens) == (({"authing"}, 0) if auth == "signature" else ({"Bearer"}, 1)), (schemes, tokens)


def test_missing_settings_stop_startup_with_every_variable_named(tmp_path):
    """With credentials half set, `serve`, `worker` and `listen` refuse to start and list each missing variable."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env["GENAUTH_ACCESS_KEY_ID"] = "pool"
    expected = {
        "serve": ("GENAUTH_ACCESS_KEY_SECRET", "GENAUTH_WEBHOOK_SECRET"),
        "worker": ("GENAUTH_ACCESS_KEY_SECRET",),
        "listen": ("GENAUTH_ACCESS_KEY_SECRET",),
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
        assert f"{len(missing)} problem(s)" in result.stderr, "a worker or listener is not asked for the webhook secret"
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


def test_worker_starts_with_a_bad_policy_file_and_waits_for_a_valid_one(emulator, database_url, tmp_path):
    """`mfa-enforcer worker` starts while the policy file does not validate (no saved copy: no rules); queued
    work is retried, not decided, and is enforced once the file is fixed."""
    policy = tmp_path / "policies.yaml"
    policy.write_text("policies:\n  - name: broken\n    require_mfa: [SMS]\n")
    engine = create_engine(database_url)
    prepare_database(engine)
    alice = emulator.users["fin.alice"]
    record_delivery(
        engine,
        Delivery("login", emulator.state.userpool_id, (Subject.user(alice),), "0" * 64, "application/json", "queued"),
        now=time.time(),
    )
    env = service_env(
        emulator,
        database_url,
        POLICY_FILE=str(policy),
        ENFORCER_POLICY_CHECK_INTERVAL="0.1",
        ENFORCER_BACKOFF_BASE="0.1",
        ENFORCER_BACKOFF_MAX="0.3",
    )
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: "job_retry_scheduled" in (tmp_path / "worker.log").read_text(), what="a retry")
        assert process.poll() is None and decisions_for_user(engine, alice) == []
        shutil.copy(ROOT / "config" / "policies.yaml", policy)
        decision = wait_until(lambda: decisions_for_user(engine, alice), what="the decision once the file is fixed")
        assert decision[0]["action"] == "enforced"
    finally:
        assert stop(process) == 0
        log.close()
        engine.dispose()
    lines = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines() if line.startswith("{")]
    assert any(line["event"] == "policy_load_failed" and line["using"] == "none" for line in lines)
    retries = [line for line in lines if line["event"] == "job_retry_scheduled"]
    assert any("PolicyUnavailableError" in line["error"] for line in retries)


def test_sandbox_reaches_an_enforced_finance_user(tmp_path):
    """`mfa-enforcer sandbox` starts the sandbox; `sandbox deliver fin.alice` prints an enforced decision."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        PORT=str(free_port()),
        ENFORCER_SANDBOX_EMULATOR_PORT=str(free_port()),
        POLICY_FILE=str(ROOT / "config" / "policies.yaml"),
    )
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mfa-enforcer"), "sandbox"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
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
        assert "GenAuth now stores: SMS on" in result.stdout
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
