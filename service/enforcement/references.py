"""Do the departments, groups and roles the rules name exist in GenAuth? A misspelled department matches
nobody, so without this check a rule would silently enforce nobody.

``check_references(client, policy)`` resolves every department selector (code, name or id, as
``scoping.DepartmentResolver`` does for sweeps), group code and role (per namespace) the rules name, in their
match blocks at any depth and in their exceptions, and returns the ones GenAuth does not know, each with close
matches ("did you mean finance?"). ``mfa-enforcer policy check --live`` prints them and fails.
``PolicyReferences`` runs the same check in every process that runs a worker, at start and whenever the policy
in force changes: ``/readyz`` lists the problems as ``policy_warnings``, the log says them once per policy, and
the ``mfa_enforcer_policy_unresolved_references`` gauge counts them (alert ``MfaEnforcerPolicyUnresolved``).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from service import metrics
from service.background import Repeating
from service.enforcement.scoping import DepartmentResolver
from service.errors import ServiceError
from service.genauth import directory
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthRefusedError
from service.logs import log_event
from service.policy.rules import Policy

logger = logging.getLogger(__name__)

SUGGESTIONS = 3
SIMILARITY = 0.6
"""difflib's cutoff for a close match (0 to 1)."""
SEARCH_WINDOWS = 8
"""At most this many name fragments are searched per organisation to find departments close to a misspelling."""
REFERENCES_EXTENSION = "mfa_enforcer_policy_references"
"""Where ``create_app`` keeps the ``PolicyReferences`` of a web process that runs workers (read by /readyz)."""
RETRY_AFTER = 60.0
"""Seconds before a check that GenAuth failed is tried again."""


@dataclass(frozen=True)
class Reference:
    """One department, group or role the policy names, and the rules that name it."""

    kind: str
    """``department``, ``group`` or ``role``."""
    name: str
    """The selector as written; a role as ``code`` (default namespace) or ``namespace:code``."""
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Unresolved:
    """A reference GenAuth does not know, with the closest names it does know."""

    reference: Reference
    suggestions: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        rules = ", ".join(self.reference.rules)
        text = f"rule {rules}: {self.reference.kind} {self.reference.name!r} matches nothing in GenAuth"
        if self.suggestions:
            text += f"; did you mean {' or '.join(self.suggestions)}?"
        return text


def references_of(policy: Policy) -> list[Reference]:
    """Every department, group and role the policy names, once each, in file order."""
    found: dict[tuple[str, str], list[str]] = {}

    def add(kind: str, name: str, rule: str) -> None:
        named = found.setdefault((kind, name), [])
        if rule not in named:
            named.append(rule)

    for rule in policy.rules:
        for block in rule.match.blocks():
            for department in block.departments:
                add("department", department, rule.name)
            for group in block.groups:
                add("group", group, rule.name)
            for role in block.roles:
                add("role", role.code if role.namespace == "default" else f"{role.namespace}:{role.code}", rule.name)
        for exemption in rule.exceptions:
            for group in exemption.groups:
                add("group", group, rule.name)
    return [Reference(kind, name, tuple(rules)) for (kind, name), rules in found.items()]


def check_references(client: GenAuthClient, policy: Policy) -> list[Unresolved]:
    """The references GenAuth does not know (GenAuth errors other than "not found" propagate)."""
    references = references_of(policy)
    if not references:
        return []
    resolver = DepartmentResolver(client)
    groups: list[tuple[str, str]] | None = None
    roles: dict[str, list[tuple[str, str]]] = {}
    problems: list[Unresolved] = []
    for reference in references:
        if reference.kind == "department":
            if not resolver.resolve(reference.name):
                problems.append(
                    Unresolved(reference, _close(reference.name, _departments_like(resolver, reference.name)))
                )
            continue
        if reference.kind == "group":
            if groups is None:
                groups = _all_groups(client)
            known = groups
            wanted = reference.name
        else:
            namespace, _, code = reference.name.rpartition(":")
            namespace = namespace or "default"
            if namespace not in roles:
                roles[namespace] = _all_roles(client, namespace)
            known = roles[namespace]
            wanted = code
        if not any(wanted.casefold() == code.casefold() for code, _ in known):
            candidates = [text for pair in known for text in pair if text]
            problems.append(Unresolved(reference, _close(wanted, candidates)))
    return problems


def _close(wanted: str, candidates: list[str]) -> tuple[str, ...]:
    """Up to ``SUGGESTIONS`` candidates like ``wanted``, ignoring case (the first spelling seen: codes first)."""
    folded: dict[str, str] = {}
    for candidate in candidates:
        folded.setdefault(candidate.casefold(), candidate)
    matches = difflib.get_close_matches(wanted.casefold(), list(folded), n=SUGGESTIONS, cutoff=SIMILARITY)
    return tuple(folded[match] for match in matches)


def _departments_like(resolver: DepartmentResolver, selector: str) -> list[str]:
    """Codes and names of departments whose name shares a three-letter fragment with ``selector``."""
    text = selector.strip()
    windows = list(dict.fromkeys(text[i : i + 3] for i in range(max(1, len(text) - 2))))
    if len(windows) > SEARCH_WINDOWS:
        step = len(windows) / SEARCH_WINDOWS
        windows = [windows[int(i * step)] for i in range(SEARCH_WINDOWS)]
    found: list[str] = []
    for organization in resolver.organizations():
        for window in windows:
            if not window.strip():
                continue
            for item in directory.search_departments(resolver.client, organization, window):
                found.extend(str(item[key]) for key in ("code", "name") if isinstance(item.get(key), str))
    return list(dict.fromkeys(found))


def _all_groups(client: GenAuthClient) -> list[tuple[str, str]]:
    return [(str(item.get("code") or ""), str(item.get("name") or "")) for item in directory.list_groups(client)]


def _all_roles(client: GenAuthClient, namespace: str) -> list[tuple[str, str]]:
    try:
        items = directory.list_roles(client, namespace)
    except GenAuthRefusedError:
        return []  # GenAuth does not know the namespace: none of its roles exists
    return [(str(item.get("code") or ""), str(item.get("name") or "")) for item in items]


@dataclass
class PolicyReferences(Repeating):
    """Keeps the reference check of the policy in force up to date, in a background thread of a process that
    runs workers (it has the GenAuth credentials): at start and after every reload, or a minute after GenAuth
    failed to answer."""

    thread_name = "mfa-enforcer-policy-references"
    crash_event = "policy_references_crashed"
    client: GenAuthClient
    policy_getter: Callable[[], Policy]
    interval: float = 5.0
    """Seconds between looks at the policy in force (``ENFORCER_POLICY_CHECK_INTERVAL``)."""
    clock: Callable[[], float] = time.monotonic
    warnings: list[str] = field(default_factory=list)
    """The problems of the policy in force, as ``/readyz`` shows them (empty: all resolved or not checked)."""
    checked: Policy | None = None
    _retry_at: float = 0.0

    def tick(self) -> bool:
        """Check the policy in force if it is not the one last checked (or a failed check is due again)."""
        policy = self.policy_getter()
        if policy is self.checked or (self.checked is None and self.clock() < self._retry_at):
            return False
        try:
            problems = check_references(self.client, policy)
        except ServiceError as error:
            self._retry_at = self.clock() + RETRY_AFTER
            log_event(logger, "policy_references_unchecked", level=logging.WARNING, error=str(error))
            self.checked = None
            self.warnings = [f"the departments, groups and roles the rules name could not be checked yet: {error}"]
            return False
        self.checked = policy
        self.warnings = [problem.message for problem in problems]
        metrics.POLICY_UNRESOLVED.set(len(problems))
        if problems:
            log_event(logger, "policy_references_unresolved", level=logging.WARNING, problems=self.warnings)
        else:
            log_event(logger, "policy_references_resolved", references=len(references_of(policy)))
        return False

    def close(self) -> None:
        self.client.close()
