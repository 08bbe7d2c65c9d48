"""A misspelled department, group or role does not enforce nobody silently: `policy check --live` fails with
close matches, and a process that runs workers says so in /readyz, its log (once per policy) and a gauge,
and says it again when the policy is fixed or broken by a reload."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import requests

from service.enforcement.references import check_references, references_of
from service.genauth.client import GenAuthClient
from service.policy import parse_policy
from tests.support.live import serve_service
from tests.support.metrics import sample
from tests.support.processes import run_command, service_env
from tests.support.values import ROOT
from tests.support.waiting import wait_until

TYPOS = """policies:
  - name: finanse-sms
    match:
      departments: [finanse]
    require_mfa: [SMS]
  - name: staff
    match:
      any:
        - groups: [contractor]
        - roles: [admn]
        - roles: [{code: admin, namespace: other-app}]
    require_mfa: [OTP]
    exceptions:
      - groups: [mfa-exempt]
        reason: on record
"""
GOOD = """policies:
  - name: finance-sms
    match:
      departments: [Finance, finance-payroll]
    require_mfa: [SMS]
  - name: staff
    match:
      any:
        - groups: [contractors]
        - roles: [admin]
    require_mfa: [OTP]
"""


def test_every_department_group_and_role_the_rules_name_is_found_with_close_matches(emulator, settings):
    """References at any depth and in exceptions are resolved; unknown ones get difflib's close matches."""
    policy = parse_policy(TYPOS)
    assert [(r.kind, r.name) for r in references_of(policy)] == [
        ("department", "finanse"),
        ("group", "contractor"),
        ("role", "admn"),
        ("role", "other-app:admin"),
        ("group", "mfa-exempt"),
    ]
    client = GenAuthClient(settings.genauth)
    try:
        problems = {problem.reference.name: problem for problem in check_references(client, policy)}
        assert check_references(client, parse_policy(GOOD)) == []
    finally:
        client.close()
    assert set(problems) == {"finanse", "contractor", "admn", "other-app:admin"}
    assert problems["finanse"].suggestions[0] == "finance"
    assert "did you mean finance" in problems["finanse"].message
    assert problems["contractor"].suggestions == ("contractors",)
    assert problems["admn"].suggestions == ("admin",)
    assert problems["finanse"].message.startswith("rule finanse-sms: department 'finanse' matches nothing")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_policy_check_live_fails_on_unknown_names_and_passes_on_known_ones(emulator, database_url, tmp_path):
    """`policy check --live` exits 1 naming each unknown reference and a close match; 0 when all exist."""
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(TYPOS)
    good.write_text(GOOD)
    env = service_env(emulator, database_url)
    failed = run_command(["mfa-enforcer", "policy", "check", "--live", str(bad)], env)
    assert failed.returncode == 1
    assert "department 'finanse' matches nothing in GenAuth; did you mean finance" in failed.stderr
    assert "did you mean contractors?" in failed.stderr and "Traceback" not in failed.stderr
    passed = run_command(["mfa-enforcer", "policy", "check", "--live", str(good)], env)
    assert passed.returncode == 0 and "knows every department, group and role" in passed.stdout, passed.stderr
    offline = run_command(["mfa-enforcer", "policy", "check", str(bad)], env)
    assert offline.returncode == 0, "without --live the file itself is valid"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_process_shows_unknown_names_in_readyz_the_log_and_a_gauge(emulator, settings, tmp_path, caplog):
    """At start: /readyz lists policy_warnings, the gauge counts them, the log says it once; a fixed file clears
    them on reload."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(TYPOS)
    caplog.set_level(logging.INFO, logger="service.enforcement.references")
    live = replace(settings, policy_file=policy, policy_check_interval=0.1)
    with serve_service(live, emulator, run_worker=True) as service:

        def warnings(url=service.url):
            return requests.get(f"{url}/readyz", timeout=5).json()["checks"].get("policy_warnings")

        found = wait_until(warnings, what="policy warnings")
        assert len(found) == 4 and any("did you mean finance" in text for text in found)
        assert requests.get(f"{service.url}/readyz", timeout=5).status_code == 200, "still ready"
        metrics = requests.get(f"{service.url}/metrics", timeout=5).text
        assert sample(metrics, "mfa_enforcer_policy_unresolved_references") == 4
        wait_until(lambda: warnings() is not None, what="a second look")
        unresolved = [r for r in caplog.records if r.getMessage() == "policy_references_unresolved"]
        assert len(unresolved) == 1, "said once per policy, not on every check"

        policy.write_text(GOOD)
        wait_until(lambda: warnings() == [], what="the fixed policy checked")
        metrics = requests.get(f"{service.url}/metrics", timeout=5).text
        assert sample(metrics, "mfa_enforcer_policy_unresolved_references") == 0
        assert [r.getMessage() for r in caplog.records].count("policy_references_resolved") == 1


def test_the_shipped_policy_names_only_what_the_sandbox_has(emulator, settings):
    """The example rules resolve against the sandbox's sample pool (a newcomer sees no warning)."""
    client = GenAuthClient(settings.genauth)
    try:
        assert check_references(client, parse_policy((ROOT / "config" / "policies.yaml").read_text())) == []
    finally:
        client.close()
