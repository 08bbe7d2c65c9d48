"""The event WebSocket's wire facts (``service.genauth.events``): the handshake header the emulator's signature
check accepts for either brand, the subscription URL, and how a refused handshake is typed."""

from __future__ import annotations

import json

import pytest

from genauth_emulator.state import EmulatorState
from service.genauth.errors import GenAuthAuthenticationError, GenAuthUnavailableError
from service.genauth.events import authorization, handshake_error, subscription_url
from service.settings import EVENT_BRANDS


@pytest.mark.parametrize("brand", EVENT_BRANDS)
def test_the_authorization_header_is_the_one_genauth_checks(brand):
    """`<brand> <AK>:<base64 HMAC-SHA1(SK, "websocket\\n")>` passes the emulator's check; another secret does not."""
    state = EmulatorState()
    good = authorization(brand, state.access_key_id, state.access_key_secret)
    assert state.socket_authorization_matches(good)
    assert not state.socket_authorization_matches(authorization(brand, state.access_key_id, "another-secret"))


def test_the_subscription_url_names_the_code_on_the_events_path():
    """The code goes in the query as it is (dots kept), the base's trailing slash does not double."""
    url = subscription_url("wss://events.genauth.ai/", "authing.user.created")
    assert url == "wss://events.genauth.ai/events/v1/management/sub?code=authing.user.created"


def test_a_refused_handshake_is_a_refused_key_and_anything_else_is_temporary():
    """401 or apiCode 1300 means the key (no reconnect fixes it); a 502 is waited out like an outage."""
    refused = handshake_error("c", 401, json.dumps({"statusCode": 401, "apiCode": 1300, "message": "bad"}).encode())
    assert isinstance(refused, GenAuthAuthenticationError) and refused.api_code == 1300
    assert isinstance(handshake_error("c", 502, b"<html>"), GenAuthUnavailableError)
