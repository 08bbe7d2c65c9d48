"""``mfa-enforcer db upgrade``: bring the schema in ``DATABASE_URL`` up to date (Procfile ``release``, the
Kubernetes migration Job). Safe to run again; a database from before migrations existed is recognised."""

from __future__ import annotations

import os

import click

from service.settings import DEFAULT_DATABASE_URL
from service.store.engine import create_engine
from service.store.migrating import current_revision, upgrade


@click.group()
def db() -> None:
    """Manage the database."""


@db.command(name="upgrade")
def upgrade_command() -> None:
    """Apply the schema migrations this version needs."""
    engine = create_engine(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"database {where} is up to date (revision {after})")
    else:
        click.echo(f"database {where} upgraded from {before or 'empty'} to revision {after}")


@db.command()
def status() -> None:
    """Show the schema revision, and exit 1 when `db upgrade` is needed."""
    from service.store.migrating import head_revision

    engine = create_engine(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    click.echo(f"schema revision {current or 'none'}; this version needs {head}")
    if current != head:
        raise SystemExit(1)
