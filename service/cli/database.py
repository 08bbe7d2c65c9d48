"""``mfa-enforcer db upgrade``: create or bring up to date the tables in ``DATABASE_URL``."""

from __future__ import annotations

import os

import click
from sqlalchemy.engine import make_url

from service.settings import DEFAULT_DATABASE_URL
from service.store.engine import create_engine, prepare_database


@click.group()
def db() -> None:
    """Manage the database."""


@db.command()
def upgrade() -> None:
    """Create the tables that do not exist yet (safe to run again)."""
    url = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    engine = create_engine(url)
    prepare_database(engine)
    engine.dispose()
    click.echo(f"database ready: {make_url(url).render_as_string(hide_password=True)}")
