"""The commands' errors (a ``ServiceError`` each): ``PortInUseError`` names the setting that moves a port that is
taken. A command's own exits are click's (``click.ClickException`` and its exit codes)."""

from __future__ import annotations

from service.errors import ServiceError


class PortInUseError(ServiceError, reason="port_in_use"):
    """The port is taken by another process."""
