"""`mfa-enforcer policy test` and `policy check` as operators run them: exit codes, PASS/FAIL lines, the
summary, and which policy file a suite is run against."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main
from tests.support.values import ROOT

BIN = Path(sys.executable).parent

POLICY = """\
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
    fallback: [EMAIL]
"""

SUITE = """\
cases:
  - name: clerk gets SMS
    user: {phone: "+8613800138000", departments: [finance]}
    expect:
      finance-sms: enforce [SMS]
  - name: clerk without phone gets EMAIL
    user: {email: a@acme.example, departments: [finance]}
    expect:
      finance-sms: enforce [EMAIL] (fallback for SMS)
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_suite_passes_as_a_subprocess():
    """The console script runs config/policies.test.yaml against the shipped policy and exits 0."""
    result = subprocess.run(
        [str(BIN / "mfa-enforcer"), "policy", "test", "config/policies.test.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config/policies.test.yaml: 18 case(s) against config/policies.yaml"
    assert all(line.startswith("PASS ") for line in lines[1:-1])
    assert lines[-1] == "18 passed, 0 failed"


def test_suite_names_its_policy_relative_to_itself(runner, tmp_path):
    """`policy:` in the suite is read relative to the suite file, whatever the working directory."""
    rules = tmp_path / "rules"
    rules.mkdir()
    write(rules / "policy.yaml", POLICY)
    suite = write(tmp_path / "suite.yaml", "policy: rules/policy.yaml\n" + SUITE)
    result = runner.invoke(main, ["policy", "test", str(suite)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-3:] == [
        "PASS clerk gets SMS",
        "PASS clerk without phone gets EMAIL",
        "2 passed, 0 failed",
    ]


def test_policy_option_overrides_the_suite_and_failures_exit_1(runner, tmp_path):
    """--policy wins over the suite's policy; a failing case prints FAIL with the difference and exits 1."""
    write(tmp_path / "named.yaml", POLICY)
    other = write(tmp_path / "other.yaml", POLICY.replace("    fallback: [EMAIL]\n", ""))
    suite = write(tmp_path / "suite.yaml", "policy: named.yaml\n" + SUITE)
    result = runner.invoke(main, ["policy", "test", str(suite), "--policy", str(other)])
    assert result.exit_code == 1
    assert f"against {other}" in result.stdout
    assert result.stdout.splitlines()[1:] == [
        "PASS clerk gets SMS",
        "FAIL clerk without phone gets EMAIL",
        "     finance-sms: expected enforce [EMAIL] (fallback for SMS), got unsatisfiable [SMS]",
        "       matched: department finance",
        "       SMS: no phone number on record",
        "1 passed, 1 failed",
    ]


def test_default_policy_is_the_policy_file_variable(runner, tmp_path, monkeypatch):
    """Without --policy or `policy:`, the suite runs against $POLICY_FILE."""
    monkeypatch.setenv("POLICY_FILE", str(write(tmp_path / "env.yaml", POLICY)))
    suite = write(tmp_path / "suite.yaml", SUITE)
    result = runner.invoke(main, ["policy", "test", str(suite)])
    assert result.exit_code == 0, result.output
    assert f"against {tmp_path / 'env.yaml'}" in result.stdout


@pytest.mark.parametrize(
    ("suite", "policy", "message"),
    [
        ("cases: []\n", POLICY, "cases: must list at least one case"),
        (SUITE.replace("enforce [SMS]", "enforced [SMS]"), POLICY, "expect.finance-sms: 'enforced [SMS]'"),
        (SUITE, POLICY.replace("[SMS]", "[SMSS]"), "require_mfa[0]: 'SMSS' is not one of"),
        (SUITE.replace("finance-sms: enforce [SMS]", "finance-smss: enforce [SMS]"), POLICY, "has no such rule"),
    ],
    ids=["invalid-suite", "bad-expectation", "invalid-policy", "unknown-rule"],
)
def test_what_does_not_validate_exits_2_with_the_problems(runner, tmp_path, suite, policy, message):
    """An invalid suite, an invalid policy or a suite naming an unknown rule exits 2 listing the problems."""
    write(tmp_path / "policy.yaml", policy)
    path = write(tmp_path / "suite.yaml", "policy: policy.yaml\n" + suite)
    result = runner.invoke(main, ["policy", "test", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "passed" not in result.stdout


def test_missing_suite_file_exits_2(runner, tmp_path):
    """A suite path that does not exist is reported with exit code 2."""
    result = runner.invoke(main, ["policy", "test", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr


def test_check_prints_fallbacks_and_exceptions(runner):
    """`policy check` describes the shipped rules, including an example's fallback and exception."""
    result = runner.invoke(main, ["policy", "check", str(ROOT / "config" / "policies.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1] == "- finance-sms (enforce): users with departments any of [finance] must have SMS"
    assert "finance-partners-sms (audit)" in lines[2] and "(fallback EMAIL)" in lines[2]
    assert lines[3].strip().startswith("except users [65a1f0c2e4b0a1b2c3d4e5f6] until 2027-01-31")


PROTECTED_RULE = """\
policies:
  - name: finance-sms
    match: {departments: [finance]}
    require_mfa: [SMS]
    exceptions:
      - {users: [u-ceo], groups: [Board], reason: travelling}
"""


def test_check_warns_when_no_account_is_protected_and_lists_those_that_are(runner, tmp_path):
    bare = runner.invoke(main, ["policy", "check", str(write(tmp_path / "bare.yaml", POLICY))])
    assert bare.exit_code == 0
    [warning] = [line for line in bare.stderr.splitlines() if line.startswith("warning:")]
    assert "no protected (break-glass) account declared" in warning
    guarded = write(
        tmp_path / "guarded.yaml",
        "protected: {users: [root@acme.example], groups: [sos], reason: break-glass}\n" + POLICY,
    )
    shown = runner.invoke(main, ["policy", "check", str(guarded)])
    assert shown.exit_code == 0 and "warning" not in shown.stderr
    assert "protected (never written): user root@acme.example, group sos — break-glass" in shown.stdout


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        ("{users: [U-CEO], reason: sos}", "protected: user U-CEO is also an exception of rule finance-sms"),
        ("{groups: [board], reason: sos}", "protected: group board is also an exception of rule finance-sms"),
        ("{users: [u1]}", "protected.reason: missing; say why these accounts are never written"),
        ("{users: [u1], reason: sos, role: [x]}", "protected.role: unknown key; expected users, groups, reason"),
        ("{reason: sos}", "protected: give users or groups (or both) to protect"),
        ("{users: [], reason: sos}", "protected.users: must list at least one user id, username or email"),
    ],
)
def test_a_contradiction_or_a_bad_protected_block_fails_in_one_line(runner, tmp_path, protected, message):
    path = write(tmp_path / "p.yaml", f"protected: {protected}\n" + PROTECTED_RULE)
    result = runner.invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and len([line for line in lines if line.strip().startswith("protected")]) == 1, lines
