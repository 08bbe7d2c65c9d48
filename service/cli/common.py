"""What every command does first: read the settings, or stop with the list of problems."""

from __future__ import annotations

import os

import click

from service.errors import ConfigurationError
from service.logs import configure_logging
from service.settings import Settings, load_settings


def settings_or_exit(*, logs: bool = True) -> Settings:
    try:
        settings = load_settings(os.environ)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from error
    if logs:
        configure_logging(settings.log_format, settings.log_level)
    return settings
