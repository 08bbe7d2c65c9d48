"""The policy file as a live source: reloaded when it changes, keeping the old rules when the new ones are bad.

Kubernetes updates a mounted ConfigMap by swapping a symlink, so the file is re-read when its content digest
changes (checked at most every ``check_interval`` seconds, on use). An invalid new file is logged with every
problem, shown by ``/readyz``, and ignored until fixed; the service keeps enforcing the last good rules.

No policy problem stops a process (``strict=False``, what the web service and the worker use): intake needs no
policy at all, and a worker can wait. Every file that validates is saved in the database
(``service.store.snapshots``); a process that starts while the file is bad uses that last good copy, or, if
there is none, no rules, and says which in the log (``policy_load_failed``) and in ``/readyz``. With no rules
the worker's ``enforceable()`` raises ``PolicyUnavailableError``, a temporary error, so queued users wait for
a valid file instead of being recorded as out of scope. The process whose save replaces the deployment's copy
also records the change in the audit trail (digests, rules added, removed and changed, mode switches): once
per new version, however many processes reload it.

The file is read in a helper thread that the caller waits for at most ``read_timeout`` seconds, never while
holding the lock: a path that blocks (a FIFO with no writer, a hung network mount) costs that one thread and
an error in ``/readyz``, not a hung probe or worker. At most one such read is outstanding at a time, and
its bytes are used only by the call that started it: a late answer may predate an edit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from service.errors import PolicyUnavailableError
from service.logs import log_event
from service.policy import Policy, PolicyError, Rule, parse_policy, require_email
from service.store.snapshots import Describe, PolicySnapshot, PolicySnapshots

logger = logging.getLogger(__name__)

READ_TIMEOUT = 2.0
"""Seconds a caller waits for the file to be read."""
MAX_POLICY_BYTES = 1024 * 1024
NO_RULES_RETRY_AFTER = 60.0

STATE_CURRENT = "current"
"""The file on disk is in force."""
STATE_PREVIOUS = "previous"
"""The file on disk does not validate; the rules this process loaded before stay in force."""
STATE_LAST_GOOD_COPY = "last-good-copy"
"""The process started while the file did not validate; the last good copy from the database is in force."""
STATE_NONE = "none"
"""The process started while the file did not validate and the database holds no copy: no rules."""


@dataclass(frozen=True)
class PolicyStatus:
    """What ``/readyz`` reports about the rules in force."""

    rules: int
    source: str
    loaded_at: float
    error: str | None
    """Why the file on disk is not in force (it does not validate, or cannot be read), or None."""
    state: str = STATE_CURRENT
    """``current``, ``previous``, ``last-good-copy`` or ``none`` (the STATE_* constants)."""


class PolicySource:
    """Hands out the current policy; thread-safe.

    ``strict``: a file that does not validate at startup raises ``PolicyError`` (the CLI); otherwise the last
    good copy in ``snapshots`` is used, or no rules. ``snapshots`` also receives every file that validates.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        snapshots: PolicySnapshots | None = None,
        strict: bool = True,
        read_timeout: float = READ_TIMEOUT,
        can_email: bool = True,
    ) -> None:
        self.path = path
        self.can_email = can_email
        """Whether e-mail is configured; without it a rule with ``notify_users`` makes the file invalid."""
        self.check_interval = check_interval
        self.read_timeout = read_timeout
        self._clock = clock
        self._snapshots = snapshots
        self._lock = threading.Lock()
        self._checking = False
        self._checked = threading.Event()
        """Set while no check is running: ``status`` waits for another thread's check to report its outcome."""
        self._checked.set()
        self._reader: _Reader | None = None
        self._error: str | None = None
        self._digest: str | None = None
        self._state = STATE_CURRENT
        self._policy = Policy(rules=(), source=str(path))
        self._loaded_at = time.time()
        self._checked_at = clock()
        try:
            self._load_at_start()
        except PolicyError as error:
            if strict:
                raise
            self._fall_back(error)

    def current(self) -> Policy:
        """The policy in force, after reloading the file if it changed (the file is read outside the lock)."""
        with self._lock:
            is_due = not self._checking and self._clock() - self._checked_at >= self.check_interval
            if is_due:
                self._checking = True
                self._checked.clear()
            policy = self._policy
        if not is_due:
            return policy
        try:
            self._reload_if_changed()
        finally:
            with self._lock:
                self._checking = False
                self._checked_at = self._clock()
                policy = self._policy
            self._checked.set()
        return policy

    def enforceable(self) -> Policy:
        """Like ``current``, for the worker: raises ``PolicyUnavailableError`` while no rules are in force."""
        policy = self.current()
        with self._lock:
            if self._state == STATE_NONE:
                raise PolicyUnavailableError(
                    f"no valid policy is loaded: {self._error}", retry_after=NO_RULES_RETRY_AFTER
                )
        return policy

    def status(self) -> PolicyStatus:
        """What is in force and how the last check went. A check another thread runs (a worker's) is waited
        for before and after this one's own, each at most ``read_timeout``: one begun before the file was
        swapped must not answer for the file as it is now."""
        self._checked.wait(self.read_timeout)
        self.current()
        self._checked.wait(self.read_timeout)
        with self._lock:
            return PolicyStatus(len(self._policy.rules), self._policy.source, self._loaded_at, self._error, self._state)

    # -- loading ---------------------------------------------------------------------------------------------

    def _load_at_start(self) -> None:
        raw = self._read()
        self._digest = hashlib.sha256(raw).hexdigest()
        self._policy = replace(self._parse(raw), digest=self._digest)
        self._save(raw, self._digest, time.time(), self._policy)

    def _fall_back(self, error: PolicyError) -> None:
        """Start with the last good copy from the database, or with no rules."""
        snapshot = self._saved_copy()
        self._error = str(error)
        if snapshot is not None:
            loaded = datetime.fromtimestamp(snapshot.loaded_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            try:
                copy = parse_policy(snapshot.text, f"{snapshot.source} (last good copy of {loaded})")
                self._policy = replace(copy, digest=snapshot.digest)
            except PolicyError as copy_error:  # saved by a version whose rule language this one refuses
                log_event(logger, "policy_copy_unusable", level=logging.ERROR, problems=copy_error.problems)
            else:
                self._state = STATE_LAST_GOOD_COPY
                self._loaded_at = snapshot.loaded_at
        if self._state != STATE_LAST_GOOD_COPY:
            self._state = STATE_NONE
        log_event(
            logger,
            "policy_load_failed",
            level=logging.ERROR,
            source=str(self.path),
            problems=error.problems,
            using=self._state,
            rules=len(self._policy.rules),
        )

    def _saved_copy(self) -> PolicySnapshot | None:
        if self._snapshots is None:
            return None
        try:
            return self._snapshots.load()
        except sa.exc.SQLAlchemyError as error:
            log_event(logger, "policy_copy_unreadable", level=logging.ERROR, error_type=type(error).__name__)
            return None

    def _parse(self, raw: bytes) -> Policy:
        policy = parse_policy(_text(raw, self.path), str(self.path))
        return require_email(policy, can_email=self.can_email)

    def _reload_if_changed(self) -> None:
        try:
            raw = self._read()
        except PolicyError as error:
            self._refuse(error, digest=None)
            return
        digest = hashlib.sha256(raw).hexdigest()
        with self._lock:
            if digest == self._digest:
                return
        try:
            policy = replace(self._parse(raw), digest=digest)
        except PolicyError as error:
            self._refuse(error, digest=digest)
            return
        loaded_at = time.time()
        with self._lock:
            self._policy = policy
            self._digest = digest
            self._loaded_at = loaded_at
            self._error = None
            self._state = STATE_CURRENT
        log_event(logger, "policy_reloaded", source=str(self.path), rules=len(policy.rules))
        self._save(raw, digest, loaded_at, policy)

    def _refuse(self, error: PolicyError, *, digest: str | None) -> None:
        """Keep what is in force; log a problem once (until the file changes again)."""
        message = str(error)
        with self._lock:
            is_new = message != self._error or digest != self._digest
            self._error = message
            self._digest = digest
            if self._state == STATE_CURRENT:
                self._state = STATE_PREVIOUS
            kept = len(self._policy.rules)
        if is_new:
            log_event(
                logger,
                "policy_reload_failed",
                level=logging.ERROR,
                source=str(self.path),
                problems=error.problems,
                kept_rules=kept,
            )

    def _save(self, raw: bytes, digest: str, loaded_at: float, policy: Policy) -> None:
        if self._snapshots is None:
            return
        try:
            self._snapshots.save(
                PolicySnapshot(_text(raw, self.path), digest, str(self.path), loaded_at),
                describe=self._describe(policy, digest),
            )
        except sa.exc.SQLAlchemyError as error:  # the rules are in force anyway; the copy is only a fallback
            log_event(logger, "policy_copy_not_saved", level=logging.WARNING, error_type=type(error).__name__)

    def _describe(self, policy: Policy, digest: str) -> Describe:
        """The audit record of this file replacing the deployment's last good copy (``service.store.audit``)."""

        def describe(previous: PolicySnapshot | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
            scope, counts = policy_change(_rules_of(previous), policy.rules)
            reason = "first policy loaded" if previous is None else "the policy file changed"
            where = {"source": str(self.path), "seen_by": f"{socket.gethostname()}:{os.getpid()}"}
            before = {"digest_before": previous.digest if previous else None, "digest_after": digest}
            return reason, {**where, **before, **scope}, counts

        return describe

    def _read(self) -> bytes:
        """The file's bytes, read in a helper thread; ``PolicyError`` when unreadable or slower than the timeout.

        Only the call that started a read uses its bytes: a read still running from an earlier call may return
        what the file held before an edit, so it is waited for by nobody and its result is dropped."""
        with self._lock:
            if self._reader is not None and not self._reader.is_done():
                raise self._reader.unfinished()
            reader = self._reader = _Reader(self.path)
        return reader.result(self.read_timeout)


class _Reader:
    """One read of the file in a daemon thread; a read that never returns leaves only that thread behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self._done = threading.Event()
        self._data: bytes | None = None
        self._error: PolicyError | None = None
        threading.Thread(target=self._run, name="policy-file-reader", daemon=True).start()

    def _run(self) -> None:
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_POLICY_BYTES + 1)
            if len(data) > MAX_POLICY_BYTES:
                raise PolicyError(str(self.path), [f"the file is larger than {MAX_POLICY_BYTES // 1024} KiB"])
            self._data = data
        except PolicyError as error:
            self._error = error
        except OSError as error:
            self._error = PolicyError(str(self.path), [f"cannot read the file: {error.strerror or error}"])
        finally:
            self._done.set()

    def is_done(self) -> bool:
        return self._done.is_set()

    def unfinished(self) -> PolicyError:
        waited = time.monotonic() - self.started
        return PolicyError(
            str(self.path), [f"reading the file has not finished after {waited:.1f} s (a FIFO, or a hung mount?)"]
        )

    def result(self, timeout: float) -> bytes:
        if not self._done.wait(timeout):
            raise self.unfinished()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data


def policy_change(before: tuple[Rule, ...] | None, after: tuple[Rule, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rules added, removed and changed (same name, other content) by name, and mode switches, from ``before``
    (None when they cannot be known: a copy saved by a version whose rule language this one refuses)."""
    new = {rule.name: rule for rule in after}
    if before is None:
        scope: dict[str, Any] = {"added": [], "removed": [], "changed": [], "modes": {}, "previous": "unreadable"}
        return scope, {"rules": len(after)}
    old = {rule.name: rule for rule in before}
    changed = [name for name in new if name in old and new[name] != old[name]]
    scope = {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "changed": changed,
        "modes": {name: f"{old[name].mode}->{new[name].mode}" for name in changed if old[name].mode != new[name].mode},
    }
    counts = {"rules": len(after), **{key: len(scope[key]) for key in ("added", "removed", "changed")}}
    return scope, counts


def _rules_of(snapshot: PolicySnapshot | None) -> tuple[Rule, ...] | None:
    if snapshot is None:
        return ()
    try:
        return parse_policy(snapshot.text, snapshot.source).rules
    except PolicyError:  # saved by a version whose rule language this one refuses
        return None


def _text(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(str(path), [f"the file is not UTF-8 text ({error.reason})"]) from error
