"""Gathering a user's facts from GenAuth, fetching only what the loaded rules need, in one round trip.

``get-user`` is always read (contact details with their ``phoneVerified``/``emailVerified`` flags, status,
source), unless a listing already returned the record. Everything else costs a call and is read only when a
rule needs it (docs/architecture.md, principle 6): groups (``get-user-groups``), roles (``get-user-roles``
once per namespace the rules name), and the facts that come with the user record when it is asked for them
(custom data, identities, department ids: each condition names its ``user_flag``, so they all come in the one
call). Departments come from the record's ``departmentIds`` and the process's cached organisation tree
(``service.enforcement.organisation``); ``get-user-departments`` is read only when the record has no ids or
names a department the tree does not know even after reloading it.

``read_user`` sends its reads at once (``GenAuthClient.concurrently``), ``get-mfa-status`` with them when the
caller asks, so a job's reads cost one round trip. What a read raises is raised in a fixed order (the
user record first: a deleted user is ``GenAuthUserNotFoundError`` whatever else failed), and an error of the
MFA read is kept in ``Reading.mfa`` for the caller, which needs that data only when a rule matches.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from service.enforcement.organisation import OrganisationTree
from service.genauth import users
from service.genauth.client import GenAuthClient, Json
from service.policy import Policy
from service.policy.conditions import CONDITIONS
from service.policy.facts import Department, Fact, Role, UserFacts

WITH_DEPARTMENT_IDS = "withDepartmentIds"


def user_flags(policy: Policy) -> list[str]:
    """The ``with*`` flags a user record must be read with (``get-user``, or a listing) for these rules:
    each condition's, and ``withDepartmentIds`` when a rule names departments."""
    flags = [str(c.user_flag) for c in CONDITIONS if c.user_flag and c.fact in policy.needs]
    return [*flags, WITH_DEPARTMENT_IDS] if Fact.DEPARTMENTS in policy.needs else flags


@dataclass(frozen=True)
class Reading:
    """A user's facts as read, and their MFA data when it was read in the same round trip."""

    facts: UserFacts
    mfa: Future[Json] | None = None
    """``get-mfa-status``, finished (``.result()`` gives the data or raises its error); None when it was not
    read, or when the facts took a second round of calls, so that the data would be older than they are."""


def read_user(
    client: GenAuthClient,
    user_id: str,
    policy: Policy,
    *,
    user: Json | None = None,
    tree: OrganisationTree | None = None,
    with_mfa: bool = False,
    reserve: int = 0,
) -> Reading:
    """The facts the rules need, read concurrently, and ``get-mfa-status`` with them when ``with_mfa``.

    ``user``: the record as a listing returned it, read with ``user_flags``; without it ``get-user`` is read.
    ``tree``: the organisation tree departments are looked up in (without one, ``get-user-departments`` is
    read). ``reserve``: rate-limit tokens to take with the reads' own, before them, for the calls the
    caller will make right after (the write and its read-back), so no wait falls between read and write.
    """
    needs = policy.needs
    calls: dict[str, Callable[[], Any]] = {}
    if user is None:
        calls["user"] = lambda: users.get_user(client, user_id, flags=user_flags(policy))
    if with_mfa:
        calls["mfa"] = lambda: users.get_mfa_status(client, user_id)
    if Fact.DEPARTMENTS in needs and tree is None:
        calls["departments"] = lambda: users.list_user_departments(client, user_id)
    if Fact.GROUPS in needs:
        calls["groups"] = lambda: users.list_user_groups(client, user_id)
    namespaces = sorted(policy.role_namespaces) if Fact.ROLES in needs else []
    for namespace in namespaces:
        calls[f"roles:{namespace}"] = partial(users.list_user_roles, client, user_id, namespace=namespace)
    if Fact.DEPARTMENTS in needs and tree is not None:
        tree.load_if_stale(client)  # before the round, so that what it reads is not older than the tree
    if reserve:
        client.reserve_calls(len(calls) + reserve)
    done = dict(zip(calls, client.concurrently(*calls.values()), strict=True))
    if user is None:
        user = done["user"].result()
    assert user is not None
    fetched: dict[str, Any] = {str(c.fact): c.read(user) for c in CONDITIONS if c.user_flag and c.fact in needs}
    second_round = False
    if Fact.DEPARTMENTS in needs:
        departments: tuple[Department, ...] | None
        if tree is None:
            departments = tuple(department_from_api(item) for item in done["departments"].result())
        else:
            departments, second_round = _from_tree(client, tree, user)
            if departments is None:
                listed = users.list_user_departments(client, user_id)
                departments, second_round = tuple(department_from_api(item) for item in listed), True
        fetched["departments"] = departments
    if Fact.GROUPS in needs:
        fetched["groups"] = tuple(str(g["code"]) for g in done["groups"].result() if g.get("code"))
    if Fact.ROLES in needs:
        fetched["roles"] = tuple(
            Role(code=str(role["code"]), namespace=str(role.get("namespace") or namespace))
            for namespace in namespaces
            for role in done[f"roles:{namespace}"].result()
            if role.get("code")
        )
    return Reading(facts=facts_of(user_id, user, fetched), mfa=None if second_round else done.get("mfa"))


def _from_tree(client: GenAuthClient, tree: OrganisationTree, user: Json) -> tuple[tuple[Department, ...] | None, bool]:
    """The user's departments from the record's ``departmentIds`` and the tree (None: read them instead), and
    whether the tree was loaded for them."""
    ids = user.get("departmentIds")
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        return None, False  # GenAuth did not send them (or sent something else)
    if not ids:
        return (), False
    lookup = tree.departments(client, list(dict.fromkeys(ids)))
    return lookup.departments, lookup.loaded


def facts_of(user_id: str, user: Json, fetched: dict[str, Any]) -> UserFacts:
    """The policy's view of a user record, with the facts that cost a call (or a flag) by name."""
    return UserFacts(
        user_id=user_id,
        email=_text(user.get("email")),
        phone=_text(user.get("phone")),
        username=_text(user.get("username")),
        phone_country_code=_text(user.get("phoneCountryCode")),
        phone_verified=_flag(user.get("phoneVerified")),
        email_verified=_flag(user.get("emailVerified")),
        status=_text(user.get("status")),
        external_id=_text(user.get("externalId")),
        user_source_type=_text(user.get("userSourceType")),
        register_source=_texts(user.get("registerSource")),
        **fetched,
    )


def department_from_api(item: dict[str, Any]) -> Department:
    """A ``get-user-departments`` list item as a policy fact."""
    return Department(
        department_id=str(item.get("departmentId", "")),
        code=_text(item.get("code")),
        name=_text(item.get("name")),
        organization_code=_text(item.get("organizationCode")),
        ancestor_ids=_texts(item.get("departmentIdPath")),
        ancestor_codes=_texts(item.get("departmentCodePath")),
        ancestor_names=_texts(item.get("departmentNamePath")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _flag(value: Any) -> bool | None:
    """A verification flag as GenAuth reported it; None when it did not (or sent something else)."""
    return value if isinstance(value, bool) else None


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str) and item)
