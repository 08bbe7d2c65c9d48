"""The webhook shared-secret check."""

from service.intake.authentication import SECRET_HEADERS, is_authentic, presented_secrets


def test_each_documented_header_spelling_carries_the_secret():
    """x-authing-webhook-secret, x-authing-token and x-genauth-token are each accepted alone."""
    for header in SECRET_HEADERS:
        assert is_authentic({header: "s3cret"}, ["s3cret"]), header


def test_any_of_several_secrets_is_accepted_during_rotation():
    """With the new and the old secret configured, both authenticate and a third does not."""
    secrets = ["new-secret", "old-secret"]
    assert is_authentic({"x-authing-token": "old-secret"}, secrets)
    assert is_authentic({"x-authing-token": "new-secret"}, secrets)
    assert not is_authentic({"x-authing-token": "other"}, secrets)


def test_missing_wrong_or_empty_secret_is_refused():
    """No header, a wrong value, an empty value, or no configured secret never authenticates."""
    assert not is_authentic({}, ["s3cret"])
    assert not is_authentic({"x-authing-token": "s3cre"}, ["s3cret"])
    assert not is_authentic({"x-authing-token": ""}, ["s3cret"])
    assert not is_authentic({"x-authing-token": "s3cret"}, [])
    assert not is_authentic({"x-authing-token": ""}, [""])


def test_one_right_header_among_wrong_ones_authenticates():
    """GenAuth may send two headers; one of them matching is enough."""
    assert is_authentic({"x-authing-webhook-secret": "wrong", "x-authing-token": "s3cret"}, ["s3cret"])


def test_non_ascii_header_values_are_compared_without_error():
    """A header with characters outside ASCII is simply not a match."""
    assert presented_secrets({"x-genauth-token": "sécret"}) == ["sécret"]
    assert not is_authentic({"x-genauth-token": "sécret"}, ["secret"])
