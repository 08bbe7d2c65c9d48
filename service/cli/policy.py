"""``mfa-enforcer policy check [FILE]`` and ``policy test SUITE [--policy FILE]``.

``check`` validates a policy file and prints the rules as the service reads them (a rule with a rollout with
its timeline: waves and ``enforce_from`` in date order, and the grace period), and the protected
(break-glass) accounts, warning when it declares none (a protected entry that is also a rule's exception is a
contradiction the loader refuses); with ``--live`` it also
resolves every department, group and role the rules name against GenAuth and fails on unknown ones, naming
close matches (``service.enforcement.references``). ``test`` runs a YAML test
suite (fixture users and the outcome each rule should have; format in docs/policy.md) and exits 0 when
every case passes, 1 when any fails, 2 when the suite or the policy file does not validate.
"""

from __future__ import annotations

from contextlib import closing
from datetime import date
from pathlib import Path

import click

from service.cli.common import settings_or_exit
from service.enforcement.references import check_references, references_of
from service.errors import ConfigurationError
from service.policy import (
    Policy,
    PolicyError,
    SuiteError,
    describe_rule,
    load_policy,
    load_suite,
    require_email,
    run_suite,
)
from service.policy.rollout import timeline
from service.services import Services
from service.settings import notify_settings_from, policy_file_from


@click.group()
def policy() -> None:
    """Work with policy files."""


@policy.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--live", is_flag=True, help="Also check against GenAuth that every department, group and role named exists."
)
def check(path: Path | None, live: bool) -> None:
    """Validate PATH (default: $POLICY_FILE or config/policies.yaml); exit 1 with every problem."""
    path = path or policy_file_from()
    try:
        loaded = require_email(load_policy(path), can_email=_can_email())
    except PolicyError as error:
        click.echo(str(error), err=True)
        raise SystemExit(1) from error
    click.echo(f"{path}: {len(loaded.rules)} rule(s)")
    today = date.today()
    for rule in loaded.rules:
        first, *rest = describe_rule(rule, today=today)
        click.echo(f"- {first}")
        for line in rest:
            click.echo(f"  {line}")
        if rule.rollout is not None:
            click.echo("  rollout:")
            for line in timeline(rule.rollout):
                click.echo(f"    {line}")
    protection = loaded.protected
    if protection is None:
        click.echo(
            "warning: no protected (break-glass) account declared; add a top-level 'protected:' block with the "
            "accounts no rule may ever write (docs/operations.md, Break-glass accounts)",
            err=True,
        )
    else:
        named = [*(f"user {user}" for user in protection.users), *(f"group {group}" for group in protection.groups)]
        click.echo(f"protected (never written): {', '.join(named)} — {protection.reason}")
    if live:
        _check_live(loaded)


def _can_email() -> bool:
    """Whether the environment configures e-mail (a rule's ``notify_users`` needs it); a bad notification
    variable stops the check with its one line."""
    try:
        return notify_settings_from().can_email
    except ConfigurationError as error:
        click.echo(f"cannot check notify_users: {error}", err=True)
        raise SystemExit(2) from error


def _check_live(loaded: Policy) -> None:
    settings = settings_or_exit(logs=False, role="worker")
    with closing(Services(settings).genauth()) as client:
        problems = check_references(client, loaded)
        count = len(references_of(loaded))
    for problem in problems:
        click.echo(f"error: {problem.message}", err=True)
    if problems:
        click.echo(
            f"{len(problems)} of the {count} names the rules use are unknown to GenAuth at {settings.genauth.host}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"GenAuth at {settings.genauth.host} knows every department, group and role the rules name ({count})")


@policy.command("test")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    help="Policy file to test (default: the suite's `policy`, else $POLICY_FILE or config/policies.yaml).",
)
def run_tests(path: Path, policy_path: Path | None) -> None:
    """Run the test suite PATH: PASS/FAIL per case, then `N passed, M failed`; exit 1 on any failure."""
    try:
        suite = load_suite(path)
    except SuiteError as error:
        click.echo(str(error), err=True)
        raise SystemExit(2) from error
    policy_file = policy_path or suite.policy or policy_file_from()
    try:
        loaded = load_policy(policy_file)
        result = run_suite(suite, loaded, today=date.today())
    except (PolicyError, SuiteError) as error:
        click.echo(str(error), err=True)
        raise SystemExit(2) from error
    click.echo(f"{path}: {len(suite.cases)} case(s) against {policy_file}")
    for line in result.lines():
        click.echo(line)
    if result.failed:
        raise SystemExit(1)
