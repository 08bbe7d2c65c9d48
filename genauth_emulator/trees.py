"""Walking the department tree: ancestor paths (for `departmentIdPath` & co.) and subtrees (for
`includeChildrenDepartments`). Pure functions over the `Department` records `state.EmulatorState` keeps."""

from __future__ import annotations

from collections.abc import Mapping

from genauth_emulator.records import Department


def ancestors(departments: Mapping[str, Department], department: Department) -> list[Department]:
    """Return the departments above `department`, root first, parent last, not including itself."""
    chain: list[Department] = []
    parent_id = department.parent_id
    while parent_id is not None:
        parent = departments[parent_id]
        chain.append(parent)
        parent_id = parent.parent_id
    chain.reverse()
    return chain


def subtree_ids(departments: Mapping[str, Department], top_id: str) -> set[str]:
    """Return `top_id` and the ids of every department below it."""
    children: dict[str, list[str]] = {}
    for department in departments.values():
        if department.parent_id is not None:
            children.setdefault(department.parent_id, []).append(department.id)
    found = {top_id}
    pending = [top_id]
    while pending:
        for child_id in children.get(pending.pop(), []):
            if child_id not in found:
                found.add(child_id)
                pending.append(child_id)
    return found
