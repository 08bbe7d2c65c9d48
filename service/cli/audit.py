"""``mfa-enforcer audit``: the audit trail (``service.store.audit``), oldest first: who did what, when and why.

It needs ``DATABASE_URL`` and nothing else. ``--json`` prints a list of records (``at`` as ISO 8601 UTC, plus
``actor``, ``action``, ``reason``, ``scope`` and ``counts``) for an auditor's scripts. A ``--since`` that is no
time is refused in one line (exit 2).
"""

from __future__ import annotations

import json
from typing import Any

import click

from service.cli.common import MOMENT, RefusedError, engine_from_environment, show_time
from service.store.audit import audit_records
from service.store.engine import disposing
from service.store.operator_actions import audit_view


@click.command()
@click.option(
    "--since",
    "since_text",
    metavar="TIME",
    help="Records from this time on (ISO 8601, UNIX seconds, or an age: 2h, 7d).",
)
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000), help="The newest N.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for scripts.")
def audit(since_text: str | None, limit: int, as_json: bool) -> None:
    """Show the audit trail: operator actions and policy changes, with who, why and how many."""
    try:
        since = None if since_text is None else MOMENT.convert(since_text, None, None)
    except click.BadParameter as error:
        raise RefusedError(f"--since: {error.message}") from error
    with disposing(engine_from_environment()) as engine:
        if as_json:
            click.echo(json.dumps(audit_view(engine, since=since, limit=limit), indent=2))
            return
        records = audit_records(engine, since=since, limit=limit)
    if not records:
        click.echo("no audit records" + ("" if since is None else f" since {show_time(since)}"))
        return
    for entry in records:
        counts = ", ".join(f"{key} {value}" for key, value in entry.counts.items())
        reason = f": {entry.reason}" if entry.reason else ""
        counted = f"  ({counts})" if counts else ""
        click.echo(f"{show_time(entry.at)}  {entry.actor}  {entry.action}{reason}{counted}")
        scope = ", ".join(f"{key}={_value(value)}" for key, value in entry.scope.items() if value not in (None, [], {}))
        if scope:
            click.echo(f"    {scope}")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key}:{item}" for key, item in value.items())
    return str(value)
