"""`Directory`: the organizations and department trees of the emulated user pool.

Owned by `state.EmulatorState`, which calls it with its lock held; the directory itself does not lock.
Each organization's root is an ordinary department whose code is the organization code. Department codes are
unique across the pool so that test helpers can name a department by code alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from genauth_emulator import trees
from genauth_emulator.records import Department, Organization

DEPARTMENT_ID_TYPES = ("department_id", "code")


class UnknownDepartmentError(LookupError):
    """No department matches the code or id given."""


class UnknownOrganizationError(LookupError):
    """No organization has the code given."""


class Directory:
    """Organizations, departments and the tree between them; ids and timestamps come from the callables."""

    def __init__(self, *, new_id: Callable[[], str], timestamp: Callable[[], str]) -> None:
        self._new_id = new_id
        self._timestamp = timestamp
        self._organizations: dict[str, Organization] = {}
        self._departments: dict[str, Department] = {}
        self._codes: dict[str, str] = {}

    @property
    def departments(self) -> Mapping[str, Department]:
        """Every department by id (live records: callers must hold the state lock)."""
        return self._departments

    def add_organization(self, code: str, name: str) -> Organization:
        """Create an organization with its root department."""
        if code in self._organizations:
            raise ValueError(f"organization {code!r} exists")
        root = self._add(code, code, name, None)
        organization = Organization(
            code=code, name=name, id=self._new_id(), root_id=root.id, created_at=self._timestamp()
        )
        self._organizations[code] = organization
        return organization

    def add_department(self, organization_code: str, code: str, name: str, parent_code: str | None) -> Department:
        """Create a department under `parent_code`, or under the root when that is None."""
        organization = self.organization(organization_code)
        parent = self.by_code(parent_code) if parent_code else self._departments[organization.root_id]
        if parent.organization_code != organization_code:
            raise ValueError(f"department {parent_code!r} is not in organization {organization_code!r}")
        return self._add(organization_code, code, name, parent.id)

    def move(self, code: str, new_parent_code: str) -> None:
        """Re-parent a department, with its subtree, inside the same organization."""
        department = self.by_code(code)
        parent = self.by_code(new_parent_code)
        if department.is_root or parent.organization_code != department.organization_code:
            raise ValueError(f"cannot move {code!r} under {new_parent_code!r}")
        if parent.id in trees.subtree_ids(self._departments, department.id):
            raise ValueError(f"{new_parent_code!r} is inside {code!r}")
        department.parent_id = parent.id
        department.updated_at = self._timestamp()

    def rename(self, code: str, name: str) -> None:
        """Give a department (a root too) another name; its code and place stay."""
        department = self.by_code(code)
        department.name = name
        department.updated_at = self._timestamp()

    def organization(self, code: str) -> Organization:
        """Return the organization with this code."""
        organization = self._organizations.get(code)
        if organization is None:
            raise UnknownOrganizationError(code)
        return organization

    def by_code(self, code: str) -> Department:
        """Return the department with this code (an organization code names its root)."""
        department_id = self._codes.get(code)
        if department_id is None:
            raise UnknownDepartmentError(code)
        return self._departments[department_id]

    def find(self, organization_code: str, reference: str, id_type: str) -> Department:
        """Resolve an API reference: `root`, a department id, or a code, as `id_type` says."""
        organization = self.organization(organization_code)
        if id_type not in DEPARTMENT_ID_TYPES:
            raise ValueError(f"unsupported departmentIdType {id_type!r}")
        if id_type == "department_id" and reference == "root":
            return self._departments[organization.root_id]
        for department in self._departments.values():
            matches = department.code if id_type == "code" else department.id
            if department.organization_code == organization_code and matches == reference:
                return department
        raise UnknownDepartmentError(reference)

    def path_to(self, department: Department) -> list[Department]:
        """Return the departments above this one, root first, parent last."""
        return trees.ancestors(self._departments, department)

    def subtree(self, department_id: str) -> set[str]:
        """Return the id of this department and of every department below it."""
        return trees.subtree_ids(self._departments, department_id)

    def _add(self, organization_code: str, code: str, name: str, parent_id: str | None) -> Department:
        if code in self._codes:
            raise ValueError(f"department code {code!r} exists")
        timestamp = self._timestamp()
        department = Department(
            id=self._new_id(),
            organization_code=organization_code,
            code=code,
            name=name,
            parent_id=parent_id,
            created_at=timestamp,
            updated_at=timestamp,
        )
        self._departments[department.id] = department
        self._codes[code] = department.id
        return department
