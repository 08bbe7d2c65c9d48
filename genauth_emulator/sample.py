"""`seed_sandbox`: the sample ACME pool the local sandbox and demos run against.

Organization `acme` with Finance (`finance`), Payroll (`finance-payroll`, under Finance) and Engineering
(`engineering`), and six users chosen to exercise an "SMS MFA for finance, including sub-departments" policy:
some need SMS, one cannot have it (no phone), one already has it, one is outside the scope, one has no
department yet (move them into Finance to see the policy react).

For rules on groups and roles: the user group `contractors` holds one Finance member (fin.bob, in Payroll),
the group `mfa-exempt` starts empty (for exceptions), and eng.dave holds the role `admin` in the default
namespace.

For rules about applications: one application, "ACME Portal", which inherits the pool's MFA factors (SMS,
EMAIL and OTP by default) until its own are switched.
"""

from __future__ import annotations

from genauth_emulator.state import EmulatorState

ORGANIZATION_CODE = "acme"


def seed_sandbox(state: EmulatorState) -> dict[str, str]:
    """Create the ACME organization and users in `state`; return username -> user id."""
    state.add_organization(ORGANIZATION_CODE, "ACME")
    state.add_department(ORGANIZATION_CODE, "finance", "Finance")
    state.add_department(ORGANIZATION_CODE, "finance-payroll", "Payroll", parent_code="finance")
    state.add_department(ORGANIZATION_CODE, "engineering", "Engineering")
    people = [
        # username, display name, phone, department codes, already-enabled factor
        ("fin.alice", "Alice Wang", "13800138001", ("finance",), None),
        ("fin.bob", "Bob Li", "13800138002", ("finance-payroll",), "EMAIL"),
        ("fin.carol", "Carol Zhang", None, ("finance",), None),
        ("eng.dave", "Dave Chen", "13800138004", ("engineering",), None),
        ("new.erin", "Erin Liu", "13800138005", (), None),
        ("fin.frank", "Frank Zhao", "13800138006", ("finance",), "SMS"),
    ]
    ids: dict[str, str] = {}
    for username, name, phone, departments, factor in people:
        email = f"{username}@acme.example"
        user = state.add_user(
            username=username,
            email=email,
            phone=phone,
            name=name,
            departments=departments,
            application_mfa=[factor] if factor else (),
            mfa_phone=phone if factor == "SMS" else None,
            mfa_email=email if factor == "EMAIL" else None,
        )
        ids[username] = user["userId"]
    state.add_group("contractors", "Contractors", "External contractors")
    state.add_group_member(ids["fin.bob"], "contractors")
    state.add_group("mfa-exempt", "MFA exempt", "Exempt from MFA rules for a reason on record")
    state.add_role("admin", name="Administrator")
    state.assign_role(ids["eng.dave"], "admin")
    state.add_application("ACME Portal", identifier="acme-portal")
    return ids
