"""The policy as plain values: which users a rule matches, which MFA factors they must have, who is exempt.

``loading`` builds these from the policy file; ``evaluation`` reads them; nothing here does I/O. The
constructors re-check the invariants the loader guarantees, so a rule built by hand in code or tests cannot
silently mean something else (an empty match would otherwise match everyone).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from service.policy.facts import Fact

if TYPE_CHECKING:
    from service.policy.conditions import Condition
    from service.policy.rollout import Rollout

#: The MFA factors a rule may require, in the order decisions list them.
FACTORS: tuple[str, ...] = ("SMS", "EMAIL", "OTP", "FACE")

#: ``enforce`` makes it so; ``audit`` only records what would be done.
MODES: tuple[str, ...] = ("enforce", "audit")

#: The namespace (permission group) of a role given by its bare code.
DEFAULT_NAMESPACE = "default"

#: The operators of a value test (``external_id``, each ``custom_data`` key); exactly one per test.
VALUE_OPERATORS: tuple[str, ...] = ("equals", "in", "exists")

Scalar = str | int | float | bool
"""A value a rule compares with: text, a number or a boolean."""


@dataclass(frozen=True)
class ValueTest:
    """One test of a single value: ``equals`` one value, ``in`` a list of values, or ``exists`` (or not).

    ``values`` holds the one value of ``equals`` and the values of ``in``; ``present`` is what ``exists``
    asks for. A value exists when it is set and is not empty text.
    """

    operator: str
    values: tuple[Scalar, ...] = ()
    present: bool = True

    def __post_init__(self) -> None:
        if self.operator not in VALUE_OPERATORS:
            raise ValueError(f"value test operator {self.operator!r} is not one of {', '.join(VALUE_OPERATORS)}")
        expected = {"equals": len(self.values) == 1, "in": len(self.values) >= 1, "exists": not self.values}
        if not expected[self.operator]:
            raise ValueError(f"value test {self.operator!r} got {len(self.values)} value(s)")

    @classmethod
    def equal_to(cls, value: Scalar) -> ValueTest:
        """``{equals: value}``."""
        return cls("equals", (value,))

    @classmethod
    def one_of(cls, *values: Scalar) -> ValueTest:
        """``{in: [values...]}``."""
        return cls("in", tuple(values))

    @classmethod
    def exists(cls, present: bool = True) -> ValueTest:
        """``{exists: present}``."""
        return cls("exists", (), present)


@dataclass(frozen=True, init=False)
class Match:
    """Which users a rule applies to: every condition given must hold; each list means any-of.

    ``Match(departments=(...))``, read back as ``match.departments``: one value per condition, named like its key
    in the file (``all_of`` / ``any_of`` / ``negated`` for ``all`` / ``any`` / ``not``); the names, defaults and
    meanings are the classes in ``conditions``, so a new condition needs nothing here.
    """

    values: Mapping[str, Any]
    """Every condition's value by name, those not given at their default."""

    def __init__(self, **given: Any) -> None:
        defaults = {name: value for condition in _conditions() for name, value in condition.defaults().items()}
        if unknown := sorted(given.keys() - defaults.keys()):
            raise TypeError(f"Match got unknown conditions {unknown}")
        object.__setattr__(self, "values", MappingProxyType({**defaults, **given}))
        if not self.conditions:
            raise ValueError(f"a match needs at least one of {', '.join(c.key for c in _conditions())}")
        if not self.include_subdepartments and not self.departments:
            raise ValueError("include_subdepartments applies only with departments")

    def __getattr__(self, name: str) -> Any:
        if name == "values" or name.startswith("_") or name not in self.values:
            raise AttributeError(name)
        return self.values[name]

    @property
    def conditions(self) -> tuple[str, ...]:
        """The file keys of the conditions this block gives, in ``CONDITION_KEYS`` order."""
        return tuple(condition.key for condition in _conditions() if condition.is_given(self))

    def blocks(self) -> Iterator[Match]:
        """This block and every block nested in it (``all``, ``any``, ``not``), depth first."""
        yield self
        for inner in (*self.all_of, *self.any_of, *((self.negated,) if self.negated else ())):
            yield from inner.blocks()

    @property
    def needs(self) -> frozenset[str]:
        """The facts beyond the user record that deciding this match requires, at any depth."""
        return frozenset(
            condition.fact
            for block in self.blocks()
            for condition in _conditions()
            if condition.fact is not None and condition.is_given(block)
        )

    @property
    def role_namespaces(self) -> frozenset[str]:
        """The namespaces of every role this match mentions, at any depth."""
        return frozenset(role.namespace for block in self.blocks() for role in block.roles)


@dataclass(frozen=True)
class Exemption:
    """An exception to one rule: the listed users and members of the listed groups are exempt from it.

    ``expires`` is the last day it applies (inclusive); after it the rule applies again.
    """

    reason: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    expires: date | None = None

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("an exception needs a reason")
        if not (self.users or self.groups):
            raise ValueError("an exception needs users or groups")

    def is_expired(self, today: date) -> bool:
        """True once ``today`` is after ``expires``."""
        return self.expires is not None and today > self.expires


@dataclass(frozen=True)
class Protection:
    """The break-glass accounts (the top-level ``protected`` block): no rule, release or revert ever writes them.

    ``users`` are ids, usernames or emails (a username or email compares ignoring case); ``groups`` are group
    codes, so only a block with groups makes the enforcer read the user's groups.
    """

    reason: str
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("the protected block needs a reason")
        if not (self.users or self.groups):
            raise ValueError("the protected block needs users or groups")

    @property
    def needs(self) -> frozenset[str]:
        """The facts beyond the user record deciding protection requires: groups, only when it names groups."""
        return frozenset({Fact.GROUPS}) if self.groups else frozenset()


@dataclass(frozen=True)
class UserNotices:
    """A rule's ``notify_users``: e-mail each user it will enforce ``before`` days ahead of their deadline (largest
    first) and, with ``on_enforce``, when the service has enforced it for them."""

    before: tuple[int, ...] = ()
    on_enforce: bool = False

    def __post_init__(self) -> None:
        if any(days < 1 for days in self.before) or list(self.before) != sorted(set(self.before), reverse=True):
            raise ValueError(f"notify_users before {self.before} must be distinct positive days, largest first")

    @property
    def is_on(self) -> bool:
        return bool(self.before) or self.on_enforce


@dataclass(frozen=True)
class Rule:
    """One named rule: users it matches must have every factor in ``require_mfa``.

    ``fallback`` lists, in order of preference, factors that may stand in for a required factor the user
    cannot be given (SMS without a phone); ``exceptions`` exempt users or groups from this rule alone.
    ``apps`` names the GenAuth applications (app ids) the rule is about: not a match condition, but where its
    factors must be effective (``service.enforcement.effective``); without it, the pool's factors decide.
    """

    name: str
    description: str
    mode: str
    match: Match
    require_mfa: tuple[str, ...]
    fallback: tuple[str, ...] = ()
    exceptions: tuple[Exemption, ...] = ()
    apps: tuple[str, ...] = ()
    rollout: Rollout | None = None
    """When the rule starts for each user (``enforce_from``, ``grace``, ``waves``: ``service.policy.rollout``);
    None: enforced at once."""
    notify_users: UserNotices | None = None
    """Whom to tell by e-mail, and when (None: the users of this rule are not told)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rule {self.name!r}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.require_mfa:
            raise ValueError(f"rule {self.name!r}: require_mfa is empty")
        unknown = [factor for factor in (*self.require_mfa, *self.fallback) if factor not in FACTORS]
        if unknown:
            raise ValueError(f"rule {self.name!r}: {unknown} are not among {', '.join(FACTORS)}")
        overlap = [factor for factor in self.fallback if factor in self.require_mfa]
        if overlap:
            raise ValueError(f"rule {self.name!r}: fallback {overlap} are already required")

    @property
    def is_audit(self) -> bool:
        """True when the rule only records what it would enforce."""
        return self.mode == "audit"

    @property
    def needs(self) -> frozenset[str]:
        """The facts beyond the user record that evaluating this rule (and its exceptions) requires."""
        needs = self.match.needs | (self.rollout.needs if self.rollout is not None else frozenset())
        if any(exemption.groups for exemption in self.exceptions):
            return needs | {Fact.GROUPS}
        return needs


@dataclass(frozen=True)
class Policy:
    """Every rule of one policy file, in file order. No rules means nothing is enforced."""

    rules: tuple[Rule, ...]
    source: str = "<string>"
    digest: str | None = field(default=None, compare=False)
    """SHA-256 of the file these rules were parsed from (``service.policy_source``); None: not from a file."""
    protected: Protection | None = None
    """The accounts nothing writes (``Protection``); None when the file declares none."""

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names repeat in {self.source}: {names}")

    @property
    def needs(self) -> frozenset[str]:
        """The facts the enforcer must gather before evaluating this policy for a user."""
        protected = self.protected.needs if self.protected is not None and self.rules else frozenset()
        return frozenset().union(protected, *(rule.needs for rule in self.rules))

    @property
    def apps(self) -> frozenset[str]:
        """Every application a rule names (``Rule.apps``)."""
        return frozenset(app for rule in self.rules for app in rule.apps)

    @property
    def enforcing(self) -> frozenset[str]:
        """The rules in ``mode: enforce`` (what ``revert`` refuses to undo while they cover a user)."""
        return frozenset(rule.name for rule in self.rules if rule.mode == "enforce")

    @property
    def role_namespaces(self) -> frozenset[str]:
        """The namespaces to read the user's roles in (``get-user-roles`` once per namespace).

        ``default`` stands for roles given by their bare code. Empty when no rule mentions roles.
        """
        return frozenset().union(
            *(rule.match.role_namespaces for rule in self.rules),
            *(
                wave.match.role_namespaces
                for rule in self.rules
                if rule.rollout is not None
                for wave in rule.rollout.waves
                if wave.match is not None
            ),
        )

    @property
    def notifying_rules(self) -> tuple[Rule, ...]:
        """The rules that e-mail their users (``notify_users``)."""
        return tuple(rule for rule in self.rules if rule.notify_users is not None and rule.notify_users.is_on)

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; ``KeyError`` when there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def _conditions() -> tuple[Condition, ...]:
    """The registry of conditions; imported here, not at the top, because it is built on these values."""
    from service.policy.conditions import CONDITIONS

    return CONDITIONS
