"""The worker's errors (a ``ServiceError`` each): ``SweepBusyError`` from ``sweeping``, which ``mfa-enforcer
reconcile`` turns into exit code 4."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import ServiceError

if TYPE_CHECKING:
    from service.store.sweeps import SweepRow


class SweepBusyError(ServiceError, reason="sweep_busy"):
    """Another reconcile sweep is running (one runs at a time)."""

    def __init__(self, sweep: SweepRow) -> None:
        self.sweep = sweep
        super().__init__(f"another reconcile sweep is running (#{sweep.id}, started by {sweep.owner})")
