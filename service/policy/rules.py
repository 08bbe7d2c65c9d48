"""The policy as plain values: which users a rule matches and which MFA factors they must have.

``loading`` builds these from the policy file; ``evaluation`` reads them; nothing here does I/O. The
constructors re-check the invariants the loader guarantees, so a rule built by hand in code or tests cannot
silently mean something else (an empty match would otherwise match everyone).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.policy.facts import Fact

#: The MFA factors a rule may require, in the order decisions list them.
FACTORS: tuple[str, ...] = ("SMS", "EMAIL", "OTP", "FACE")

#: ``enforce`` makes it so; ``audit`` only records what would be done.
MODES: tuple[str, ...] = ("enforce", "audit")

#: The keys ``Match`` understands, in file order.
MATCH_KEYS: tuple[str, ...] = ("departments", "email_domains")


@dataclass(frozen=True)
class Match:
    """Which users a rule applies to: every key given must hold, each list means any-of.

    ``departments`` lists department ids (exact), codes or names (case-insensitive); members of
    sub-departments match too. ``email_domains`` lists lower-case domains matched exactly (no subdomains).
    """

    departments: tuple[str, ...] = ()
    email_domains: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.departments or self.email_domains):
            raise ValueError(f"a match needs at least one of {', '.join(MATCH_KEYS)}")

    @property
    def needs(self) -> frozenset[Fact]:
        """The facts beyond the user record that deciding this match requires."""
        return frozenset({Fact.DEPARTMENTS}) if self.departments else frozenset()


@dataclass(frozen=True)
class Rule:
    """One named rule: users it matches must have every factor in ``require_mfa``."""

    name: str
    description: str
    mode: str
    match: Match
    require_mfa: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rule {self.name!r}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.require_mfa:
            raise ValueError(f"rule {self.name!r}: require_mfa is empty")
        unknown = [factor for factor in self.require_mfa if factor not in FACTORS]
        if unknown:
            raise ValueError(f"rule {self.name!r}: {unknown} are not among {', '.join(FACTORS)}")

    @property
    def is_audit(self) -> bool:
        """True when the rule only records what it would enforce."""
        return self.mode == "audit"

    @property
    def needs(self) -> frozenset[Fact]:
        """The facts beyond the user record that evaluating this rule requires."""
        return self.match.needs


@dataclass(frozen=True)
class Policy:
    """Every rule of one policy file, in file order. No rules means nothing is enforced."""

    rules: tuple[Rule, ...]
    source: str = "<string>"

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names repeat in {self.source}: {names}")

    @property
    def needs(self) -> frozenset[Fact]:
        """The facts the enforcer must gather before evaluating this policy for a user."""
        return frozenset().union(*(rule.needs for rule in self.rules))

    def rule(self, name: str) -> Rule:
        """The rule called ``name``; ``KeyError`` when there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)
