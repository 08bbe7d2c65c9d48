"""Read-merge-write of MFA trigger data: add what policy requires, keep everything else."""

import copy

from service.enforcement.merging import enabled_factors, merge_factors
from service.policy.facts import UserFacts

FACTS = UserFacts(user_id="u1", email="li.na@example.com", phone="13800138000", phone_country_code="+86")


def stored(**overrides):
    data = {
        "mfaToken": "tok-123",
        "mfaPhone": None,
        "mfaPhoneCountryCode": None,
        "mfaEmail": "li.na@example.com",
        "nickname": None,
        "username": "li.na",
        "phone": None,
        "phoneCountryCode": None,
        "faceMfaEnabled": False,
        "totpMfaEnabled": False,
        "applicationMfa": [{"mfaPolicy": "EMAIL", "status": 1, "sort": 0}],
    }
    data.update(overrides)
    return data


def test_missing_factor_is_added_and_everything_else_kept():
    """SMS is appended with status 1; the EMAIL factor, mfaToken and other fields are unchanged."""
    current = stored()
    snapshot = copy.deepcopy(current)
    result = merge_factors(current, ("SMS",), FACTS)
    assert current == snapshot, "the input must not be modified"
    assert result.is_changed and result.added == ("SMS",)
    assert result.trigger_data["applicationMfa"] == [
        {"mfaPolicy": "EMAIL", "status": 1, "sort": 0},
        {"mfaPolicy": "SMS", "status": 1, "sort": 1},
    ]
    assert result.trigger_data["mfaPhone"] == "13800138000"
    assert result.trigger_data["mfaPhoneCountryCode"] == "+86"
    unchanged = {
        k: v for k, v in result.trigger_data.items() if k not in ("applicationMfa", "mfaPhone", "mfaPhoneCountryCode")
    }
    assert unchanged == {
        k: v for k, v in snapshot.items() if k not in ("applicationMfa", "mfaPhone", "mfaPhoneCountryCode")
    }
    assert (result.before, result.after) == (("EMAIL",), ("SMS", "EMAIL"))


def test_compliant_user_needs_no_write():
    """A user whose SMS factor is already enabled is unchanged and the same object comes back."""
    current = stored(applicationMfa=[{"mfaPolicy": "SMS", "status": 1, "sort": 0}], mfaPhone="13800138000")
    result = merge_factors(current, ("SMS",), FACTS)
    assert not result.is_changed
    assert result.trigger_data is current


def test_disabled_factor_is_enabled_in_place():
    """A present but disabled factor gets status 1 and keeps its sort."""
    current = stored(applicationMfa=[{"mfaPolicy": "SMS", "status": 0, "sort": 3}])
    result = merge_factors(current, ("SMS",), FACTS)
    assert result.trigger_data["applicationMfa"] == [{"mfaPolicy": "SMS", "status": 1, "sort": 3}]


def test_existing_mfa_phone_is_kept():
    """An mfaPhone already bound is not overwritten by the profile phone."""
    result = merge_factors(stored(mfaPhone="13900000000"), ("SMS",), FACTS)
    assert result.trigger_data["mfaPhone"] == "13900000000"


def test_sms_without_a_phone_is_unsatisfiable_and_not_written():
    """No phone anywhere: SMS is reported unsatisfiable and nothing changes."""
    facts = UserFacts(user_id="u1", email="x@example.com", phone=None)
    result = merge_factors(stored(), ("SMS",), facts)
    assert not result.is_changed
    assert result.unsatisfiable == {"SMS": "no phone number on record"}
    assert all(entry["mfaPolicy"] != "SMS" for entry in result.trigger_data["applicationMfa"])


def test_satisfiable_factors_are_enforced_when_another_is_not():
    """With SMS impossible and OTP possible, OTP is written and SMS reported."""
    facts = UserFacts(user_id="u1", phone=None)
    result = merge_factors(stored(), ("SMS", "OTP"), facts)
    assert result.added == ("OTP",)
    assert "SMS" in result.unsatisfiable


def test_email_factor_binds_the_profile_address():
    """EMAIL binds mfaEmail from the profile when none is bound; with no address it is unsatisfiable."""
    result = merge_factors(stored(mfaEmail=None, applicationMfa=[]), ("EMAIL",), FACTS)
    assert result.trigger_data["mfaEmail"] == "li.na@example.com"
    none = merge_factors(stored(mfaEmail=None, applicationMfa=[]), ("EMAIL",), UserFacts(user_id="u1"))
    assert none.unsatisfiable == {"EMAIL": "no email address on record"}


def test_empty_or_odd_trigger_data_is_tolerated():
    """No stored data, null applicationMfa and the single-object doc artefact all merge."""
    assert merge_factors({}, ("OTP",), FACTS).trigger_data == {
        "applicationMfa": [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]
    }
    assert merge_factors({"applicationMfa": None}, ("OTP",), FACTS).added == ("OTP",)
    single = {"applicationMfa": {"mfaPolicy": "EMAIL", "status": 1}}
    assert enabled_factors(single) == ("EMAIL",)
    assert merge_factors(single, ("EMAIL",), FACTS).is_changed is False


def test_merge_never_removes_or_disables_factors():
    """Factors not required (enabled or not) are left exactly as they were."""
    current = stored(
        applicationMfa=[{"mfaPolicy": "FACE", "status": 0, "sort": 0}, {"mfaPolicy": "EMAIL", "status": 1, "sort": 1}]
    )
    result = merge_factors(current, ("OTP",), FACTS)
    assert result.trigger_data["applicationMfa"][:2] == current["applicationMfa"]
