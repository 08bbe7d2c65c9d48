"""The policy file is reloaded when it changes, and a bad edit never replaces good rules."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from dataclasses import replace
from importlib.metadata import version

import pytest
import requests

from genauth_emulator.payloads import event_body
from service.app import create_app, stop_worker
from service.errors import PolicyUnavailableError, TemporaryError
from service.intake.context import EXTENSION
from service.policy import PolicyError
from service.policy_source import (
    STATE_CURRENT,
    STATE_LAST_GOOD_COPY,
    STATE_NONE,
    STATE_PREVIOUS,
    PolicySource,
)
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.engine import create_engine, prepare_database
from service.store.snapshots import PolicySnapshots
from tests.support.factories import enqueue
from tests.support.store import drain
from tests.support.values import ADMIN_TOKEN, ROOT, WEBHOOK_SECRET
from tests.support.waiting import wait_until

AUDIT_RULE = """policies:
  - name: finance-otp-audit
    mode: audit
    match: {departments: [finance]}
    require_mfa: [OTP]
"""


def test_changed_file_is_reloaded_and_invalid_edits_keep_the_old_rules(tmp_path, caplog):
    """A valid change takes effect; an invalid one is logged and ignored until fixed."""
    path = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", path)
    caplog.set_level(logging.INFO)
    source = PolicySource(path, check_interval=0)
    first = source.current().rules[0].name

    path.write_text(AUDIT_RULE)
    assert [rule.name for rule in source.current().rules] == ["finance-otp-audit"]
    assert "policy_reloaded" in caplog.text

    path.write_text("policies:\n  - name: broken\n    require_mfa: [SMS]\n")
    assert [rule.name for rule in source.current().rules] == ["finance-otp-audit"]
    status = source.status()
    assert status.error and "broken" in status.error and status.rules == 1
    assert "policy_reload_failed" in caplog.text

    path.unlink()
    assert [rule.name for rule in source.current().rules] == ["finance-otp-audit"]

    shutil.copy(ROOT / "config" / "policies.yaml", path)
    assert source.current().rules[0].name == first
    assert source.status().error is None


def test_changes_are_noticed_only_after_the_check_interval(tmp_path):
    """Within the interval the file is not re-read; after it, it is."""
    now = [0.0]
    path = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", path)
    source = PolicySource(path, check_interval=5, clock=lambda: now[0])
    path.write_text(AUDIT_RULE)
    assert source.current().rules[0].name != "finance-otp-audit"
    now[0] = 5.0
    assert source.current().rules[0].name == "finance-otp-audit"


def test_readyz_reports_an_invalid_policy_file_while_still_ready(live_service, settings):
    """After a bad edit /readyz stays 200 (old rules in force) and shows the problem."""
    policies = live_service.app.extensions["mfa_enforcer"].policies
    policies.check_interval = 0
    original = settings.policy_file.read_text()
    policies.path = settings.policy_file.parent / "missing-policies.yaml"
    try:
        body = requests.get(f"{live_service.url}/readyz", timeout=5).json()
        assert body["status"] == "ok"
        assert "missing-policies.yaml" in body["checks"]["policy_error"]
    finally:
        assert settings.policy_file.read_text() == original


BROKEN = "policies:\n  - name: broken\n    require_mfa: [SMS]\n"


@pytest.fixture
def snapshots(database_url, schema_template):
    schema_template.apply(database_url)
    engine = create_engine(database_url)
    prepare_database(engine)
    yield PolicySnapshots(engine)
    engine.dispose()


def test_every_valid_file_is_saved_and_a_bad_file_at_start_uses_that_copy(tmp_path, snapshots, caplog):
    """A process that starts while the file is bad runs the last good rules from the database, and says so."""
    path = tmp_path / "policies.yaml"
    path.write_text(AUDIT_RULE)
    PolicySource(path, snapshots=snapshots, strict=False)
    assert snapshots.load().text == AUDIT_RULE

    path.write_text(BROKEN)
    caplog.set_level(logging.INFO)
    started = PolicySource(path, snapshots=snapshots, strict=False, check_interval=0)
    assert [rule.name for rule in started.current().rules] == ["finance-otp-audit"]
    status = started.status()
    assert status.state == STATE_LAST_GOOD_COPY and "broken" in status.error
    assert "last good copy" in status.source
    [failed] = [record for record in caplog.records if record.getMessage() == "policy_load_failed"]
    assert failed.levelno == logging.ERROR and failed.fields["using"] == STATE_LAST_GOOD_COPY
    assert started.enforceable() is started.current()

    path.write_text(AUDIT_RULE.replace("OTP]", "OTP, EMAIL]"))
    assert started.status().state == STATE_CURRENT and started.status().error is None
    assert set(started.current().rules[0].require_mfa) == {"OTP", "EMAIL"}
    assert "OTP, EMAIL" in snapshots.load().text, "the newly loaded file replaces the saved copy"


def test_a_bad_file_with_no_saved_copy_starts_with_no_rules_and_work_waits(tmp_path, snapshots):
    """With neither a valid file nor a copy the source has no rules; the worker's getter is a temporary error."""
    path = tmp_path / "policies.yaml"
    path.write_text(BROKEN)
    started = PolicySource(path, snapshots=snapshots, strict=False)
    assert started.current().rules == ()
    assert started.status().state == STATE_NONE
    with pytest.raises(PolicyUnavailableError) as caught:
        started.enforceable()
    assert isinstance(caught.value, TemporaryError) and "broken" in str(caught.value)
    with pytest.raises(PolicyError):
        PolicySource(path)  # the CLI's strict source still refuses the file


@pytest.mark.timeout(30)
def test_a_policy_path_that_blocks_on_read_never_hangs_the_caller(tmp_path, snapshots):
    """A FIFO with no writer (like a hung mount) costs one helper thread; callers return within the timeout."""
    good = tmp_path / "policies.yaml"
    good.write_text(AUDIT_RULE)
    fifo = tmp_path / "policies.fifo"
    os.mkfifo(fifo)
    try:
        started_at = time.monotonic()
        source = PolicySource(fifo, snapshots=snapshots, strict=False, read_timeout=0.3)
        assert time.monotonic() - started_at < 5
        assert source.status().state == STATE_NONE and "has not finished" in source.status().error

        running = PolicySource(good, snapshots=snapshots, strict=False, check_interval=0, read_timeout=0.3)
        running.path = fifo
        for _ in range(3):  # one outstanding read at a time: later checks do not wait for it
            started_at = time.monotonic()
            assert [rule.name for rule in running.current().rules] == ["finance-otp-audit"]
            assert time.monotonic() - started_at < 2
        assert running.status().state == STATE_PREVIOUS and "has not finished" in running.status().error
    finally:
        _release_fifo_readers(fifo)


@pytest.mark.timeout(30)
def test_a_read_that_finishes_late_never_brings_back_what_the_file_held_before(tmp_path, snapshots):
    """A read that outlived its call may carry the file as it was before an edit: nobody uses its bytes."""
    good = tmp_path / "policies.yaml"
    good.write_text(AUDIT_RULE)
    fifo = tmp_path / "policies.fifo"
    os.mkfifo(fifo)
    source = PolicySource(good, snapshots=snapshots, strict=False, check_interval=0, read_timeout=0.3)
    source.path = fifo
    try:
        assert source.status().state == STATE_PREVIOUS  # the first read timed out and is still running
        late = threading.Timer(0.1, lambda: fifo.write_text(AUDIT_RULE.replace("finance-otp-audit", "stale")))
        late.start()
        status = source.status()  # the late read answers while this check would wait for it: nobody waits
        late.join()
        assert status.state == STATE_PREVIOUS and "has not finished" in status.error
        source.path = good
        good.write_text(BROKEN)
        wait_until(lambda: source.status().error and "has not finished" not in source.status().error)
        assert source.status().state == STATE_PREVIOUS
        assert [rule.name for rule in source.current().rules] == ["finance-otp-audit"]
    finally:
        _release_fifo_readers(fifo)


def _release_fifo_readers(fifo):
    """Open the FIFO for writing and close it, so that blocked readers see end of file and finish."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_create_app_with_a_bad_policy_file_serves_and_says_so(settings, tmp_path, emulator):
    """A bad policy file at start does not stop create_app: deliveries get 200 and /readyz shows the state."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BROKEN)
    application = create_app(replace(settings, policy_file=bad), configure_logs=False)
    try:
        client = application.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 200
        checks = ready.get_json()["checks"]
        assert checks["policy_state"] == STATE_NONE and "broken" in checks["policy_error"]
        body = event_body(emulator.state, "login", emulator.users["fin.alice"])
        response = client.post(
            "/webhooks/genauth",
            json=body,
            headers={"x-authing-token": WEBHOOK_SECRET, "x-authing-userpool-id": emulator.state.userpool_id},
        )
        assert response.status_code == 200
    finally:
        application.extensions[EXTENSION].engine.dispose()


@pytest.mark.timeout(60)
def test_readyz_answers_quickly_while_the_policy_path_blocks(live_service, tmp_path):
    """/readyz answers within the read timeout even when the policy file is a FIFO nobody writes to."""
    policies = live_service.app.extensions[EXTENSION].policies
    fifo = tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    policies.check_interval = 0
    policies.read_timeout = 0.5
    policies.path = fifo
    try:
        for _ in range(2):
            response = requests.get(f"{live_service.url}/readyz", timeout=10)
            assert response.status_code == 200
            assert "has not finished" in response.json()["checks"]["policy_error"]
    finally:
        _release_fifo_readers(fifo)


def test_each_decision_names_the_policy_digest_and_service_version_it_was_made_under(
    settings, schema_template, tmp_path, emulator
):
    """A decision made after a policy edit carries the new file's digest; every one carries the package's
    version (what ``mfa-enforcer --version`` prints), and the admin API lists both."""
    path = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", path)
    settings = replace(settings, policy_file=path, policy_check_interval=0.0)
    schema_template.apply(settings.database_url)
    app = create_app(settings, configure_logs=False)
    engine = app.extensions[EXTENSION].engine
    worker = Services(settings, engine).worker(app.extensions[EXTENSION].policies.current)
    alice = emulator.users["fin.alice"]
    try:
        enqueue(engine, alice)
        drain(worker, engine)
        path.write_text(AUDIT_RULE)
        enqueue(engine, alice)
        drain(worker, engine)
        after, before = decisions_for_user(engine, alice)
        answer = app.test_client().get(
            f"/api/users/{alice}/decisions", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    finally:
        worker.reconciler.client.close()
        stop_worker(app)
        engine.dispose()
    assert before["policy_digest"] == hashlib.sha256((ROOT / "config" / "policies.yaml").read_bytes()).hexdigest()
    assert after["policy_digest"] == hashlib.sha256(AUDIT_RULE.encode()).hexdigest()
    assert {before["service_version"], after["service_version"]} == {version("mfa-enforcer")}
    listed = answer.get_json()["decisions"][0]
    assert (listed["policy_digest"], listed["service_version"]) == (after["policy_digest"], version("mfa-enforcer"))
