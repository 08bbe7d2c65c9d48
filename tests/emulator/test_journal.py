"""The journal and the /_emulator control API: what gets recorded (redacted), waiting for requests without
sleeping, and driving faults and settings over HTTP as another process would."""

from __future__ import annotations

import threading

import pytest

from genauth_emulator import EmulatorServer, Journal
from genauth_emulator.journal import Entry
from tests.support.emulator import Api


def _entry(path: str) -> Entry:
    return Entry("GET", path, {}, None, {}, 200, 200, 0.0)


def test_entries_record_method_path_query_body_and_statuses(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """Each API call is recorded with its query (lists), JSON body, business and HTTP status."""
    api.get("get-user", {"userId": ids["fin.alice"], "withCustomData": "true"})
    api.post("set-mfa-status", {"userId": ids["fin.alice"]})
    get_user = server.journal.entries("/api/v3/get-user")[-1]
    assert (get_user.method, get_user.query, get_user.body) == (
        "GET",
        {"userId": [ids["fin.alice"]], "withCustomData": ["true"]},
        None,
    )
    assert (get_user.status_code, get_user.http_status) == (200, 200)
    bad_set = server.journal.entries("/api/v3/set-mfa-status")[-1]
    assert bad_set.body == {"userId": ids["fin.alice"]}
    assert (bad_set.status_code, bad_set.http_status) == (400, 200)
    assert bad_set["status_code"] == 400
    assert server.journal.count("/api/v3/get-management-token") == 1
    assert server.journal.count() == 3


def test_headers_are_lower_cased_and_the_token_redacted(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """Header names are lower-case and authorization shows only its scheme."""
    api.get("get-user", {"userId": ids["fin.alice"]}, headers={**api.bearer(), "X-Authing-Lang": "en-US"})
    headers = server.journal.entries("/api/v3/get-user")[-1].headers
    assert headers["authorization"] == "Bearer <redacted>"
    assert headers["x-authing-lang"] == "en-US"
    assert all(name == name.lower() for name in headers)


def test_wait_for_returns_once_a_matching_request_arrives(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """wait_for blocks until another thread's request is recorded, then returns the matches."""
    api.bearer()
    caller = threading.Thread(target=api.get, args=("get-mfa-status", {"userId": ids["fin.bob"]}))
    caller.start()
    (entry,) = server.journal.wait_for(lambda e: e.path == "/api/v3/get-mfa-status", timeout=5)
    caller.join()
    assert entry.query == {"userId": [ids["fin.bob"]]}


def test_wait_for_accepts_a_path_and_a_count() -> None:
    """A string predicate means "this path"; count waits for that many matches."""
    journal = Journal()
    for _ in range(2):
        journal.record(_entry("/api/v3/get-user"))
    assert len(journal.wait_for("/api/v3/get-user", timeout=0.1, count=2)) == 2


def test_wait_for_times_out_with_a_useful_message() -> None:
    """On timeout wait_for raises AssertionError naming what it waited for and what it saw."""
    journal = Journal()
    journal.record(_entry("/api/v3/get-user"))
    with pytest.raises(AssertionError, match=r"set-mfa-status.*found 0.*GET /api/v3/get-user -> 200/200"):
        journal.wait_for("/api/v3/set-mfa-status", timeout=0.05)


def test_clear_empties_the_journal(api: Api, server: EmulatorServer) -> None:
    """clear() forgets every entry."""
    api.bearer()
    server.journal.clear()
    assert server.journal.entries() == []


def test_control_api_reads_and_clears_the_journal(api: Api, server: EmulatorServer) -> None:
    """GET /_emulator/journal lists entries (optionally by path); DELETE empties it."""
    api.bearer()
    listed = api.session.get(
        f"{server.url}/_emulator/journal", params={"path": "/api/v3/get-management-token"}, timeout=5
    )
    (entry,) = listed.json()["entries"]
    assert entry["body"]["accessKeySecret"] == "<redacted>"
    assert api.session.delete(f"{server.url}/_emulator/journal", timeout=5).status_code == 200
    assert server.journal.entries() == []


def test_control_api_queues_and_clears_faults(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """POST /_emulator/faults queues a fault (times null = until cleared); DELETE clears; bad specs are 400."""
    api.bearer()
    control = f"{server.url}/_emulator/faults"
    created = api.session.post(
        control, json={"kind": "http_429", "path": "get-user", "retry_after": 3, "times": None}, timeout=5
    )
    assert created.status_code == 201
    assert created.json()["fault"]["remaining"] is None
    assert api.get("get-user", {"userId": ids["fin.alice"]}).headers["Retry-After"] == "3"
    assert api.session.get(control, timeout=5).json()["faults"][0]["kind"] == "http_429"
    api.session.delete(control, timeout=5)
    assert api.get("get-user", {"userId": ids["fin.alice"]}).status_code == 200
    assert api.session.post(control, json={"kind": "meteor"}, timeout=5).status_code == 400
    assert api.session.post(control, json=["status_429"], timeout=5).status_code == 400


def test_control_api_lists_users_with_departments_and_mfa(
    api: Api, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """GET /_emulator/users shows every user with department codes and current MFA."""
    users = {
        user["username"]: user for user in api.session.get(f"{server.url}/_emulator/users", timeout=5).json()["users"]
    }
    assert set(users) == set(ids)
    assert [d["code"] for d in users["fin.bob"]["departments"]] == ["finance-payroll"]
    assert users["fin.bob"]["mfa"]["applicationMfa"][0]["mfaPolicy"] == "EMAIL"
    assert users["new.erin"]["departments"] == []


def test_control_api_changes_settings_and_tokens(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """POST /_emulator/settings changes set mode, token lifetime and latency; token endpoints revoke/expire."""
    settings = api.session.post(
        f"{server.url}/_emulator/settings", json={"setMode": "merge", "tokenLifetime": 30}, timeout=5
    )
    assert settings.json()["setMode"] == "merge" and server.state.token_lifetime == 30
    assert (
        api.session.post(f"{server.url}/_emulator/settings", json={"setMode": "append"}, timeout=5).status_code == 400
    )
    api.bearer()
    api.session.post(f"{server.url}/_emulator/tokens/revoke", timeout=5)
    assert api.get("get-user", {"userId": ids["fin.alice"]}).json()["statusCode"] == 401
    info = api.session.get(f"{server.url}/_emulator/info", timeout=5).json()
    assert info["userpoolId"] == server.state.userpool_id
