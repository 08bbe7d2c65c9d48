"""Which users are in scope of the rules, as listings to page through: planned once per reconcile sweep.

``mfa-enforcer reconcile`` and the worker's periodic sweep (``service.worker.sweeping``) plan with this. A rule
whose top-level match names ``departments`` is in scope for the members of those departments (with their
sub-departments unless ``include_subdepartments`` is false), listed with ``list-department-members``; any
other rule needs the whole pool, listed with ``list-users``. Department selectors are codes, names or ids
without an organisation, so ``DepartmentResolver`` looks each up in every organisation once per plan.

The plan is a list of ``Source`` listings, stored with the sweep (``ScopePlan.to_json``) so that whichever
worker reads a page of it reads the same listing; the dry run walks the same sources in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from service.genauth import directory
from service.genauth.client import GenAuthClient
from service.genauth.paging import Page, check_page_number
from service.policy.rules import Rule

POOL_KEY = "pool"


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

    def fetch(self, client: GenAuthClient, number: int, *, flags: Sequence[str] = ()) -> Page:
        """Page ``number`` (from 1) of this listing, its user records read with ``flags``."""
        check_page_number(number, self.key)  # the one cap on every listing
        if self.department_id is None or self.organization_code is None:
            return directory.users_page(client, number=number, flags=flags)
        return directory.department_members_page(
            client,
            self.organization_code,
            self.department_id,
            include_children=self.include_children,
            number=number,
            flags=flags,
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
        """Identifies the plan, so a running sweep is joined only with the same listings for the same rules."""
        shape = [[source.key, sorted(source.rules)] for source in self.sources]
        return hashlib.sha256(json.dumps([sorted(self.rules), shape]).encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "sources": [asdict(s) for s in self.sources], "unresolved": self.unresolved}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScopePlan:
        sources = tuple(Source(**{**item, "rules": tuple(item["rules"])}) for item in data["sources"])
        unresolved = tuple((str(rule), str(selector)) for rule, selector in data.get("unresolved", ()))
        return cls(rules=tuple(data["rules"]), sources=sources, unresolved=unresolved)

    def rules_elsewhere(self, index: int) -> set[str]:
        """The rules of every listing but ``index``: a user met again through listing ``index`` counts only
        for its rules not among these (they were counted where the user was first met)."""
        return {rule for other, source in enumerate(self.sources) if other != index for rule in source.rules}


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
