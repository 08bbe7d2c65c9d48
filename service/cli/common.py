"""What commands share: their settings and services (or stopping with the list of problems), times, and the one
place that turns a failure into the single line an operator reads (``failure_message``).

Every command ends in one of: exit 0; exit 1 with one clear line on stderr (a setting, GenAuth, the
database, a port: ``failure_message``); exit 2 for a wrong command line (click's usage errors). A traceback
means a bug.
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from prometheus_client import start_http_server

from service.cli.errors import PortInUseError
from service.errors import ConfigurationError, ServiceError
from service.genauth.access import failure_line
from service.logs import configure_logging
from service.policy import PolicyError, load_policy, require_email
from service.services import Services, open_engine
from service.settings import Settings, database_url_from, load_settings
from service.store.operator_actions import iso_time, parse_moment

FC = TypeVar("FC", bound=Callable[..., Any])


def settings_or_exit(*, logs: bool = True, role: str = "all") -> Settings:
    try:
        settings = load_settings(role=role)
    except ConfigurationError as error:
        raise click.ClickException(error.message) from error
    if logs:
        configure_logging(settings.log_format, settings.log_level)
    return settings


def refuse_notices_without_email(settings: Settings) -> None:
    """``serve`` and ``worker`` stop at start, in one line naming the rule and field, when the policy file has
    ``notify_users`` while e-mail is not configured: the environment and the policy disagree, and only a restart
    with one of them fixed can settle it. (A file invalid for any other reason is left to the usual fallback to
    the last good copy, ``service.policy_source``.)"""
    if settings.notify.can_email:
        return
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError:
        return
    try:
        require_email(policy, can_email=False)
    except PolicyError as error:
        raise click.ClickException(f"cannot start: {settings.policy_file}: {error.problems[0]}") from error


def services_or_exit(*, role: str = "all", database: bool = True, logs: bool = False) -> Services:
    """The command's collaborators (``service.services``) from the whole configuration for ``role``; with
    ``database``, on a current schema (a ``ConfigurationError`` ends the command in one line otherwise)."""
    return Services.open(settings_or_exit(logs=logs, role=role), database=database)


def engine_from_environment(*, migrate: bool = False) -> sa.Engine:
    """An engine for ``DATABASE_URL`` alone: commands that only touch the database need no credentials.

    The schema is upgraded when ``migrate`` (``db upgrade``), else it must already be current.
    """
    return open_engine(database_url_from(), migrate=migrate)


def check_port_free(host: str, port: int, variable: str) -> None:
    """Raise ``PortInUseError`` naming ``variable`` (the setting that moves it) when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise port_error(error, host, port, variable) from error


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and Ctrl-C call ``stop``: a long-running command (``worker``, ``listen``) finishes what it holds and
    returns. Set before the command's start, so a stop asked for meanwhile is not lost."""

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def serve_metrics(settings: Settings) -> None:
    """Serve this process's /metrics on ``ENFORCER_METRICS_PORT`` (nothing when 0), naming the variable when the
    port is taken."""
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.host)
        except OSError as error:
            raise port_error(error, settings.host, settings.metrics_port, "ENFORCER_METRICS_PORT") from error


def port_error(error: OSError, host: str, port: int, variable: str) -> ServiceError:
    if error.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"port {port} on {host} is already in use by another process: set {variable} to a free port"
        )
    return PortInUseError(f"cannot listen on {host}:{port} ({error.strerror}): set {variable} (and HOST) to another")


def failure_message(error: BaseException) -> str | None:
    """The one line an operator needs for a failure outside the command's own handling, or None for a bug."""
    genauth = failure_line(error)
    if genauth is not None:
        return genauth
    if isinstance(error, ServiceError):
        return error.message
    if isinstance(error, sa.exc.ArgumentError):
        return f"DATABASE_URL cannot be used: {_first_line(error)}"
    if isinstance(error, sa.exc.SQLAlchemyError):
        driver = error.orig if isinstance(error, sa.exc.DBAPIError) else None  # the driver's own words
        return f"cannot use the database (DATABASE_URL): {_first_line(driver or error)}"
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class MomentType(click.ParamType[float]):
    """A point in time: ISO 8601 (UTC unless it says otherwise), UNIX seconds, or an age such as 2h or 7d
    (``service.store.operator_actions.parse_moment``, which the admin API reads too)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_moment(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


MOMENT = MomentType()


class RefusedError(click.ClickException):
    """A command line the command refuses in one line (no usage text), with click's usage exit code 2."""

    exit_code = 2


def reason_option(note: str) -> Callable[[FC], FC]:
    """``--reason TEXT``, kept in the audit trail (``service.store.audit``); see ``reason_or_refuse``."""
    return click.option("--reason", metavar="TEXT", help=f"Why, kept in the audit trail ({note}).")


def actor_option() -> Callable[[FC], FC]:
    return click.option(
        "--actor", metavar="NAME", help="Who is acting, for the audit trail (default: the OS user @ host)."
    )


def reason_or_refuse(command: str, reason: str | None) -> str:
    """The ``--reason`` given, or ``RefusedError``: every operator action says why."""
    if reason is None or not reason.strip():
        raise RefusedError(f"{command} needs --reason TEXT: say why, it is kept in the audit trail")
    return reason.strip()


def show_time(seconds: float | None) -> str:
    return "-" if seconds is None else iso_time(seconds)


def who(username: str | None, email: str | None) -> str:
    """How listings show a user next to their id: the username, else the email (never the phone)."""
    return username or email or "-"
