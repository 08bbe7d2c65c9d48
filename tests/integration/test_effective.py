"""Effective state (docs/architecture.md, principle 13): a decision says whether GenAuth will challenge each
factor enforcement relies on, given the pool's factors and, for a rule with ``apps``, each app's settings; the
report, explain and /readyz show the users it will not, with what to switch on; switching it on clears them
without a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from genauth_emulator.mfa_settings import factor_events
from service.cli.insight import render_explanation, render_report
from service.enforcement.explaining import explain_user
from service.intake.context import EXTENSION
from service.intake.views import database_gauges
from service.policy import load_policy
from service.reports import build_report
from service.services import Services
from service.store.decisions import decisions_for_user
from service.store.effectiveness import REQUEUE_REASON, readiness
from service.store.inbox import Delivery, record_delivery
from tests.support.factories import enqueue
from tests.support.store import work_rows

TODAY = date(2026, 12, 1)
POOL_SETTINGS = "/api/v3/get-global-mfa-settings"
GET_APP = "/api/v3/get-application"
TRIGGER_DATA = "/api/v3/get-mfa-trigger-data"
POOL_FIX = "switch SMS on for the pool (Security Settings → Multi-factor Authentication)"


def latest(engine, user_id):
    return decisions_for_user(engine, user_id, limit=1)[0]


def report_of(engine, policy):
    return build_report(engine, policy, today=TODAY, with_users=True)


def stale(worker):
    """The next use of the worker's MFA settings reads them again (as the TTL would)."""
    worker.reconciler.layers.ttl = 0.0


def test_a_finance_user_enforced_while_the_pool_has_sms_off_is_enforced_but_not_effective(
    app, worker, engine, emulator
):
    """SMS off for the pool: alice's decision says enforced, SMS not effective and why; the report counts her
    not-effective and says what to switch on; /readyz (still ready) and the metric say so too."""
    emulator.state.disable_global_mfa_factors(["SMS"])
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    worker.run_until_idle()
    decision = latest(engine, alice)
    assert decision["action"] == "enforced"
    why = "SMS is not enabled for the pool"
    assert decision["not_effective"] == [
        {"factor": "SMS", "rules": ["finance-sms"], "app": None, "why": why, "fix": POOL_FIX}
    ]
    assert "not effective: SMS is not enabled for the pool" in decision["reason"]
    policy = app.extensions[EXTENSION].policies.current()
    report = report_of(engine, policy)
    assert report["totals"]["not-effective"] == 1 and report["totals"]["enforced"] == 0
    assert report["rules"]["finance-sms"]["not-effective"] == 1
    assert report["switch_on"] == [{"fix": POOL_FIX, "users": 1}]
    [listed] = [entry for entry in report["users_listed"] if entry["user_id"] == alice]
    assert listed["outcome"] == "not-effective" and listed["not_effective"][0]["why"] == why
    text = "\n".join(render_report(report))
    assert "Not effective: 1 user(s)" in text and POOL_FIX in text
    shown = readiness(engine, now=0.0)
    assert shown["not_effective_users"] == 1 and POOL_FIX in shown["not_effective_warning"]
    assert database_gauges(engine, 0.0)["not_effective_users"] == 1


def test_switching_sms_on_for_the_pool_clears_the_warning_without_a_restart(app, worker, engine, emulator):
    """The admin switches SMS on: the settings read again (on their TTL, between jobs) differ, so alice, whose
    latest decision is not effective, is queued and decided again: effective, and the report and /readyz clear;
    so is frank (SMS already on), and dave, whom no rule matches, is not queued."""
    emulator.state.disable_global_mfa_factors(["SMS"])
    alice, frank, dave = emulator.users["fin.alice"], emulator.users["fin.frank"], emulator.users["eng.dave"]
    enqueue(engine, alice, frank, dave)
    worker.run_until_idle()
    assert latest(engine, frank)["not_effective"][0]["why"] == "SMS is not enabled for the pool"
    worker.reconciler.keep_fresh()
    assert work_rows(engine) == [], "settings that did not change queue nobody"
    emulator.state.enable_global_mfa_factors(["SMS"])
    stale(worker)
    worker.reconciler.keep_fresh()
    assert sorted(row["user_id"] for row in work_rows(engine)) == sorted([alice, frank])
    assert {row["reason"] for row in work_rows(engine)} == {REQUEUE_REASON}
    worker.run_until_idle()
    for user in (alice, frank):
        decision = latest(engine, user)
        assert decision["not_effective"] is None and decision["action"] == "none", decision["reason"]
    report = report_of(engine, app.extensions[EXTENSION].policies.current())
    assert report["totals"]["not-effective"] == 0 and report["switch_on"] == []
    assert report["totals"]["compliant"] == 2
    assert readiness(engine, now=1000.0) == {"not_effective_users": 0}


def test_the_pool_settings_are_read_once_per_process_not_per_user(worker, engine, emulator):
    """Rules without apps: one get-global-mfa-settings for a process's jobs, no app reads at all."""
    for name in ("fin.alice", "fin.bob", "fin.frank", "eng.dave", "new.erin"):
        enqueue(engine, emulator.users[name])
    worker.run_until_idle()
    assert len(emulator.journal.entries(POOL_SETTINGS)) == 1
    assert worker.reconciler.layers.loads == 1 and worker.reconciler.layers.calls == 1
    assert emulator.journal.entries(GET_APP) == [] and emulator.journal.entries(TRIGGER_DATA) == []


APP_POLICY = """
version: 1
policies:
  - name: payroll-app-sms
    match:
      departments: [finance]
    require_mfa: [SMS]
    apps: [{apps}]
"""


@pytest.fixture
def app_worker(app, settings, engine, tmp_path):
    """A worker whose one rule names the applications given (``make(*app_ids)``)."""
    made = []

    def make(*app_ids):
        path = tmp_path / "apps.yaml"
        path.write_text(APP_POLICY.format(apps=", ".join(app_ids)))
        policy = load_policy(path)
        worker = Services(replace(settings, policy_file=path), engine).worker(lambda: policy)
        made.append(worker)
        return worker, policy

    yield make
    for worker in made:
        worker.reconciler.client.close()


def test_an_app_rule_whose_app_does_not_enable_sms_is_not_effective_until_the_app_switches_it_on(
    app_worker, engine, emulator
):
    """The rule names an app with its own MFA settings, SMS off: after the write, the user's view in that app
    (get-mfa-trigger-data) lacks SMS: "app X does not enable SMS". The app switching SMS on sends
    application:mfa:enabled; once the event is recorded, the settings are read again and the user re-decided."""
    portal = emulator.state.add_application("Payroll portal")
    emulator.state.update_application_mfa(portal, disabled=["SMS"])
    worker, policy = app_worker(portal)
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    worker.run_until_idle()
    decision = latest(engine, alice)
    assert decision["action"] == "enforced"
    [gap] = decision["not_effective"]
    assert (gap["factor"], gap["app"], gap["why"]) == ("SMS", portal, f"app {portal} does not enable SMS")
    assert "own MFA settings" in gap["fix"]
    assert len(emulator.journal.entries(TRIGGER_DATA)) == 1
    assert report_of(engine, policy)["rules"]["payroll-app-sms"]["not-effective"] == 1

    emulator.state.update_application_mfa(portal, enabled=["SMS"])
    [(name, body)] = factor_events(portal, set(), {"SMS"})
    record_delivery(engine, Delivery(name, "pool", (), "0" * 64, "application/json", "ignored"), now=1.0)
    worker.reconciler.layers.check_interval = 0.0
    worker.reconciler.keep_fresh()
    assert [row["user_id"] for row in work_rows(engine)] == [alice]
    worker.run_until_idle()
    assert latest(engine, alice)["not_effective"] is None
    assert body["data"]["applicationId"] == portal


def test_an_app_that_uses_the_pool_settings_costs_no_read_per_user(app_worker, engine, emulator):
    """An app without its own security rules uses the pool's factors: get-application once, no trigger data
    per user, and with SMS off for the pool the gap is the pool's."""
    inheriting = emulator.state.add_application("Intranet")
    emulator.state.disable_global_mfa_factors(["SMS"])
    worker, _ = app_worker(inheriting)
    alice, bob = emulator.users["fin.alice"], emulator.users["fin.bob"]
    enqueue(engine, alice, bob)
    worker.run_until_idle()
    assert len(emulator.journal.entries(GET_APP)) == 1 and emulator.journal.entries(TRIGGER_DATA) == []
    for user in (alice, bob):
        [gap] = latest(engine, user)["not_effective"]
        assert gap["why"] == "SMS is not enabled for the pool" and gap["app"] is None


def test_an_unknown_app_is_reported_as_not_effective_with_the_rule_to_check(app_worker, engine, emulator):
    """An app id GenAuth does not know (apiCode 2011) is never counted as effective: the gap names the rule."""
    worker, _ = app_worker("no-such-app")
    alice = emulator.users["fin.alice"]
    enqueue(engine, alice)
    worker.run_until_idle()
    decision = latest(engine, alice)
    assert decision["action"] == "enforced"
    [gap] = decision["not_effective"]
    assert gap["app"] == "no-such-app" and "payroll-app-sms" in gap["fix"]


def test_explain_shows_the_factor_the_pool_will_not_challenge_and_what_to_switch_on(worker, emulator):
    """explain (live, nothing written) lists the gap, counts the rule as not-effective and says the fix."""
    emulator.state.disable_global_mfa_factors(["SMS"])
    frank = emulator.users["fin.frank"]
    explanation = explain_user(worker.reconciler, frank)
    [gap] = explanation["not_effective"]
    assert gap["why"] == "SMS is not enabled for the pool"
    [rule] = [r for r in explanation["rules"] if r["rule"] == "finance-sms"]
    assert rule["report"] == "not-effective"
    assert POOL_FIX in explanation["decision"]["reason"]
    text = "\n".join(render_explanation(explanation))
    assert f"Not effective (finance-sms): SMS is not enabled for the pool; to fix: {POOL_FIX}" in text
