"""explain and report, from the command line and the admin API, against the emulator and real decisions."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import replace
from importlib.metadata import version

import pytest
import requests

from genauth_emulator.payloads import event_body
from service.app import WORKERS_EXTENSION
from service.intake.context import EXTENSION
from tests.support.live import serve_service
from tests.support.processes import BIN, service_env
from tests.support.store import wait_for_decision, wait_for_empty_queue
from tests.support.values import ADMIN_TOKEN, ROOT

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def cli(*args, env):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def processed(live_service, emulator):
    """alice enforced, carol unsatisfiable (no phone), frank already compliant, dave out of scope."""
    for name in ("fin.alice", "fin.carol", "fin.frank", "eng.dave"):
        live_service.sender.deliver(event_body(emulator.state, "login", emulator.users[name]))
    for name in ("fin.alice", "fin.carol", "fin.frank", "eng.dave"):
        wait_for_decision(live_service.engine, emulator.users[name])
    wait_for_empty_queue(live_service.engine)
    return live_service


def test_explain_shows_every_rule_and_the_exact_change_without_writing(emulator, database_url, processed):
    """explain fin.bob: finance-sms matches via Payroll's ancestor; SMS would be added, mfaPhone masked."""
    env = service_env(emulator, database_url)
    bob = emulator.users["fin.bob"]
    emulator.journal.clear()
    text = cli("explain", bob, env=env)
    assert text.returncode == 0, text.stderr
    assert "finance-sms (enforce, requires SMS): matched: department finance" in text.stdout
    assert "Enforcement would enable SMS" in text.stdout
    assert "mfaPhone" in text.stdout and emulator.state.user(bob)["phone"] not in text.stdout
    digest = hashlib.sha256((ROOT / "config" / "policies.yaml").read_bytes()).hexdigest()
    assert f"Policy in force: {digest} (mfa-enforcer {version('mfa-enforcer')})" in text.stdout
    data = json.loads(cli("explain", bob, "--json", env=env).stdout)
    assert (data["decision"]["policy_digest"], data["decision"]["service_version"]) == (digest, version("mfa-enforcer"))
    [rule] = [r for r in data["rules"] if r["rule"] == "finance-sms"]
    assert rule["matched"] and rule["outcome"] == "enforce [SMS]"
    assert data["current_factors"] == ["EMAIL"] and data["change"]["enable"] == ["SMS"]
    assert (
        data["change"]["fields"]["mfaPhone"]["after"].startswith("138")
        and "*" in data["change"]["fields"]["mfaPhone"]["after"]
    )
    assert emulator.journal.count("/api/v3/set-mfa-status") == 0, "explain must never write"
    missing = cli("explain", "000000000000000000000000", env=env)
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_report_counts_outcomes_per_rule_from_decisions(emulator, database_url, processed):
    """report: finance-sms has one enforced, one unsatisfiable and one compliant user, with the open case dated."""
    env = service_env(emulator, database_url)
    data = json.loads(cli("report", "--json", env=env).stdout)
    counts = data["rules"]["finance-sms"]
    assert (counts["enforced"], counts["unsatisfiable"], counts["compliant"]) == (1, 1, 1)
    assert counts["oldest_non_compliance"] is not None
    assert data["totals"]["unsatisfiable"] == 1 and data["users"] == 3
    text = cli("report", env=env)
    assert text.returncode == 0 and "finance-sms" in text.stdout and "oldest non-compliance" in text.stdout
    unknown = cli("report", "--rule", "nope", env=env)
    assert unknown.returncode == 2 and "finance-sms" in unknown.stderr


def test_admin_api_requires_the_token_and_serves_report_decisions_and_explain(emulator, processed):
    """Without the bearer token 401; with it the report, a user's decisions and a live explanation."""
    url, alice = processed.url, emulator.users["fin.alice"]
    denied = requests.get(f"{url}/api/report", timeout=5)
    assert denied.status_code == 401 and denied.json()["code"] == "unauthorized"
    assert requests.get(f"{url}/api/report", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    report = requests.get(f"{url}/api/report", headers=AUTH, timeout=5).json()
    assert report["rules"]["finance-sms"]["enforced"] == 1
    decisions = requests.get(f"{url}/api/users/{alice}/decisions", headers=AUTH, timeout=5).json()["decisions"]
    assert decisions[0]["action"] == "enforced" and decisions[0]["outcomes"] == {"finance-sms": "enforce [SMS]"}
    explained = requests.get(f"{url}/api/users/{alice}/explain", headers=AUTH, timeout=10).json()
    assert explained["current_factors"] == ["SMS"] and explained["change"]["enable"] == []
    unknown = requests.get(f"{url}/api/users/000000000000000000000000/explain", headers=AUTH, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_user"
    bad_rule = requests.get(f"{url}/api/report?rule=nope", headers=AUTH, timeout=5)
    assert bad_rule.status_code == 404 and "finance-sms" in bad_rule.json()["message"]


def test_admin_api_is_absent_without_a_token(settings, emulator):
    """With ENFORCER_ADMIN_TOKEN unset the admin routes answer 404."""
    no_token = replace(settings, webhook=replace(settings.webhook, admin_token=""))
    with serve_service(no_token, emulator, run_worker=False) as service:
        response = requests.get(f"{service.url}/api/report", headers=AUTH, timeout=5)
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_admin_explain_shares_the_process_rate_limit_with_its_workers(settings, emulator):
    """explain over the admin API waits on the same GENAUTH_RATE_LIMIT bucket as the process's workers: at 10
    calls/s (burst 1) three explanations (ten GenAuth calls) take at least 0.8 s."""
    paced = replace(settings, genauth=replace(settings.genauth, rate_limit=10.0, rate_burst=1))
    alice = emulator.users["fin.alice"]
    with serve_service(paced, emulator, run_worker=True) as service:
        state = service.app.extensions[EXTENSION]
        workers = service.app.extensions[WORKERS_EXTENSION]
        assert state.limiter is not None
        assert all(worker.reconciler.client.limiter is state.limiter for worker in workers)
        assert all(worker.reconciler.client.breaker is state.breaker for worker in workers)
        emulator.journal.clear()
        started = time.monotonic()
        for _ in range(3):
            answer = requests.get(f"{service.url}/api/users/{alice}/explain", headers=AUTH, timeout=20)
            assert answer.status_code == 200
        elapsed = time.monotonic() - started
        calls = emulator.journal.count()
        assert calls >= 10
        assert elapsed >= (calls - 2) / 10.0, f"{calls} GenAuth calls in {elapsed:.2f} s: explain is not paced"


def test_explain_says_not_read_for_a_user_no_rule_matches(settings, emulator):
    """A user outside every rule: MFA is never read, and explain shows the current factors as not read (null)."""
    dave = emulator.users["eng.dave"]
    with serve_service(settings, emulator, run_worker=False) as service:
        explained = requests.get(f"{service.url}/api/users/{dave}/explain", headers=AUTH, timeout=10).json()
        assert explained["current_factors"] is None
        assert explained["decision"]["action"] == "none" and "MFA not checked" in explained["decision"]["reason"]
