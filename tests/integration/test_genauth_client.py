"""The GenAuth client against the emulator: tokens, envelopes, and every failure mapped to a typed error."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from service.genauth import users
from service.genauth.client import GenAuthClient, parse_retry_after, scoped_userpool_id
from service.genauth.errors import (
    GenAuthAuthenticationError,
    GenAuthRateLimitedError,
    GenAuthRequestError,
    GenAuthUnavailableError,
    GenAuthUserNotFoundError,
)
from service.settings import GenAuthSettings

TOKEN_PATH = "/api/v3/get-management-token"


@pytest.fixture
def genauth_settings(emulator):
    return GenAuthSettings(
        host=emulator.url,
        access_key_id=emulator.state.access_key_id,
        access_key_secret=emulator.state.access_key_secret,
        connect_timeout=1.0,
        read_timeout=1.0,
    )


@pytest.fixture
def client(genauth_settings):
    made = GenAuthClient(genauth_settings)
    yield made
    made.close()


def test_reads_user_departments_with_paths_and_mfa_status(client, emulator):
    """get-user, get-user-departments (with ancestors) and get-mfa-status return GenAuth's data."""
    bob = emulator.users["fin.bob"]
    assert users.get_user(client, bob)["userId"] == bob
    departments = users.list_user_departments(client, bob)
    assert [d["code"] for d in departments] == ["finance-payroll"]
    assert "finance" in departments[0]["departmentCodePath"]
    status = users.get_mfa_status(client, bob)
    assert status["mfaToken"] == emulator.state.get_mfa(bob)["mfaToken"]


def test_token_is_fetched_once_and_sent_with_the_pool_header(client, emulator):
    """Several calls share one management token; each carries the bearer token and the pool id."""
    alice = emulator.users["fin.alice"]
    for _ in range(3):
        users.get_user(client, alice)
    assert emulator.journal.count(TOKEN_PATH) == 1
    entry = emulator.journal.entries("/api/v3/get-user")[-1]
    assert entry.headers["authorization"].startswith("Bearer ")
    assert entry.headers["x-genauth-userpool-id"] == emulator.state.userpool_id


def test_revoked_token_is_renewed_once_and_the_call_succeeds(client, emulator):
    """After GenAuth revokes tokens, the next call gets 401, fetches a new token and retries."""
    alice = emulator.users["fin.alice"]
    users.get_user(client, alice)
    emulator.state.revoke_tokens()
    assert users.get_user(client, alice)["userId"] == alice
    assert emulator.journal.count(TOKEN_PATH) == 2


def test_token_is_renewed_before_it_expires(genauth_settings, emulator):
    """A token close to expiry is replaced before use, without waiting for a 401."""
    now = [1000.0]
    client = GenAuthClient(replace(genauth_settings, token_refresh_margin=300), clock=lambda: now[0])
    try:
        users.get_user(client, emulator.users["fin.alice"])
        now[0] += 7200 - 299
        users.get_user(client, emulator.users["fin.alice"])
        assert emulator.journal.count(TOKEN_PATH) == 2
    finally:
        client.close()


def test_wrong_credentials_are_an_authentication_error(genauth_settings, emulator):
    """A refused access key raises GenAuthAuthenticationError naming the endpoint, not the secret."""
    client = GenAuthClient(replace(genauth_settings, access_key_secret="definitely-wrong-secret"))
    try:
        with pytest.raises(GenAuthAuthenticationError) as caught:
            users.get_user(client, emulator.users["fin.alice"])
        assert "get-management-token" in str(caught.value)
        assert "definitely-wrong-secret" not in str(caught.value)
    finally:
        client.close()


def test_unknown_user_is_user_not_found(client):
    """statusCode 404 / apiCode 2004 raises the permanent GenAuthUserNotFoundError."""
    with pytest.raises(GenAuthUserNotFoundError) as caught:
        users.get_user(client, "000000000000000000000000")
    assert caught.value.api_code == 2004


def test_invalid_set_mfa_status_is_a_request_error(client, emulator):
    """A body GenAuth refuses (statusCode 400) raises the permanent GenAuthRequestError."""
    with pytest.raises(GenAuthRequestError) as caught:
        users.set_mfa_status(client, emulator.users["fin.alice"], {"applicationMfa": "not-a-list"})
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [
        ("status_429", GenAuthRateLimitedError),
        ("http_429", GenAuthRateLimitedError),
        ("status_500", GenAuthUnavailableError),
        ("http_500", GenAuthUnavailableError),
        ("http_503", GenAuthUnavailableError),
        ("disconnect", GenAuthUnavailableError),
    ],
)
def test_faults_are_temporary_errors(client, emulator, kind, error_type):
    """Throttling, server errors and dropped connections are temporary, so the work is retried."""
    alice = emulator.users["fin.alice"]
    users.get_user(client, alice)
    emulator.faults.add(kind, path="/api/v3/get-user", times=1)
    with pytest.raises(error_type):
        users.get_user(client, alice)
    assert users.get_user(client, alice)["userId"] == alice


def test_http_429_retry_after_is_reported(client, emulator):
    """Retry-After from an HTTP 429 reaches the error so the worker can honour it."""
    users.get_user(client, emulator.users["fin.alice"])
    emulator.faults.add("http_429", path="/api/v3/get-user", times=1, retry_after=7)
    with pytest.raises(GenAuthRateLimitedError) as caught:
        users.get_user(client, emulator.users["fin.alice"])
    assert caught.value.retry_after == 7.0


def test_slow_answers_time_out(client, emulator):
    """A response slower than the read timeout raises a temporary error within about that time."""
    users.get_user(client, emulator.users["fin.alice"])
    emulator.faults.add("latency", path="/api/v3/get-user", times=1, seconds=3)
    started = time.monotonic()
    with pytest.raises(GenAuthUnavailableError, match="timed out"):
        users.get_user(client, emulator.users["fin.alice"])
    assert time.monotonic() - started < 2.5


def test_outage_is_temporary_and_recovery_works(client, emulator):
    """With GenAuth down (connection refused) calls fail temporarily; once it is back they succeed."""
    alice = emulator.users["fin.alice"]
    users.get_user(client, alice)
    emulator.stop()
    with pytest.raises(GenAuthUnavailableError):
        users.get_user(client, alice)
    emulator.start()
    assert users.get_user(client, alice)["userId"] == alice


def test_retry_after_parses_seconds_and_dates():
    """Retry-After as delta-seconds or an HTTP date becomes seconds; garbage is ignored."""
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= parse_retry_after(future) <= 61


def test_scoped_userpool_id_reads_the_claim_and_tolerates_garbage():
    """The pool id claim is read from a JWT payload; malformed tokens give None."""
    assert scoped_userpool_id("a.eyJzY29wZWRfdXNlcnBvb2xfaWQiOiAicDEifQ.c") == "p1"
    assert scoped_userpool_id("not-a-jwt") is None
    assert scoped_userpool_id("a.!!!.c") is None


def test_a_missing_department_is_not_mistaken_for_a_deleted_user(client):
    """statusCode 404 from a department endpoint is GenAuthNotFoundError, never GenAuthUserNotFoundError."""
    from service.genauth.errors import GenAuthNotFoundError

    params = {"organizationCode": "acme", "departmentId": "no-such-department", "departmentIdType": "code"}
    with pytest.raises(GenAuthNotFoundError) as caught:
        client.call("GET", "/api/v3/get-department", params=params)
    assert not isinstance(caught.value, GenAuthUserNotFoundError)


def test_user_departments_are_paged_oldest_membership_first(client, emulator):
    """get-user-departments is asked for an explicit order (JoinDepartmentAt, Asc), not GenAuth's default."""
    bob = emulator.users["fin.bob"]
    emulator.state.add_member(bob, "engineering")
    emulator.state.add_member(bob, "finance")
    departments = users.list_user_departments(client, bob)
    assert [d["code"] for d in departments] == ["finance-payroll", "engineering", "finance"]
    query = emulator.journal.entries("/api/v3/get-user-departments")[-1].query
    assert query["sortBy"] == ["JoinDepartmentAt"] and query["orderBy"] == ["Asc"]
