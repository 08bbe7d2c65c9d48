"""The pool's organisation tree, cached per process, so a user's departments cost no call of their own.

A rule on departments needs each department the user belongs to with its code, name, organisation and the
ids, codes and names of its ancestors (``service.policy.facts.Department``). ``get-user-departments`` gives
that per user, one call each; the user record gives only ``departmentIds`` (with ``withDepartmentIds``, on
``get-user`` and on the listings). With the tree in memory the ids are enough: ``OrganisationTree.departments``
turns them into the same facts (every department the user is in, not only the main one, as
``get-user-departments`` lists them; ancestors root first, without the department itself).

Loading costs ``list-organizations`` (one call per 50 organisations) and one ``get-all-departments`` per
organisation, counted in ``calls``; it happens on first use, when the copy is older than ``TREE_TTL``, when
an event changed the tree since it was loaded, and once when a user names a department the copy does not
know (one created since it was loaded). An id still unknown after that reload is remembered until the next
load, and ``departments`` answers None for it: the caller reads ``get-user-departments`` instead, so a
department the listing does not show (or an id GenAuth answers differently) costs that one call per user,
never a reload per user.

Which events change the tree is ``TREE_EVENTS`` (``service.policy.conditions``, where the departments
condition names the events that change its fact). Such an event reaches the tree two ways, both read by
``_is_stale``:

- across processes, through the database: the intake moves the pool's generation when it records the event
  (``service.store.organisation_changes``), and ``changes`` reads it, at most once per ``CHECK_INTERVAL``
  (one primary-key read, no GenAuth call); a generation other than the one read before the last load means
  the copy is out of date. A web process that receives the event so makes every worker process reload.
- for the event's own work, at once: the reconciler calls ``invalidate(as_of=...)`` for a job whose trigger
  is a tree event, so its users are never judged by a copy older than the event, even within the interval;
  a department's members after a rename or a move still cost one load between them.

One tree serves every worker thread of a process (``service.services``); a load holds its lock, so
threads that need the tree meanwhile wait for that one load rather than making their own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.genauth import directory
from service.genauth.client import GenAuthClient, Json
from service.logs import log_event
from service.policy.facts import Department

logger = logging.getLogger(__name__)

TREE_TTL = 300.0
"""Seconds a loaded tree is used before it is loaded again (a change no event told the service of shows then)."""
CHECK_INTERVAL = 2.0
"""Seconds between two reads of the pool's tree generation (a change recorded by another process shows then)."""


@dataclass(frozen=True)
class _Node:
    department_id: str
    code: str | None
    name: str | None
    organization_code: str | None
    parent_id: str | None


@dataclass(frozen=True)
class Lookup:
    """What ``OrganisationTree.departments`` found."""

    departments: tuple[Department, ...] | None
    """The user's departments in the order of the ids; None when one of them is not in the tree."""
    loaded: bool
    """Whether the tree was (re)loaded for this lookup: the caller's other reads are that much older."""


class OrganisationTree:
    """The organisations and departments of one pool, loaded on demand and shared by a process's workers."""

    def __init__(
        self,
        *,
        ttl: float = TREE_TTL,
        clock: Callable[[], float] = time.time,
        changes: Callable[[], int] | None = None,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        """Wall-clock time, as the queue stamps work (``invalidate`` compares its ``as_of`` with it)."""
        self._changes = changes
        """Reads the pool's tree generation (``service.store.organisation_changes``); None: no database."""
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._loaded_at = -math.inf
        self._stale_as_of = -math.inf
        self._generation: int | None = None
        """The generation read just before the last load began."""
        self._checked_at = -math.inf
        self._unknown: set[str] = set()
        self.checks = 0
        """Times the generation was read, for tests and benchmarks."""
        self.loads = 0
        """Times the tree was loaded, for tests and benchmarks."""
        self.calls = 0
        """GenAuth calls those loads made."""

    def invalidate(self, as_of: float | None = None) -> None:
        """The tree as loaded before ``as_of`` (default now) is out of date: the next lookup loads it again,
        unless it was loaded since. Work enqueued by one event (a department's members after a move) so
        costs one load, however many users it has."""
        when = self._clock() if as_of is None else as_of
        with self._lock:
            self._stale_as_of = max(self._stale_as_of, when)

    def load_if_stale(self, client: GenAuthClient) -> None:
        """Load the tree now if it is missing or out of date (before a job's reads, so that they are not
        older than the tree by a load's calls)."""
        with self._lock:
            if self._is_stale():
                self._load(client)

    def departments(self, client: GenAuthClient, department_ids: Sequence[str]) -> Lookup:
        """The departments ``department_ids`` names, loading the tree first if it is missing or out of date,
        and once more if an id is not in it (unless that id was missing from the last load too)."""
        with self._lock:
            loaded = False
            if self._is_stale():
                self._load(client)
                loaded = True
            missing = {item for item in department_ids if item not in self._nodes}
            if missing and not loaded and not missing <= self._unknown:
                log_event(logger, "organisation_tree_unknown_department", departments=len(missing))
                self._load(client)
                loaded = True
                missing = {item for item in department_ids if item not in self._nodes}
            if missing:
                self._unknown |= missing
                return Lookup(None, loaded)
            return Lookup(tuple(self._department(item) for item in department_ids), loaded)

    def _is_stale(self) -> bool:
        now = self._clock()
        if now - self._loaded_at >= self.ttl or self._loaded_at < self._stale_as_of:
            return True
        if self._changes is None or now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        generation = self._read_generation()
        return generation is not None and generation != self._generation

    def _read_generation(self) -> int | None:
        """The pool's tree generation; None when it cannot be read (the TTL still bounds the copy's age)."""
        if self._changes is None:
            return None
        self.checks += 1
        try:
            return self._changes()
        except Exception as error:  # the database is the worker's to report; the tree only waits for the TTL
            log_event(logger, "organisation_changes_unread", level=logging.WARNING, error_type=type(error).__name__)
            return None

    def _load(self, client: GenAuthClient) -> None:
        started, before = self._clock(), client.calls
        # Read before listing: a change recorded during the load moves it again, and the next check reloads.
        self._generation, self._checked_at = self._read_generation(), started
        nodes: dict[str, _Node] = {}
        for organization in directory.list_organizations(client):
            code = _text(organization.get("organizationCode"))
            if code is None:
                continue
            root = _text(organization.get("departmentId"))
            if root is not None:  # whether get-all-departments lists the root too is not documented
                nodes[root] = _Node(root, None, _text(organization.get("organizationName")), code, None)
            for item in directory.list_all_departments(client, code):
                node = _node(item, code)
                if node is not None:
                    nodes[node.department_id] = node
        self._nodes, self._unknown = nodes, set()
        self._loaded_at = started
        self.loads += 1
        self.calls += client.calls - before
        log_event(logger, "organisation_tree_loaded", departments=len(nodes), calls=client.calls - before)

    def _department(self, department_id: str) -> Department:
        node = self._nodes[department_id]
        ancestors: list[_Node] = []
        parent = self._nodes.get(node.parent_id) if node.parent_id else None
        while parent is not None and len(ancestors) < len(self._nodes):  # the bound stops a cycle
            ancestors.append(parent)
            parent = self._nodes.get(parent.parent_id) if parent.parent_id else None
        ancestors.reverse()
        return Department(
            department_id=node.department_id,
            code=node.code,
            name=node.name,
            organization_code=node.organization_code,
            ancestor_ids=tuple(a.department_id for a in ancestors),
            ancestor_codes=tuple(a.code for a in ancestors if a.code),
            ancestor_names=tuple(a.name for a in ancestors if a.name),
        )


def _node(item: Json, organization_code: str) -> _Node | None:
    department_id = _text(item.get("departmentId"))
    if department_id is None:
        return None
    parent = _text(item.get("parentDepartmentId"))
    return _Node(
        department_id=department_id,
        code=_text(item.get("code")),
        name=_text(item.get("name")),
        organization_code=_text(item.get("organizationCode")) or organization_code,
        parent_id=None if parent in (None, "root", department_id) else parent,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
