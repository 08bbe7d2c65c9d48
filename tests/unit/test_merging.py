"""Read-merge-write of MFA trigger data: add what policy requires, keep everything else."""

import copy
from dataclasses import replace

import pytest

from service.enforcement.errors import UnmergeableMfaDataError
from service.enforcement.merging import (
    check_write,
    enabled_factors,
    merge_factors,
    restoration,
)
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


def test_entries_that_are_not_objects_are_sent_back_exactly_as_read():
    """applicationMfa entries the service cannot interpret (text, numbers, null) stay in place, in order."""
    odd = ["legacy", 7, None, {"mfaPolicy": "EMAIL", "status": 1, "sort": 0}]
    result = merge_factors(stored(applicationMfa=copy.deepcopy(odd)), ("OTP",), FACTS)
    assert result.trigger_data["applicationMfa"] == [*odd, {"mfaPolicy": "OTP", "status": 1, "sort": 1}]


def test_application_mfa_of_an_unknown_shape_is_never_written_over():
    """An applicationMfa that is neither a list nor an object cannot be kept while adding: the merge refuses."""
    with pytest.raises(UnmergeableMfaDataError, match="not a list"):
        merge_factors(stored(applicationMfa="SMS,EMAIL"), ("OTP",), FACTS)


@pytest.mark.parametrize("value", [13900000000, {"number": "13900000000"}, ["13900000000"], True])
def test_a_stored_mfa_phone_of_any_type_is_never_overwritten(value):
    """A non-empty mfaPhone that is not text is still the user's MFA phone: it is kept, and SMS is not
    enabled on top of a value nobody can check."""
    result = merge_factors(stored(mfaPhone=value), ("SMS",), FACTS)
    assert result.trigger_data["mfaPhone"] == value
    assert not result.is_changed and "SMS" in result.unsatisfiable


@pytest.mark.parametrize("value", [42, {"address": "x@example.com"}])
def test_a_stored_mfa_email_of_any_type_is_never_overwritten(value):
    """Likewise for mfaEmail."""
    result = merge_factors(stored(mfaEmail=value, applicationMfa=[]), ("EMAIL",), FACTS)
    assert result.trigger_data["mfaEmail"] == value
    assert not result.is_changed


@pytest.mark.parametrize(
    ("facts", "factor", "why"),
    [
        (replace(FACTS, phone_verified=False), "SMS", "phone not verified"),
        (replace(FACTS, phone_country_code=None), "SMS", "phone number is not well-formed"),
        (replace(FACTS, phone="call me", phone_country_code="+86"), "SMS", "phone number is not well-formed"),
        (replace(FACTS, email_verified=False), "EMAIL", "email address not verified"),
        (replace(FACTS, email="li.na"), "EMAIL", "email address is not well-formed"),
        (replace(FACTS, email="li.na@localhost"), "EMAIL", "email address is not well-formed"),
    ],
    ids=["unverified-phone", "no-country-code", "garbage-phone", "unverified-email", "no-domain", "bare-host"],
)
def test_unverified_or_malformed_contacts_are_never_bound(facts, factor, why):
    """SMS and EMAIL bind only a verified, well-formed profile contact; otherwise nothing is written."""
    current = stored(mfaEmail=None, applicationMfa=[])
    result = merge_factors(current, (factor,), facts)
    assert not result.is_changed and result.trigger_data == current
    assert result.unsatisfiable[factor].startswith(why)


def test_a_verified_e164_phone_needs_no_country_code():
    """A profile phone in E.164 form is well-formed on its own and is bound as it is."""
    facts = replace(FACTS, phone="+8613800138000", phone_country_code=None, phone_verified=True)
    result = merge_factors(stored(), ("SMS",), facts)
    assert result.added == ("SMS",) and result.trigger_data["mfaPhone"] == "+8613800138000"


def test_a_verification_flag_genauth_did_not_send_does_not_block():
    """phoneVerified missing (None) is not "unverified": the contact counts when it is well-formed."""
    assert merge_factors(stored(), ("SMS",), replace(FACTS, phone_verified=None)).added == ("SMS",)


def test_check_write_finds_missing_factors_and_what_others_lost():
    """Read back after a write: factors written but not there are missing; factors and fields that were there
    before (not the service's) and are gone are lost."""
    read = stored(applicationMfa=[{"mfaPolicy": "OTP", "status": 1, "sort": 0}])
    written = merge_factors(read, ("SMS",), FACTS).trigger_data
    assert check_write(read, written, copy.deepcopy(written)).is_kept
    dropped = check_write(read, written, copy.deepcopy(read))
    assert (dropped.missing, dropped.lost) == (("SMS", "mfaPhone", "mfaPhoneCountryCode"), ())
    stale = stored(mfaToken=None, applicationMfa=[])
    clobbered = check_write(read, written, stale)
    assert clobbered.lost == ("OTP", "mfaToken") and "SMS" in clobbered.missing
    renewed = check_write(read, written, {**copy.deepcopy(written), "mfaToken": "tok-new"})
    assert renewed.is_kept, "a token someone changed is their choice, not a loss"


def test_restoration_puts_back_what_was_lost_and_keeps_what_is_new():
    """Lost entries come back as they were read; a new token and a factor someone added stay."""
    read = stored(applicationMfa=[{"mfaPolicy": "OTP", "status": 1, "sort": 4}])
    now = stored(mfaToken=None, mfaEmail="new@example.com", applicationMfa=[{"mfaPolicy": "FACE", "status": 1}])
    restored = restoration(read, now, ("OTP", "mfaToken"))
    assert restored["mfaToken"] == "tok-123" and restored["mfaEmail"] == "new@example.com"
    assert restored["applicationMfa"] == [
        {"mfaPolicy": "FACE", "status": 1},
        {"mfaPolicy": "OTP", "status": 1, "sort": 4},
    ]
    assert now["mfaToken"] is None, "the input must not be modified"
