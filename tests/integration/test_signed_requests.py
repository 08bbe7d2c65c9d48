"""`GENAUTH_AUTH=signature` against the emulator, whose verifier was written separately (genauth_emulator/
signatures.py): every call signed, never a `get-management-token`, a user enforced, and a refused signature
the same refused-key error a refused token is, with what the apiCode means (the clock, for 1305)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.enforcement.merging import enabled_factors
from service.genauth import users
from service.genauth.access import REFUSED, check_access, failure_line
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthAuthenticationError
from service.intake.context import EXTENSION
from service.services import Services
from service.settings import GenAuthSettings
from service.store.decisions import decisions_for_user
from tests.support.factories import enqueue

TOKEN_PATH = "/api/v3/get-management-token"
SET_MFA = "/api/v3/set-mfa-status"


@pytest.fixture
def signed_settings(emulator):
    return GenAuthSettings(
        host=emulator.url,
        access_key_id=emulator.state.access_key_id,
        access_key_secret=emulator.state.access_key_secret,
        auth="signature",
        connect_timeout=2.0,
        read_timeout=2.0,
    )


@pytest.fixture
def make_client(signed_settings):
    made = []

    def make(**changes):
        wall_clock = changes.pop("wall_clock", None)
        extra = {"wall_clock": wall_clock} if wall_clock else {}
        client = GenAuthClient(replace(signed_settings, **changes), **extra)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_every_call_is_signed_and_no_token_is_ever_asked_for(make_client, emulator):
    """Reads (a paged listing too), concurrent reads and a write: each accepted with its own signature."""
    client = make_client()
    bob = emulator.users["fin.bob"]
    assert users.get_user(client, bob)["userId"] == bob
    assert [d["code"] for d in users.list_user_departments(client, bob)] == ["finance-payroll"]
    reads = client.concurrently(lambda: users.get_mfa_status(client, bob), lambda: users.list_user_groups(client, bob))
    status, groups = (read.result() for read in reads)
    assert status["mfaToken"] == emulator.state.get_mfa(bob)["mfaToken"] and isinstance(groups, list)
    users.set_mfa_status(client, bob, {**status, "mfaPhone": None})
    assert emulator.journal.count(TOKEN_PATH) == 0
    entries = emulator.journal.entries()
    assert len(entries) == client.calls == 5 and all(entry.status_code == 200 for entry in entries), entries
    for entry in entries:
        assert entry.headers["authorization"] == "authing <redacted>"
        assert entry.headers["date"].isdigit() and len(entry.headers["x-authing-signature-nonce"]) == 32
        assert not any(name.startswith("x-genauth-") for name in entry.headers), entry.headers
    assert len({entry.headers["x-authing-signature-nonce"] for entry in entries}) == 5


def test_top_level_nulls_are_left_out_of_a_signed_body(make_client, emulator):
    """What the SDKs would sign differently is never sent; nested nulls stay (they are JSON in both)."""
    client = make_client()
    alice = emulator.users["fin.alice"]
    stored = emulator.state.get_mfa(alice)
    client.call("POST", SET_MFA, json_body={"userId": alice, "userIdType": None, "mfaTriggerData": stored})
    [entry] = emulator.journal.entries(SET_MFA)
    assert entry.status_code == 200 and "userIdType" not in entry.body


def test_a_signed_worker_enforces_a_finance_user(app, settings, engine, emulator):
    """The whole path on signatures: SMS enforced for a Finance user, and no token fetched."""
    signed = replace(settings, genauth=replace(settings.genauth, auth="signature"))
    worker = Services(signed, engine).worker(app.extensions[EXTENSION].policies.current)
    alice = emulator.users["fin.alice"]
    try:
        enqueue(engine, alice)
        worker.run_until_idle()
    finally:
        worker.reconciler.client.close()
    [decision] = decisions_for_user(engine, alice)
    assert (decision["action"], decision["after"]) == ("enforced", ["SMS"]), decision
    assert "SMS" in enabled_factors(emulator.state.get_mfa(alice))
    assert emulator.journal.count(SET_MFA) == 1 and emulator.journal.count(TOKEN_PATH) == 0


def test_a_wrong_secret_is_a_refused_key_naming_the_api_code(make_client, emulator):
    """apiCode 1300 is GenAuthAuthenticationError, as a refused token is; the line names the key, not the secret."""
    client = make_client(access_key_secret="definitely-wrong-secret")
    with pytest.raises(GenAuthAuthenticationError) as caught:
        users.get_user(client, emulator.users["fin.alice"])
    assert caught.value.api_code == 1300
    message = str(caught.value)
    assert "signature does not match" in message and "\n" not in message
    assert "definitely-wrong-secret" not in message
    assert client.calls == 1, "a refused signature is not retried: there is no token to renew"
    access = check_access(client)
    assert access.state == REFUSED and "GENAUTH_ACCESS_KEY_SECRET" in (access.message or "")
    assert emulator.journal.count(TOKEN_PATH) == 0


def test_a_clock_too_far_from_genauths_says_so(make_client, emulator):
    """apiCode 1305 (the date is out of GenAuth's window): a refused key whose line points at the clock."""
    client = make_client(wall_clock=lambda: emulator.state._clock() + 3600)
    with pytest.raises(GenAuthAuthenticationError) as caught:
        users.get_user(client, emulator.users["fin.alice"])
    assert caught.value.api_code == 1305
    line = failure_line(caught.value)
    assert line is not None and "clock" in line and "GENAUTH_ACCESS_KEY" not in line
    access = check_access(client)
    assert access.state == REFUSED and "clock" in (access.message or "")
