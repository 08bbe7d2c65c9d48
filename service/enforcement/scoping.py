"""Which users are in scope of the rules, listed page by page at a cost that grows with the users in scope.

``mfa-enforcer reconcile`` and the worker's periodic sweep (``service.worker.sweeping``) call this. A rule
whose top-level match names ``departments`` is in scope for the members of those departments (with their
sub-departments unless ``include_subdepartments`` is false), listed with ``list-department-members``; any
other rule needs the whole pool, listed with ``list-users``. Department selectors are codes, names or ids
without an organisation, so ``DepartmentResolver`` looks each up in every organisation once per run.

The plan is a list of ``Source`` listings; ``Sweeper`` walks them a page at a time and hands each page to a
``Ledger``, which dedupes users across rules and records progress (in memory for a dry run, in the database
otherwise, so a stopped sweep resumes where it was). The first page of every listing is read first, so the
total to expect (and an ETA) is known early.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from service.errors import TemporaryError
from service.genauth import directory
from service.genauth.client import GenAuthClient
from service.genauth.directory import Page
from service.policy.rules import Rule

POOL_KEY = "pool"
RETRY_ATTEMPTS = 5
RETRY_DELAY_MAX = 60.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class DepartmentRef:
    """A department found for a selector."""

    organization_code: str
    department_id: str
    code: str | None
    name: str | None

    @property
    def label(self) -> str:
        return f"{self.name or self.code or self.department_id} ({self.organization_code}/{self.code or '-'})"


class DepartmentResolver:
    """Finds the departments a selector (code, name or id) names, in every organisation; caches per run."""

    def __init__(self, client: GenAuthClient) -> None:
        self.client = client
        self._organizations: list[str] | None = None
        self._cache: dict[str, tuple[DepartmentRef, ...]] = {}

    def organizations(self) -> list[str]:
        if self._organizations is None:
            codes = (item.get("organizationCode") for item in directory.list_organizations(self.client))
            self._organizations = [code for code in codes if isinstance(code, str) and code]
        return self._organizations

    def resolve(self, selector: str) -> tuple[DepartmentRef, ...]:
        """Every department whose code or id equals ``selector``, or whose name or code equals it ignoring case."""
        if selector not in self._cache:
            self._cache[selector] = self._look_up(selector.strip())
        return self._cache[selector]

    def _look_up(self, selector: str) -> tuple[DepartmentRef, ...]:
        found: dict[str, DepartmentRef] = {}
        folded = selector.casefold()
        for organization in self.organizations():
            candidates: list[dict[str, Any]] = []
            by_code = directory.get_department(self.client, organization, selector, id_type="code")
            candidates.extend([by_code] if by_code else [])
            if selector != "root":  # "root" would name the organisation's root, not a department called root
                by_id = directory.get_department(self.client, organization, selector, id_type="department_id")
                candidates.extend([by_id] if by_id else [])
            for item in directory.search_departments(self.client, organization, selector):
                texts = (item.get("name"), item.get("code"))
                if any(isinstance(text, str) and text.strip().casefold() == folded for text in texts):
                    candidates.append(item)
            for item in candidates:
                department_id = str(item["departmentId"])
                found.setdefault(
                    department_id,
                    DepartmentRef(
                        organization_code=str(item.get("organizationCode") or organization),
                        department_id=department_id,
                        code=item.get("code") if isinstance(item.get("code"), str) else None,
                        name=item.get("name") if isinstance(item.get("name"), str) else None,
                    ),
                )
        return tuple(found.values())


@dataclass(frozen=True)
class Source:
    """One paged listing of users: a department's members, or the whole pool; ``rules`` it is in scope for."""

    key: str
    label: str
    rules: tuple[str, ...]
    organization_code: str | None = None
    department_id: str | None = None
    include_children: bool = True

    def fetch(self, client: GenAuthClient, number: int) -> Page:
        """Page ``number`` (from 1) of this listing."""
        if self.department_id is None or self.organization_code is None:
            return directory.users_page(client, number=number)
        return directory.department_members_page(
            client, self.organization_code, self.department_id, include_children=self.include_children, number=number
        )


@dataclass(frozen=True)
class ScopePlan:
    """The listings to walk for some rules, and the selectors that named no department."""

    rules: tuple[str, ...]
    sources: tuple[Source, ...]
    unresolved: tuple[tuple[str, str], ...] = ()
    """(rule, selector) pairs that matched no department: those rules have nobody in scope through them."""

    @property
    def fingerprint(self) -> str:
        """Identifies the plan, so a stored sweep is resumed only with the same listings for the same rules."""
        shape = [[source.key, sorted(source.rules)] for source in self.sources]
        return hashlib.sha256(json.dumps([sorted(self.rules), shape]).encode()).hexdigest()


def scope_of(rule: Rule) -> tuple[tuple[str, ...], bool]:
    """The rule's top-level department selectors (empty: the whole pool) and whether sub-departments count."""
    selectors = tuple(getattr(rule.match, "departments", ()) or ())
    return selectors, bool(getattr(rule.match, "include_subdepartments", True))


def plan_scope(rules: Sequence[Rule], resolver: DepartmentResolver) -> ScopePlan:
    """The listings that cover every user in scope of ``rules``: one per department (or the pool), deduped."""
    keyed: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
    unresolved: list[tuple[str, str]] = []

    def add(key: str, label: str, where: dict[str, Any], rule: str) -> None:
        entry = keyed.setdefault(key, (label, where, []))
        if rule not in entry[2]:
            entry[2].append(rule)

    for rule in rules:
        selectors, include_children = scope_of(rule)
        if not selectors:
            add(POOL_KEY, "the whole user pool", {}, rule.name)
            continue
        for selector in selectors:
            departments = resolver.resolve(selector)
            if not departments:
                unresolved.append((rule.name, selector))
            for ref in departments:
                reach = "tree" if include_children else "direct"
                label = ref.label + (" with sub-departments" if include_children else "")
                where = {
                    "organization_code": ref.organization_code,
                    "department_id": ref.department_id,
                    "include_children": include_children,
                }
                add(f"department:{ref.organization_code}:{ref.department_id}:{reach}", label, where, rule.name)
    sources = tuple(
        Source(key=key, label=label, rules=tuple(names), **where) for key, (label, where, names) in keyed.items()
    )
    return ScopePlan(rules=tuple(rule.name for rule in rules), sources=sources, unresolved=tuple(unresolved))


@dataclass
class SourceProgress:
    """How far one listing got: the next page to read, GenAuth's total, users listed so far."""

    next_page: int = 1
    total: int | None = None
    listed: int = 0
    done: bool = False


@dataclass(frozen=True)
class PageRecord:
    """One page read from a source, for the ledger to record."""

    source: Source
    number: int
    user_ids: tuple[str, ...]
    total: int | None
    is_last: bool


class Ledger(Protocol):
    """Remembers who has been seen (deduping across rules) and how far each listing got."""

    def progress(self, key: str) -> SourceProgress:
        """Where the listing ``key`` stands (a fresh one starts at page 1)."""

    def in_scope(self) -> int:
        """Distinct users seen so far."""

    def record(self, page: PageRecord) -> list[str]:
        """Store the page and the listing's progress; return the users not seen before, in page order."""


@dataclass
class MemoryLedger:
    """A ledger for a dry run: nothing is written anywhere."""

    sources: dict[str, SourceProgress] = field(default_factory=dict)
    rules_of: dict[str, set[str]] = field(default_factory=dict)
    """User id -> the rules whose scope they are in."""

    def progress(self, key: str) -> SourceProgress:
        return self.sources.setdefault(key, SourceProgress())

    def in_scope(self) -> int:
        return len(self.rules_of)

    def record(self, page: PageRecord) -> list[str]:
        new: list[str] = []
        for user_id in dict.fromkeys(page.user_ids):
            if user_id not in self.rules_of:
                new.append(user_id)
            self.rules_of.setdefault(user_id, set()).update(page.source.rules)
        progress = self.progress(page.source.key)
        progress.next_page = page.number + 1
        progress.total = page.total
        progress.listed += len(page.user_ids)
        progress.done = page.is_last
        return new

    def rule_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rules in self.rules_of.values():
            for rule in rules:
                counts[rule] = counts.get(rule, 0) + 1
        return counts


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays; ``expected`` counts listed users (a user in two listings twice)."""

    listed: int
    expected: int | None
    in_scope: int
    pages: int
    elapsed: float
    listed_this_run: int

    @property
    def rate(self) -> float:
        """Users listed per second in this run."""
        return self.listed_this_run / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, once the totals are known and there is a rate."""
        if self.expected is None or self.rate <= 0:
            return None
        return max(0.0, (self.expected - self.listed) / self.rate)


class SweepStoppedError(Exception):
    """The sweep was asked to stop; what it recorded stays, and it resumes from there."""


class Sweeper:
    """Walks a plan's listings page by page into a ledger; stops cleanly between pages."""

    def __init__(
        self,
        client: GenAuthClient,
        plan: ScopePlan,
        ledger: Ledger,
        *,
        on_new_users: Callable[[list[str]], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        retry_base: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.plan = plan
        self.ledger = ledger
        self.on_new_users = on_new_users
        self.on_progress = on_progress
        self.stop = stop or threading.Event()
        self.retry_base = retry_base
        self.clock = clock
        self.pages = 0
        self._started = clock()
        self._listed_at_start = self._listed()

    @property
    def is_finished(self) -> bool:
        return all(self.ledger.progress(source.key).done for source in self.plan.sources)

    def run(self, *, deadline: float | None = None) -> bool:
        """Read pages until every listing is done (True) or ``deadline`` (``clock`` time) passes (False).

        Raises ``SweepStoppedError`` when ``stop`` is set, and the last ``TemporaryError`` when GenAuth keeps
        failing; both leave every page recorded so far in the ledger.
        """
        # Every listing's first page first: after that the totals, and so the ETA, are known.
        for first_pages_only in (True, False):
            for source in self.plan.sources:
                progress = self.ledger.progress(source.key)
                while not progress.done and not (first_pages_only and progress.total is not None):
                    if deadline is not None and self.clock() >= deadline:
                        return False
                    self._read(source, progress.next_page)
                    progress = self.ledger.progress(source.key)
                    if first_pages_only:
                        break
        return True

    def snapshot(self) -> Progress:
        totals = [self.ledger.progress(source.key) for source in self.plan.sources]
        listed = self._listed()
        expected = None if any(p.total is None and not p.done for p in totals) else sum(_expected(p) for p in totals)
        return Progress(
            listed=listed,
            expected=expected,
            in_scope=self.ledger.in_scope(),
            pages=self.pages,
            elapsed=self.clock() - self._started,
            listed_this_run=listed - self._listed_at_start,
        )

    def _read(self, source: Source, number: int) -> None:
        if self.stop.is_set():
            raise SweepStoppedError()
        if number > directory.MAX_PAGES:
            # A server that ignores `page` (full pages, no totalCount) would otherwise be read forever.
            raise directory.unreadable(source.key, f"more than {directory.MAX_PAGES} pages")
        page = self.retrying(lambda: source.fetch(self.client, number))
        user_ids = tuple(directory.user_ids_of(page))
        record = PageRecord(source, number, user_ids, page.total, page.is_last(number))
        new = self.ledger.record(record)
        self.pages += 1
        if new and self.on_new_users is not None:
            self.on_new_users(new)
        if self.on_progress is not None:
            self.on_progress(self.snapshot())

    def retrying(self, call: Callable[[], _T]) -> _T:
        """``call()`` with this sweeper's retries and stop signal (``call_with_retries``)."""
        return call_with_retries(call, stop=self.stop, base=self.retry_base)

    def _listed(self) -> int:
        return sum(self.ledger.progress(source.key).listed for source in self.plan.sources)


def call_with_retries(call: Callable[[], _T], *, stop: threading.Event, base: float = 1.0) -> _T:
    """``call()``, retried with exponential backoff (at least GenAuth's Retry-After) on temporary errors.

    Gives up with the last ``TemporaryError`` after ``RETRY_ATTEMPTS``; ``SweepStoppedError`` if ``stop`` is
    set while waiting.
    """
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except TemporaryError as error:
            if attempt == RETRY_ATTEMPTS:
                raise
            delay = min(RETRY_DELAY_MAX, max(base * 2 ** (attempt - 1), error.retry_after or 0.0))
            if stop.wait(delay):
                raise SweepStoppedError() from error
    raise AssertionError("unreachable")


def _expected(progress: SourceProgress) -> int:
    if progress.done:
        return progress.listed
    return max(progress.total or 0, progress.listed)
