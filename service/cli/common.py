"""What commands share: reading the settings (or stopping with the list of problems), the database, times."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa

from service.errors import ConfigurationError
from service.logs import configure_logging
from service.settings import DEFAULT_DATABASE_URL, Settings, load_settings
from service.store.engine import create_engine
from service.store.migrating import ensure_schema


def settings_or_exit(*, logs: bool = True, role: str = "all") -> Settings:
    try:
        settings = load_settings(os.environ, role=role)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from error
    if logs:
        configure_logging(settings.log_format, settings.log_level)
    return settings


def engine_from_environment(*, migrate: bool = False) -> sa.Engine:
    """An engine for ``DATABASE_URL`` alone: commands that only touch the database need no credentials.

    The schema is upgraded when ``migrate`` (``db upgrade``), else it must already be current.
    """
    url = os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    engine = create_engine(url)
    try:
        ensure_schema(engine, migrate=migrate)
    except ConfigurationError as error:
        engine.dispose()
        raise click.ClickException(error.message) from error
    return engine


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class MomentType(click.ParamType[float]):
    """A point in time: ISO 8601 (UTC unless it says otherwise), UNIX seconds, or an age such as 2h or 7d."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        relative = _RELATIVE.match(text)
        if relative:
            return time.time() - float(relative.group(1)) * _UNITS[relative.group(2)]
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not a time: use 2026-11-28T10:00:00Z, UNIX seconds, or an age like 2h", param, ctx)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


MOMENT = MomentType()


def show_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
