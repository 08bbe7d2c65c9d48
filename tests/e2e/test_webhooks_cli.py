"""`mfa-enforcer webhooks subscribe | list | test` as a subprocess against the emulator and the running service:
one webhook however often it runs, exactly the events the rules need, warnings about the URL, and GenAuth's
test delivery arriving at the service and being accepted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.cli.webhooks import BASE_EVENTS, events_for
from service.policy.facts import Fact, Role
from service.policy.rules import Match, Policy, Rule
from service.store.tables import events
from tests.support.processes import free_port
from tests.support.values import WEBHOOK_SECRET

BIN = Path(sys.executable).parent
FINANCE_POLICY = "policies:\n  - name: finance-sms\n    match: {departments: [finance]}\n    require_mfa: [SMS]\n"
DOMAIN_POLICY = (
    "policies:\n  - name: corp-email\n    match: {email_domains: [corp.example]}\n    require_mfa: [EMAIL]\n"
)
DEPARTMENT_EVENTS = [
    "organization:member-added",
    "organization:member-removed",
    "organization:node-moved",
    "organization:node-added",
    "organization:node-updated",
    "organization:node-deleted",
    "organization:created",
    "organization:deleted",
    "organization:imported",
    "organization:tree-updated",
]
SETTINGS_EVENTS = ["application:mfa:enabled", "application:mfa:disabled"]
"""With any rule: the MFA settings above the users changed (service.enforcement.effective)."""


def cli_env(emulator, database_url, policy_file):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GENAUTH_", "ENFORCER_"))}
    env.update(
        GENAUTH_HOST=emulator.url,
        GENAUTH_ACCESS_KEY_ID=emulator.state.access_key_id,
        GENAUTH_ACCESS_KEY_SECRET=emulator.state.access_key_secret,
        GENAUTH_WEBHOOK_SECRET=f"{WEBHOOK_SECRET},older-secret-0123456789",
        GENAUTH_USERPOOL_ID=emulator.state.userpool_id,
        DATABASE_URL=database_url,
        POLICY_FILE=str(policy_file),
        ENFORCER_MIGRATE_ON_START="true",
    )
    return env


def run_cli(env, *args):
    return subprocess.run(
        [str(BIN / "mfa-enforcer"), "webhooks", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text(FINANCE_POLICY)
    return path


@pytest.fixture
def env(emulator, database_url, policy_file):
    return cli_env(emulator, database_url, policy_file)


def rule_with(**match):
    return Rule(name="r", description="", mode="enforce", match=Match(**match), require_mfa=("SMS",))


def test_events_follow_the_facts_the_rules_read():
    """Every policy gets the user events; departments, groups and roles each add the events that change them;
    any rule adds the events that change the pool's and apps' MFA settings."""
    assert events_for(Policy(rules=())) == list(BASE_EVENTS)
    by_domain = Policy(rules=(rule_with(email_domains=("corp.example",)),))
    assert events_for(by_domain) == [*BASE_EVENTS, *SETTINGS_EVENTS]
    by_department = Policy(rules=(rule_with(departments=("finance",)),))
    assert events_for(by_department) == [*BASE_EVENTS, *DEPARTMENT_EVENTS, *SETTINGS_EVENTS]
    assert Fact.DEPARTMENTS in by_department.needs
    by_group_and_role = Policy(rules=(rule_with(groups=("admins",), roles=(Role("admin"),)),))
    assert events_for(by_group_and_role) == [
        *BASE_EVENTS,
        "group:member-added",
        "group:member-removed",
        "role:assigned",
        "role:unassigned",
        *SETTINGS_EVENTS,
    ]
    assert {"user:created", "register", "login", "user:updated", "user:deleted", "user:archived"} == set(BASE_EVENTS)


def test_subscribe_twice_leaves_one_webhook_with_exactly_the_needed_events(emulator, env):
    """subscribe creates a JSON webhook with the first secret and the rules' events; again, it changes nothing."""
    url = f"http://127.0.0.1:{free_port()}/webhooks/genauth"
    first = run_cli(env, "subscribe", "--url", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("created webhook")
    assert "is not HTTPS" in first.stderr and "unreachable from here" in first.stderr
    second = run_cli(env, "subscribe", "--url", url, "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["outcome"] == "unchanged"
    [webhook] = emulator.state.webhooks.all()
    assert (webhook["url"], webhook["name"], webhook["contentType"]) == (url, "mfa-enforcer", "application/json")
    assert webhook["enabled"] is True and webhook["secret"] == WEBHOOK_SECRET
    assert webhook["events"] == [*BASE_EVENTS, *DEPARTMENT_EVENTS, *SETTINGS_EVENTS]


def test_subscribe_updates_our_webhook_when_the_rules_or_its_state_change(emulator, env, policy_file):
    """A changed policy, a disabled webhook or an old secret: subscribe brings the same webhook up to date."""
    url = "https://mfa.example.test/webhooks/genauth"
    policy_file.write_text(DOMAIN_POLICY)
    assert run_cli(env, "subscribe", "--url", url).returncode == 0
    [created] = emulator.state.webhooks.all()
    assert created["events"] == [*BASE_EVENTS, *SETTINGS_EVENTS]
    emulator.state.webhooks.update(created["webhookId"], {"enabled": False, "secret": "older-secret-0123456789"})
    policy_file.write_text(FINANCE_POLICY)
    result = run_cli(env, "subscribe", "--url", url)
    assert result.returncode == 0 and result.stdout.startswith("updated webhook")
    assert "not HTTPS" not in result.stderr
    [updated] = emulator.state.webhooks.all()
    assert updated["webhookId"] == created["webhookId"]
    assert updated["enabled"] is True and updated["secret"] == WEBHOOK_SECRET
    assert updated["events"] == [*BASE_EVENTS, *DEPARTMENT_EVENTS, *SETTINGS_EVENTS]


def test_list_shows_our_webhooks_and_what_is_wrong_with_them(emulator, env):
    """list shows ours with its state (never the secret); --all also shows the pool's other webhooks."""
    ours = emulator.state.webhooks.create(
        name="mfa-enforcer",
        url="https://mfa.example.test/webhooks/genauth",
        content_type="application/x-www-form-urlencoded",
        events=["login"],
        enabled=False,
        secret="older-secret-0123456789",
    )
    emulator.state.webhooks.create(
        name="crm",
        url="https://crm.example.test/hook",
        content_type="application/json",
        events=["login"],
        secret="crm-secret",
    )
    result = run_cli(env, "list")
    assert result.returncode == 0, result.stderr
    assert ours["webhookId"] in result.stdout and "crm.example.test" not in result.stdout
    assert "DISABLED" in result.stdout and "missing events user:created" in result.stdout
    assert "secret previous" in result.stdout and "older-secret-0123456789" not in result.stdout
    listed = json.loads(run_cli(env, "list", "--all", "--json").stdout)["webhooks"]
    assert [item["name"] for item in listed] == ["mfa-enforcer", "crm"]
    assert listed[0]["problems"][0] == "disabled" and listed[1]["secret"] == "UNKNOWN to this service"


def test_test_delivery_reaches_the_service_and_is_accepted(emulator, env, live_service):
    """subscribe to the running service, then `webhooks test`: GenAuth's test event is answered and recorded."""
    subscribed = run_cli(env, "subscribe", "--url", live_service.webhook_url)
    assert subscribed.returncode == 0, subscribed.stderr
    assert "unreachable" not in subscribed.stderr
    result = run_cli(env, "test", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accepted"] is True and report["verdict"].startswith("accepted")
    assert report["response"]["success"] is True and report["response"]["event"] == "test"
    with live_service.engine.connect() as connection:
        recorded = connection.execute(sa.select(events.c.id, events.c.outcome).where(events.c.event_name == "test"))
        assert [tuple(row) for row in recorded] == [(report["recorded"]["id"], "test")]
    human = run_cli(env, "test")
    assert human.returncode == 0 and "accepted: the test event arrived" in human.stdout


def test_test_delivery_with_a_wrong_secret_is_reported_rejected(emulator, env, live_service):
    """A webhook whose secret the service does not know: the service answers 401, and `test` exits 1."""
    emulator.state.webhooks.create(
        name="mfa-enforcer",
        url=live_service.webhook_url,
        content_type="application/json",
        events=list(BASE_EVENTS),
        secret="not-the-secret",
    )
    result = run_cli(env, "test", "--wait", "0.5")
    assert result.returncode == 1
    assert "REJECTED: the service refused the secret" in result.stdout


def test_test_without_a_webhook_says_to_subscribe(env):
    """With no webhook of ours, `test` fails with the command to run first."""
    result = run_cli(env, "test")
    assert result.returncode == 1 and "webhooks subscribe" in result.stderr


def test_subscribe_to_a_new_url_moves_the_webhook_it_manages(emulator, env):
    """subscribe --url NEW updates our webhook (same id, new URL) instead of leaving the old one delivering."""
    old = "https://old.example.test/webhooks/genauth"
    new = "https://new.example.test/webhooks/genauth"
    assert run_cli(env, "subscribe", "--url", old).returncode == 0
    [created] = emulator.state.webhooks.all()
    moved = run_cli(env, "subscribe", "--url", new, "--json")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["outcome"] == "updated" and json.loads(moved.stdout)["previousUrl"] == old
    [webhook] = emulator.state.webhooks.all()
    assert webhook["webhookId"] == created["webhookId"] and webhook["url"] == new
    text = run_cli(env, "subscribe", "--url", old)
    assert "moved from https://new.example.test" in text.stdout


def test_remove_deletes_our_webhook(emulator, env):
    """remove deletes the webhook named mfa-enforcer and leaves the pool's other webhooks."""
    emulator.state.webhooks.create(
        name="crm", url="https://crm.example.test/hook", content_type="application/json", events=["login"]
    )
    assert run_cli(env, "subscribe", "--url", "https://mfa.example.test/webhooks/genauth").returncode == 0
    removed = run_cli(env, "remove")
    assert removed.returncode == 0 and "GenAuth no longer sends there" in removed.stdout, removed.stderr
    assert [webhook["name"] for webhook in emulator.state.webhooks.all()] == ["crm"]
    again = run_cli(env, "remove")
    assert again.returncode == 1 and "no such webhook" in again.stderr


def test_list_shows_the_latest_delivery_results_from_genauths_log(emulator, env):
    """list reads get-webhook-logs: the last success and the last failure with its error, never the request."""
    assert run_cli(env, "subscribe", "--url", "https://mfa.example.test/webhooks/genauth").returncode == 0
    [webhook] = emulator.state.webhooks.all()
    quiet = json.loads(run_cli(env, "list", "--json").stdout)["webhooks"][0]["deliveries"]
    assert quiet == {"logged": 0, "lastSuccess": None, "lastFailure": None}
    for entry in (
        {"eventName": "login", "success": True, "responseStatusCode": 200, "timestamp": "2026-11-01T09:00:00.000+0800"},
        {
            "eventName": "user:updated",
            "success": False,
            "responseStatusCode": 401,
            "responseBody": {"code": "unauthorized", "message": "a valid webhook secret is required"},
            "requestHeaders": {"x-authing-token": "the-secret-itself"},
            "timestamp": "2026-11-01T10:00:00.000+0800",
        },
        {
            "eventName": "login",
            "success": False,
            "errorMessage": "ERRTIMEOUT",
            "timestamp": "2026-11-01T11:00:00.000+0800",
        },
    ):
        emulator.state.webhooks.add_log(webhook["webhookId"], entry)  # newest first, as GenAuth lists them
    text = run_cli(env, "list")
    assert text.returncode == 0, text.stderr
    assert "last success 2026-11-01T09:00:00.000+0800 login HTTP 200" in text.stdout
    assert "last failure 2026-11-01T11:00:00.000+0800 login: ERRTIMEOUT" in text.stdout
    assert "the-secret-itself" not in text.stdout
    deliveries = json.loads(run_cli(env, "list", "--json").stdout)["webhooks"][0]["deliveries"]
    assert deliveries["logged"] == 3 and deliveries["lastFailure"]["error"] == "ERRTIMEOUT"
    assert "the-secret-itself" not in json.dumps(deliveries)
