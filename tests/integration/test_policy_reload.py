"""The policy file is reloaded when it changes, and a bad edit never replaces good rules."""

from __future__ import annotations

import logging
import shutil

import requests

from service.policy_source import PolicySource
from tests.conftest import ROOT

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
