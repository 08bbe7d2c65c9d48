"""The policy file as a live source: reloaded when it changes, keeping the old rules when the new ones are bad.

Kubernetes updates a mounted ConfigMap by swapping a symlink, so the file is re-read when its content digest
changes (checked at most every ``check_interval`` seconds, on use). An invalid new file is logged with every
problem, shown by ``/readyz``, and ignored until fixed; the service keeps enforcing the last good rules.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.logs import log_event
from service.policy import Policy, PolicyError, load_policy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyStatus:
    """What ``/readyz`` reports about the rules in force."""

    rules: int
    source: str
    loaded_at: float
    error: str | None
    """Why the file on disk is not in force (it changed and does not validate), or None."""


class PolicySource:
    """Hands out the current policy; thread-safe."""

    def __init__(self, path: Path, *, check_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.check_interval = check_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._digest = self._read_digest()
        self._policy = load_policy(path)  # a bad file at startup stops the service: raise
        self._loaded_at = time.time()
        self._checked_at = clock()
        self._error: str | None = None

    def current(self) -> Policy:
        """The policy in force, after reloading the file if it changed."""
        with self._lock:
            if self._clock() - self._checked_at >= self.check_interval:
                self._checked_at = self._clock()
                self._reload_if_changed()
            return self._policy

    def status(self) -> PolicyStatus:
        self.current()
        with self._lock:
            return PolicyStatus(len(self._policy.rules), str(self.path), self._loaded_at, self._error)

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def _reload_if_changed(self) -> None:
        digest = self._read_digest()
        if digest == self._digest:
            return
        self._digest = digest
        try:
            policy = load_policy(self.path)
        except PolicyError as error:
            self._error = str(error)
            log_event(
                logger,
                "policy_reload_failed",
                level=logging.ERROR,
                source=str(self.path),
                problems=error.problems,
                kept_rules=len(self._policy.rules),
            )
            return
        self._policy = policy
        self._loaded_at = time.time()
        self._error = None
        log_event(logger, "policy_reloaded", source=str(self.path), rules=len(policy.rules))
