"""``mfa-enforcer policy check [FILE]``: validate a policy file and print the rules as the service reads them."""

from __future__ import annotations

import os
from pathlib import Path

import click

from service.policy import PolicyError, load_policy


@click.group()
def policy() -> None:
    """Work with policy files."""


@policy.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
def check(path: Path | None) -> None:
    """Validate PATH (default: $POLICY_FILE or config/policies.yaml); exit 1 with every problem."""
    path = path or Path(os.environ.get("POLICY_FILE", "").strip() or "config/policies.yaml")
    try:
        loaded = load_policy(path)
    except PolicyError as error:
        click.echo(str(error), err=True)
        raise SystemExit(1) from error
    click.echo(f"{path}: {len(loaded.rules)} rule(s)")
    for rule in loaded.rules:
        match = ", ".join(
            f"{key} any of [{', '.join(values)}]"
            for key, values in (
                ("departments", rule.match.departments),
                ("email_domains", rule.match.email_domains),
            )
            if values
        )
        click.echo(f"- {rule.name} ({rule.mode}): users with {match} must have {', '.join(rule.require_mfa)}")
