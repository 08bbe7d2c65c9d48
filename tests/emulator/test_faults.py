"""Fault injection: each kind answers as GenAuth (or the network in front of it) would when failing, for the
number of requests asked, on the path asked; and stopping the server is an outage on the same port."""

from __future__ import annotations

import time

import pytest
import requests

from genauth_emulator import EmulatorServer
from tests.support.emulator import Api


def test_status_429_is_a_business_error_inside_http_200(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """status_429 answers HTTP 200 with statusCode 429 (ThrottleError), then the next call is normal."""
    api.bearer()
    server.faults.add("status_429", path="get-user")
    throttled = api.get("get-user", {"userId": ids["fin.alice"]})
    assert throttled.status_code == 200
    assert throttled.json()["statusCode"] == 429
    assert throttled.json()["message"]
    assert api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] == 200


def test_status_500_is_a_business_error_inside_http_200(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """status_500 answers HTTP 200 with statusCode 500."""
    api.bearer()
    server.faults.add("status_500")
    answer = api.get("get-mfa-status", {"userId": ids["fin.alice"]})
    assert (answer.status_code, answer.json()["statusCode"]) == (200, 500)


def test_http_429_carries_retry_after(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """http_429 is a real HTTP 429 with the Retry-After given, and a throttle body."""
    api.bearer()
    server.faults.add("http_429", retry_after=7)
    answer = api.get("get-user", {"userId": ids["fin.alice"]})
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["statusCode"] == 429


def test_http_429_without_retry_after_sends_no_header(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """http_429 without retry_after has no Retry-After header."""
    api.bearer()
    server.faults.add("http_429")
    answer = api.get("get-user", {"userId": ids["fin.alice"]})
    assert answer.status_code == 429
    assert "Retry-After" not in answer.headers


def test_http_500_and_503_are_real_http_errors(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """http_500 is HTTP 500 with a JSON body; http_503 is HTTP 503 with a gateway's HTML page, not JSON."""
    api.bearer()
    server.faults.add("http_500")
    server.faults.add("http_503")
    first = api.get("get-user", {"userId": ids["fin.alice"]})
    second = api.get("get-user", {"userId": ids["fin.alice"]})
    assert (first.status_code, first.json()["statusCode"]) == (500, 500)
    assert second.status_code == 503
    assert second.headers["Content-Type"].startswith("text/html")
    assert "503" in second.text


def test_drop_write_answers_success_and_stores_nothing(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """drop_write on set-mfa-status answers {success: true} but the stored MFA data does not change."""
    api.bearer()
    before = server.state.get_mfa(ids["fin.alice"])
    server.faults.add("drop_write", path="set-mfa-status")
    body = {
        "userId": ids["fin.alice"],
        "mfaTriggerData": {**before, "applicationMfa": [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]},
    }
    answer = api.post("set-mfa-status", body)
    assert (answer.status_code, answer.json()["statusCode"], answer.json()["data"]) == (200, 200, {"success": True})
    assert server.state.get_mfa(ids["fin.alice"]) == before
    assert api.post("set-mfa-status", body).json()["statusCode"] == 200
    assert server.state.get_mfa(ids["fin.alice"])["applicationMfa"] == [{"mfaPolicy": "OTP", "status": 1, "sort": 0}]


def test_null_data_answers_success_with_no_data(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """null_data answers statusCode 200 with data null, once; the next read has the user's data again."""
    api.bearer()
    server.faults.add("null_data", path="get-mfa-status")
    empty = api.get("get-mfa-status", {"userId": ids["fin.bob"]}).json()
    assert (empty["statusCode"], empty["data"]) == (200, None)
    assert api.data("get-mfa-status", {"userId": ids["fin.bob"]})["mfaToken"]


def test_disconnect_closes_the_connection_without_a_response(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """disconnect makes the client see a connection error; the journal records no status for it."""
    api.bearer()
    server.faults.add("disconnect", path="/api/v3/set-mfa-status")
    body = {"userId": ids["fin.alice"], "mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}
    with pytest.raises(requests.ConnectionError):
        api.post("set-mfa-status", body)
    (entry,) = server.journal.entries("/api/v3/set-mfa-status")
    assert (entry.http_status, entry.status_code) == (None, None)
    assert api.post("set-mfa-status", body).json()["statusCode"] == 200


def test_latency_fault_delays_then_answers_normally(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """A latency fault waits the seconds given, then answers normally; the next call is not delayed."""
    api.bearer()
    server.faults.add("latency", seconds=0.3)
    started = time.monotonic()
    slow = api.get("get-user", {"userId": ids["fin.alice"]})
    slow_elapsed = time.monotonic() - started
    started = time.monotonic()
    api.get("get-user", {"userId": ids["fin.alice"]})
    fast_elapsed = time.monotonic() - started
    assert slow.json()["statusCode"] == 200
    assert slow_elapsed >= 0.3
    assert fast_elapsed < 0.25


def test_default_latency_applies_to_every_api_request(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """Faults.latency delays every management API request until reset."""
    api.bearer()
    server.faults.latency = 0.15
    started = time.monotonic()
    api.get("get-user", {"userId": ids["fin.alice"]})
    api.get("get-user", {"userId": ids["fin.alice"]})
    assert time.monotonic() - started >= 0.3
    server.faults.clear()
    assert server.faults.latency == 0.0


def test_faults_fire_the_number_of_times_asked(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """times=2 fires twice; times=None fires until clear()."""
    api.bearer()
    server.faults.add("status_500", times=2)
    codes = [api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] for _ in range(3)]
    assert codes == [500, 500, 200]
    server.faults.add("status_429", times=None)
    codes = [api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] for _ in range(4)]
    assert codes == [429] * 4
    server.faults.clear()
    assert api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] == 200


def test_faults_only_hit_their_path(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """A fault for set-mfa-status leaves other endpoints alone and waits for its own path."""
    api.bearer()
    server.faults.add("status_500", path="set-mfa-status")
    assert api.get("get-mfa-status", {"userId": ids["fin.alice"]}).json()["statusCode"] == 200
    body = {"userId": ids["fin.alice"], "mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}
    assert api.post("set-mfa-status", body).json()["statusCode"] == 500
    assert server.faults.pending() == []


def test_faults_without_a_path_also_hit_the_token_endpoint(api: Api, server: EmulatorServer) -> None:
    """A path-less fault applies to get-management-token too, as GenAuth throttles every endpoint."""
    server.faults.add("status_429")
    assert api.token().json()["statusCode"] == 429


def test_bad_fault_specifications_are_rejected(server: EmulatorServer) -> None:
    """Unknown kinds, zero times and latency without seconds raise ValueError."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        server.faults.add("status_418")
    with pytest.raises(ValueError, match="times"):
        server.faults.add("status_500", times=0)
    with pytest.raises(ValueError, match="seconds"):
        server.faults.add("latency")


def test_stopping_is_an_outage_and_starting_again_reuses_the_port(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """While stopped, clients get connection refused; start() rebinds the same URL with the same state."""
    url = server.url
    api.bearer()
    server.stop()
    assert not server.is_running
    with pytest.raises(requests.ConnectionError):
        api.get("get-user", {"userId": ids["fin.alice"]})
    server.start()
    assert server.url == url
    assert api.get("get-user", {"userId": ids["fin.alice"]}).json()["data"]["username"] == "fin.alice"


def test_start_and_stop_are_idempotent(server: EmulatorServer) -> None:
    """Starting a running server and stopping a stopped one do nothing."""
    url = server.url
    assert server.start() is server
    assert server.url == url
    server.stop()
    server.stop()
    assert not server.is_running
