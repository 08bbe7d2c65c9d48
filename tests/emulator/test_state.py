"""EmulatorState helpers and the sample pool: realistic unique ids, user creation options, copies not live
records, thread safety, and the ACME sandbox seed."""

from __future__ import annotations

import re
import threading

import pytest

from genauth_emulator import EmulatorState, UnknownUserError, seed_sandbox

HEX24 = re.compile(r"[0-9a-f]{24}")


def test_ids_are_unique_24_hex(state: EmulatorState) -> None:
    """The pool, organizations, departments and users all get distinct 24-lowercase-hex ids."""
    state.add_organization("org", "Org")
    ids = [state.userpool_id, state.organization("org")["orgId"], state.organization("org")["rootDepartmentId"]]
    ids += [state.add_department("org", f"d{i}", f"D{i}") for i in range(50)]
    ids += [state.add_user(username=f"u{i}")["userId"] for i in range(200)]
    assert all(HEX24.fullmatch(value) for value in ids)
    assert len(set(ids)) == len(ids)


def test_add_user_options_are_reflected(state: EmulatorState) -> None:
    """add_user stores the profile, departments (first = main), factors and MFA contacts it is given."""
    state.add_organization("org", "Org")
    state.add_department("org", "a", "A")
    state.add_department("org", "b", "B", parent_code="a")
    user = state.add_user(
        username="zed",
        email="zed@example.com",
        phone="13900000000",
        phone_country_code="+852",
        name="Zed",
        status="Suspended",
        departments=("b", "a"),
        user_id="0123456789abcdef01234567",
        application_mfa=["SMS", {"mfaPolicy": "OTP", "status": 0, "sort": 5}],
        mfa_phone="13900000000",
    )
    assert user["userId"] == "0123456789abcdef01234567"
    assert (user["phoneCountryCode"], user["status"], user["name"]) == ("+852", "Suspended", "Zed")
    assert user["departmentIds"] == [state.department_id("b"), state.department_id("a")]
    assert user["mainDepartmentId"] == state.department_id("b")
    mfa = state.get_mfa(user["userId"])
    assert mfa["applicationMfa"] == [
        {"mfaPolicy": "SMS", "status": 1, "sort": 0},
        {"mfaPolicy": "OTP", "status": 0, "sort": 5},
    ]
    assert (mfa["mfaPhone"], mfa["mfaPhoneCountryCode"]) == ("13900000000", "+852")
    with pytest.raises(ValueError):
        state.add_user(user_id="0123456789abcdef01234567")


def test_users_without_phone_have_no_country_code(state: EmulatorState) -> None:
    """A user created without a phone has phoneCountryCode null and phoneVerified false."""
    user = state.add_user(username="nophone")
    assert user["phone"] is None and user["phoneCountryCode"] is None and user["phoneVerified"] is False


def test_helpers_hand_out_copies(state: EmulatorState) -> None:
    """Changing what user()/get_mfa() returned does not change the pool."""
    user_id = state.add_user(username="copy", application_mfa=["SMS"])["userId"]
    state.user(user_id)["username"] = "changed"
    state.get_mfa(user_id)["applicationMfa"].append({"mfaPolicy": "EMAIL", "status": 1, "sort": 1})
    assert state.user(user_id)["username"] == "copy"
    assert len(state.get_mfa(user_id)["applicationMfa"]) == 1


def test_update_user_changes_known_fields_only(state: EmulatorState) -> None:
    """update_user sets v3 fields and refuses unknown ones and userId."""
    user_id = state.add_user(username="upd")["userId"]
    assert state.update_user(user_id, phone="13700000000", phoneCountryCode="+86")["phone"] == "13700000000"
    with pytest.raises(ValueError):
        state.update_user(user_id, favouriteColour="blue")
    with pytest.raises(ValueError):
        state.update_user(user_id, userId="x")


def test_unknown_users_and_departments_raise_lookup_errors(state: EmulatorState) -> None:
    """Helpers raise LookupError subclasses for unknown users and department codes."""
    with pytest.raises(UnknownUserError):
        state.user("0" * 24)
    with pytest.raises(UnknownUserError):
        state.delete_user("0" * 24)
    user_id = state.add_user(username="lonely")["userId"]
    with pytest.raises(LookupError):
        state.add_member(user_id, "nowhere")


def test_duplicate_codes_are_refused(state: EmulatorState) -> None:
    """Organization and department codes are unique across the pool."""
    state.add_organization("org", "Org")
    state.add_department("org", "dup", "Dup")
    with pytest.raises(ValueError):
        state.add_department("org", "dup", "Again")
    with pytest.raises(ValueError):
        state.add_organization("org", "Again")


def test_concurrent_writers_do_not_lose_users(state: EmulatorState) -> None:
    """Users added from many threads at once all exist afterwards with distinct ids."""
    state.add_organization("org", "Org")
    created: list[str] = []
    lock = threading.Lock()

    def add_some(worker: int) -> None:
        for index in range(25):
            user_id = state.add_user(username=f"w{worker}-{index}", departments=("org",))["userId"]
            with lock:
                created.append(user_id)

    threads = [threading.Thread(target=add_some, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(created)) == 200
    assert sorted(state.user_ids()) == sorted(created)


def test_sandbox_seed_has_the_documented_people() -> None:
    """seed_sandbox creates ACME's departments and the six sample users with their starting MFA."""
    state = EmulatorState()
    ids = seed_sandbox(state)
    assert set(ids) == {"fin.alice", "fin.bob", "fin.carol", "eng.dave", "new.erin", "fin.frank"}
    assert state.parent_code("finance-payroll") == "finance"
    assert state.user(ids["fin.carol"])["phone"] is None
    assert state.user(ids["new.erin"])["departmentIds"] == []
    assert state.user(ids["fin.alice"])["email"] == "fin.alice@acme.example"
    bob = state.get_mfa(ids["fin.bob"])
    assert bob["applicationMfa"] == [{"mfaPolicy": "EMAIL", "status": 1, "sort": 0}]
    assert bob["mfaEmail"] == "fin.bob@acme.example"
    assert state.mfa_info(ids["fin.frank"])["smsMfaStatus"] == "enabled"
    assert state.get_mfa(ids["fin.frank"])["mfaPhone"] == state.user(ids["fin.frank"])["phone"]
