"""``mfa-enforcer db upgrade``: bring the schema in ``DATABASE_URL`` up to date (Procfile ``release``, the
Kubernetes migration Job). Safe to run again; a database from before migrations existed is recognised."""

from __future__ import annotations

import click

from service.settings import database_url_from
from service.store.engine import create_engine, disposing
from service.store.migrating import current_revision, upgrade


@click.group()
def db() -> None:
    """Manage the database."""


@db.command(name="upgrade")
def upgrade_command() -> None:
    """Apply the schema migrations this version needs."""
    with disposing(create_engine(database_url_from())) as engine:
        before, after = upgrade(engine)  # ConfigurationError: e.g. a SQLite database missing where one existed
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"database {where} is up to date (revision {after})")
    else:
        click.echo(f"database {where} upgraded from {before or 'empty'} to revision {after}")


@db.command()
def status() -> None:
    """Show the schema revision, and exit 1 when `db upgrade` is needed."""
    from service.store.migrating import head_revision

    with disposing(create_engine(database_url_from())) as engine:
        current = current_revision(engine)
    head = head_revision()
    click.echo(f"schema revision {current or 'none'}; this version needs {head}")
    if current != head:
        raise SystemExit(1)
