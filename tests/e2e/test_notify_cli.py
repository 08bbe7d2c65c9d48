"""``mfa-enforcer notify`` and ``policy check`` as an operator runs them: the dry run prints what is due and sends
nothing, the real run sends the digest to a real webhook receiver once; ``notify_users`` without e-mail stops
``policy check`` with one line naming the rule and field."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from service.cli import main
from tests.support.notices import webhook_receiver
from tests.support.values import ROOT

NOTIFYING = """\
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
    notify_users: {before: [7d, 1d]}
"""
VARIABLES = ("ENFORCER_SMTP_URL", "ENFORCER_NOTIFY_FROM", "ENFORCER_NOTIFY_ADMINS", "ENFORCER_NOTIFY_WEBHOOK")


@pytest.fixture
def env(monkeypatch, emulator, database_url, schema_template):
    """The worker's environment on a migrated database, with no notification channel yet."""
    schema_template.apply(database_url)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    values = {
        "GENAUTH_HOST": emulator.url,
        "GENAUTH_ACCESS_KEY_ID": emulator.state.access_key_id,
        "GENAUTH_ACCESS_KEY_SECRET": emulator.state.access_key_secret,
        "DATABASE_URL": database_url,
        "POLICY_FILE": str(ROOT / "config" / "policies.yaml"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_notify_users_without_email_stops_policy_check_naming_rule_and_field(tmp_path, monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "policies.yaml"
    path.write_text(NOTIFYING)

    refused = CliRunner().invoke(main, ["policy", "check", str(path)])
    monkeypatch.setenv("ENFORCER_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("ENFORCER_NOTIFY_FROM", "mfa@acme.example")
    accepted = CliRunner().invoke(main, ["policy", "check", str(path)])

    assert refused.exit_code == 1
    assert "policies[0] (finance-sms): notify_users: e-mail is not configured" in refused.stderr
    assert "Traceback" not in refused.output
    assert accepted.exit_code == 0, accepted.output


def test_notify_without_a_channel_is_refused(env):
    result = CliRunner().invoke(main, ["notify"])
    assert result.exit_code == 2
    assert "no channel is configured" in result.stderr


def test_the_dry_run_prints_the_digest_and_the_run_sends_it_once(env):
    """``--dry-run`` lists the day's digest as new and sends nothing; ``notify`` sends it; a second ``notify``
    that day sends nothing more."""
    with webhook_receiver() as (hook, url):
        env.setenv("ENFORCER_NOTIFY_WEBHOOK", url)
        dry = CliRunner().invoke(main, ["notify", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "digest by webhook to webhook (new): admins|-|digest|" in dry.stdout
        assert "1 notice(s) due; dry run: nothing queued or sent" in dry.stdout
        assert hook.bodies == []

        first = CliRunner().invoke(main, ["notify"])
        second = CliRunner().invoke(main, ["notify"])

    assert first.exit_code == 0, first.output
    assert "queued 1, sent 1, not sent 0" in first.stdout
    assert "queued 0, sent 0, not sent 0" in second.stdout
    [body] = hook.bodies
    assert body["kind"] == "digest" and body["text"].startswith("mfa-enforcer digest for ")
    assert url not in first.output


def test_notify_users_without_email_stops_the_worker_at_start(env, tmp_path):
    """The environment and the policy disagree: the worker does not start, and says which rule and field."""
    path = tmp_path / "policies.yaml"
    path.write_text(NOTIFYING)
    env.setenv("POLICY_FILE", str(path))

    result = CliRunner().invoke(main, ["worker"])

    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        "policies[0] (finance-sms): notify_users: e-mail is not configured; set ENFORCER_SMTP_URL and "
        "ENFORCER_NOTIFY_FROM, or remove notify_users"
    )
    assert len(result.stderr.strip().splitlines()) == 1
