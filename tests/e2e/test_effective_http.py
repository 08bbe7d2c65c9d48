"""Effective state end to end over HTTP (issue 14, "Done means"): with SMS switched off for the pool in the
emulator, a finance user's decision says enforced but not effective; ``report`` (the command and the admin
API), ``/readyz`` and ``/metrics`` say why and what to switch on; switching SMS on clears it without a restart.
An ``application:mfa:*`` delivery is accepted and makes the workers read the app's settings again."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace

import requests

from genauth_emulator.mfa_settings import factor_events
from genauth_emulator.payloads import event_body
from service.app import WORKERS_EXTENSION
from tests.support.live import serve_service
from tests.support.processes import BIN, service_env
from tests.support.store import wait_for_decision
from tests.support.values import ADMIN_TOKEN, ROOT
from tests.support.waiting import wait_until

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POOL_FIX = "switch SMS on for the pool (Security Settings → Multi-factor Authentication)"


def cli(*args, env):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def readyz(url):
    response = requests.get(f"{url}/readyz", timeout=5)
    assert response.status_code == 200, "a warning never makes the service unready"
    return response.json()["checks"]


def metric(url, name):
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_sms_off_for_the_pool_is_reported_and_switching_it_on_clears_it_without_a_restart(
    settings, emulator, database_url
):
    emulator.state.disable_global_mfa_factors(["SMS"])  # before the service starts: its first read sees it
    with serve_service(settings, emulator, run_worker=True) as live_service:
        check_sms_off_then_on(live_service, emulator, database_url)


def check_sms_off_then_on(live_service, emulator, database_url):
    url, alice = live_service.url, emulator.users["fin.alice"]
    assert live_service.sender.deliver(event_body(emulator.state, "login", alice)).status_code == 200
    decision = wait_for_decision(live_service.engine, alice)
    assert decision["action"] == "enforced"
    assert decision["not_effective"][0]["why"] == "SMS is not enabled for the pool"

    checks = wait_until(lambda: (c := readyz(url)).get("not_effective_users") == 1 and c, what="the readyz warning")
    assert POOL_FIX in checks["not_effective_warning"]
    assert wait_until(lambda: metric(url, "mfa_enforcer_not_effective_users") == 1.0, what="the metric")
    report = requests.get(f"{url}/api/report", headers=AUTH, timeout=5).json()
    assert report["totals"]["not-effective"] == 1 and report["switch_on"] == [{"fix": POOL_FIX, "users": 1}]
    env = service_env(emulator, database_url)
    text = cli("report", env=env)
    assert text.returncode == 0 and "not-effective" in text.stdout and POOL_FIX in text.stdout, text.stderr
    as_json = json.loads(cli("report", "--json", env=env).stdout)
    assert as_json["rules"]["finance-sms"]["not-effective"] == 1
    explained = requests.get(f"{url}/api/users/{alice}/explain", headers=AUTH, timeout=10).json()
    assert explained["not_effective"][0]["fix"] == POOL_FIX

    emulator.state.enable_global_mfa_factors(["SMS"])
    for worker in live_service.app.extensions[WORKERS_EXTENSION]:
        worker.reconciler.layers.ttl = 0.5  # as the TTL (LAYERS_TTL) would, sooner: the same process throughout
    wait_until(
        lambda: wait_for_decision(live_service.engine, alice, count=2)["not_effective"] is None, what="redecided"
    )
    wait_until(lambda: readyz(url).get("not_effective_users") == 0, what="the readyz warning to clear")
    assert "not_effective_warning" not in readyz(url)
    report = requests.get(f"{url}/api/report", headers=AUTH, timeout=5).json()
    assert report["totals"]["not-effective"] == 0 and report["switch_on"] == []


APP_POLICY = """
version: 1
policies:
  - name: portal-sms
    match:
      departments: [finance]
    require_mfa: [SMS]
    apps: [{app}]
"""


def test_an_application_mfa_delivery_makes_the_workers_read_the_app_again(settings, emulator, tmp_path):
    """The app enables SMS and GenAuth sends application:mfa:enabled: the intake records it (200, ignored for
    work), the workers see it in the database and decide the not-effective user again: effective."""
    portal = emulator.state.add_application("Payroll portal")
    emulator.state.update_application_mfa(portal, disabled=["SMS"])
    policy_file = tmp_path / "apps.yaml"
    policy_file.write_text(APP_POLICY.format(app=portal))
    with serve_service(replace(settings, policy_file=policy_file), emulator, run_worker=True) as live:
        alice = emulator.users["fin.alice"]
        assert live.sender.deliver(event_body(emulator.state, "login", alice)).status_code == 200
        decision = wait_for_decision(live.engine, alice)
        assert decision["not_effective"][0]["why"] == f"app {portal} does not enable SMS"
        emulator.state.update_application_mfa(portal, enabled=["SMS"])
        [(_, body)] = factor_events(portal, set(), {"SMS"})
        answer = live.sender.deliver(body)
        assert answer.status_code == 200, answer.text
        again = wait_until(
            lambda: (d := wait_for_decision(live.engine, alice, count=2))["not_effective"] is None and d,
            what="alice decided again",
        )
        assert again["trigger"] == "mfa-settings-changed"
