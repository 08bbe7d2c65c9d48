"""The unmodified official Node SDK (`authing-node-sdk` from npm) works against the emulator: it signs every
request with the access key (no management token), and every endpoint the service uses, the pool and app MFA
settings and the event WebSocket answer it in the shapes its models declare.

The SDK is installed once with npm into a cache directory (`$XDG_CACHE_HOME/mfa-enforcer/node`, by default
`~/.cache/mfa-enforcer/node`) and reused; the tests are skipped with the reason when node or npm is missing or
the install fails. One node process runs every call (`node_sdk_client.js`) and prints the results as JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request

from genauth_emulator import EmulatorServer, EmulatorState, seed_sandbox
from tests.support.serving import serve_in_thread, wsgi_server

SDK = "authing-node-sdk"
SDK_VERSION = "4.0.1"
SCRIPT = Path(__file__).with_name("node_sdk_client.js")
HOOK_SECRET = "node-hook-secret"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "mfa-enforcer" / "node"


def _installed_version(prefix: Path) -> str | None:
    manifest = prefix / "node_modules" / SDK / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The SDK's node_modules directory, installed with npm on first use (under a lock: suites run in parallel)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node SDK test needs node and npm on PATH (CI installs Node as it installs promtool)")
    prefix = _cache_dir()
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(prefix) != SDK_VERSION:
            command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error"]
            result = subprocess.run(
                [*command, f"{SDK}@{SDK_VERSION}"], capture_output=True, text=True, timeout=600, check=False
            )
            if result.returncode != 0 or _installed_version(prefix) != SDK_VERSION:
                pytest.skip(f"could not install {SDK}@{SDK_VERSION} with npm: {result.stderr.strip()[-300:]}")
    return prefix / "node_modules"


@pytest.fixture(scope="module")
def hook_url() -> Iterator[str]:
    """A webhook receiver answering `{"success": true}`."""
    app = Flask("node-hook")

    @app.post("/hook")
    def hook() -> dict[str, Any]:
        return {"success": True, "got": request.headers.get("x-authing-webhook-secret") == HOOK_SECRET}

    with serve_in_thread(wsgi_server(app)) as http:
        yield f"http://127.0.0.1:{http.port}/hook"


@pytest.fixture(scope="module")
def pool() -> Iterator[tuple[EmulatorServer, dict[str, str]]]:
    """A seeded emulator on the real clock (signatures carry the SDK's real date)."""
    state = EmulatorState(access_key_secret="node-sdk-secret")
    ids = seed_sandbox(state)
    state.update_user(ids["fin.alice"], custom_data={"costCenter": "FIN-01"}, identities=["wechatwork"])
    with EmulatorServer(state) as server:
        yield server, ids


@pytest.fixture(scope="module")
def run(node_modules: Path, pool: tuple[EmulatorServer, dict[str, str]], hook_url: str) -> dict[str, Any]:
    """Every call the service makes (and the MFA settings calls), through the SDK in one node process."""
    server, ids = pool
    state = server.state
    app_id = state.applications()[0]["appId"]
    alice, bob, dave = ids["fin.alice"], ids["fin.bob"], ids["eng.dave"]
    steps: list[dict[str, Any]] = [
        {
            "name": "getUser",
            "method": "getUser",
            "args": {"userId": alice, "withCustomData": True, "withIdentities": True, "withDepartmentIds": True},
        },
        {"name": "getUserBatch", "method": "getUserBatch", "args": {"userIds": [bob, dave], "withDepartmentIds": True}},
        {
            "name": "listUsers",
            "method": "listUsers",
            "args": {
                "options": {
                    "pagination": {"page": 1, "limit": 2},
                    "sort": [{"field": "createdAt", "order": "asc"}],
                    "withDepartmentIds": True,
                    "withCustomData": True,
                    "withIdentities": True,
                }
            },
        },
        {
            "name": "getUserDepartments",
            "method": "getUserDepartments",
            "args": {"userId": bob, "withDepartmentPaths": True},
        },
        {
            "name": "listDepartmentMembers",
            "method": "listDepartmentMembers",
            "args": {
                "organizationCode": "acme",
                "departmentId": state.department_id("finance"),
                "includeChildrenDepartments": True,
                "orderBy": "Asc",
                "limit": 50,
                "withDepartmentIds": True,
                "withCustomData": True,
                "withIdentities": True,
            },
        },
        {"name": "getUserGroups", "method": "getUserGroups", "args": {"userId": bob}},
        {"name": "getUserRoles", "method": "getUserRoles", "args": {"userId": dave}},
        {"name": "listGroups", "method": "listGroups", "args": {}},
        {"name": "listGroupMembers", "method": "listGroupMembers", "args": {"code": "contractors"}},
        {"name": "getMfaStatus", "method": "getUserMfaStatus", "args": {"userId": alice}},
        {
            "name": "setMfaStatus",
            "method": "setUsersMfaStatus",
            "args": {
                "userId": alice,
                "mfaTriggerData": {
                    "mfaToken": "$getMfaStatus.data.mfaToken",
                    "mfaPhone": "13800138001",
                    "mfaPhoneCountryCode": "+86",
                    "applicationMfa": [{"mfaPolicy": "SMS", "status": 1, "sort": 0}],
                },
            },
        },
        {"name": "getMfaStatusAfter", "method": "getUserMfaStatus", "args": {"userId": alice}},
        {"name": "getUserMfaInfo", "method": "getUserMfaInfo", "args": {"userId": alice}},
        {"name": "listOrganizations", "method": "listOrganizations", "args": {}},
        {"name": "getRoot", "method": "getDepartment", "args": {"organizationCode": "acme", "departmentId": "root"}},
        {
            "name": "getDepartmentByCode",
            "method": "getDepartment",
            "args": {"organizationCode": "acme", "departmentId": "finance-payroll", "departmentIdType": "code"},
        },
        {"name": "getAllDepartments", "method": "getAllDepartments", "args": {"organizationCode": "acme"}},
        {
            "name": "searchDepartments",
            "method": "searchDepartments",
            "args": {"organizationCode": "acme", "keywords": "fin"},
        },
        {
            "name": "createWebhook",
            "method": "createWebhook",
            "args": {
                "name": "node-sdk",
                "url": hook_url,
                "contentType": "application/json",
                "enabled": True,
                "secret": HOOK_SECRET,
                "events": ["user:created", "login"],
            },
        },
        {"name": "listWebhooks", "method": "listWebhooks", "args": {}},
        {"name": "getWebhook", "method": "getWebhook", "args": {"webhookId": "$createWebhook.data.webhookId"}},
        {
            "name": "updateWebhook",
            "method": "updateWebhook",
            "args": {"webhookId": "$createWebhook.data.webhookId", "name": "node-sdk-renamed"},
        },
        {"name": "triggerWebhook", "method": "triggerWebhook", "args": {"webhookId": "$createWebhook.data.webhookId"}},
        {
            "name": "getWebhookLogs",
            "method": "getWebhookLogs",
            "args": {"webhookId": "$createWebhook.data.webhookId", "page": 1, "limit": 10},
        },
        {"name": "getWebhookEventList", "method": "getWebhookEventList"},
        {"name": "deleteWebhook", "method": "deleteWebhook", "args": {"webhookIds": ["$createWebhook.data.webhookId"]}},
        {"name": "getGlobalMfa", "method": "getGlobalMfaSettings"},
        {"name": "updateGlobalMfa", "method": "updateGlobalMfaSettings", "args": {"enabledFactors": ["SMS", "EMAIL"]}},
        {"name": "closeGlobalMfa", "method": "closeGlobalMfaSettings", "args": {"disableFactors": ["EMAIL"]}},
        {
            "name": "updateAppMfa",
            "method": "updateApplicationMfaSettings",
            "args": {"appId": app_id, "enabledFactors": ["OTP"], "disabledFactors": ["SMS"]},
        },
        {"name": "getMfaTriggerData", "method": "getMfaTriggerData", "args": {"appId": app_id, "userId": alice}},
        {"name": "getApplication", "method": "getApplication", "args": {"appId": app_id}},
        {"name": "listEvents", "method": "listEvents", "args": {}},
        {"name": "badSecret", "method": "getUser", "args": {"userId": alice}, "client": "bad"},
    ]
    plan = {
        "host": server.url,
        "socketUri": server.events_url,
        "accessKeyId": state.access_key_id,
        "accessKeySecret": state.access_key_secret,
        "steps": steps,
        "subscription": {
            "code": "authing.user.created",
            "trigger": {"url": f"{server.url}/_emulator/users", "body": {"username": "ws.walter"}},
        },
    }
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    finished = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(plan), capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert finished.returncode == 0, finished.stderr
    output: dict[str, Any] = json.loads(finished.stdout)
    return output


def ok(run: dict[str, Any], name: str) -> Any:
    """The `data` of a step that must have succeeded."""
    answer = run["results"][name]
    assert answer.get("statusCode") == 200, (name, answer)
    assert "apiCode" not in answer
    return answer.get("data")


def test_every_sdk_request_is_signed_and_accepted_without_a_token(
    run: dict[str, Any], pool: tuple[EmulatorServer, dict[str, str]]
) -> None:
    """The SDK never asks for a management token; each request carries `authing <AK>:...` and the signature
    headers; every one from the right key is answered 200."""
    server, _ = pool
    api = [entry for entry in server.journal.entries() if entry.path.startswith("/api/v3/")]
    assert not [entry for entry in api if entry.path.endswith("get-management-token")]
    signed = [entry for entry in api if entry.headers.get("authorization") == "authing <redacted>"]
    assert len(signed) == len(api) >= len(run["results"])
    for entry in signed:
        assert entry.headers["x-authing-signature-method"] == "HMAC-SHA1"
        assert entry.headers["x-authing-signature-version"] == "1.0"
        assert entry.headers["x-authing-sdk-version"] == f"{SDK}:{SDK_VERSION}"
        assert entry.headers["date"].endswith(" GMT")
    refused = [entry for entry in api if entry.status_code != 200]
    assert len(refused) == 1 and refused[0].path == "/api/v3/get-user"  # the badSecret step


def test_a_wrong_secret_is_refused_with_the_bad_signature_api_code(run: dict[str, Any]) -> None:
    """Signing with the wrong secret: statusCode 401, apiCode 1300."""
    answer = run["results"]["badSecret"]
    assert (answer["statusCode"], answer["apiCode"]) == (401, 1300)


def test_user_reads_carry_department_ids_custom_data_and_identities(
    run: dict[str, Any], pool: tuple[EmulatorServer, dict[str, str]]
) -> None:
    """get-user, get-user-batch, list-users and list-department-members honour the with* flags."""
    server, ids = pool
    finance = server.state.department_id("finance")
    user = ok(run, "getUser")
    assert user["userId"] == ids["fin.alice"] and user["departmentIds"] == [finance]
    assert user["customData"] == {"costCenter": "FIN-01"}
    [identity] = user["identities"]
    assert identity["provider"] == "wechatwork" and identity["extIdpId"] and identity["userIdInIdp"]
    assert [item["userId"] for item in ok(run, "getUserBatch")] == [ids["fin.bob"], ids["eng.dave"]]
    listed = ok(run, "listUsers")
    assert listed["totalCount"] >= 6 and [item["userId"] for item in listed["list"]] == [
        ids["fin.alice"],
        ids["fin.bob"],
    ]
    assert listed["list"][0]["identities"][0]["provider"] == "wechatwork"
    members = ok(run, "listDepartmentMembers")
    assert {item["username"] for item in members["list"]} == {"fin.alice", "fin.bob", "fin.carol", "fin.frank"}
    assert all("departmentIds" in item and "customData" in item and "identities" in item for item in members["list"])


def test_departments_groups_and_roles_answer_the_sdk(run: dict[str, Any]) -> None:
    """get-user-departments (paths), get-user-groups, get-user-roles, list-groups and list-group-members."""
    [payroll] = ok(run, "getUserDepartments")["list"]
    assert payroll["code"] == "finance-payroll" and payroll["departmentCodePath"] == ["acme", "finance"]
    assert [group["code"] for group in ok(run, "getUserGroups")["list"]] == ["contractors"]
    assert [role["code"] for role in ok(run, "getUserRoles")["list"]] == ["admin"]
    assert {group["code"] for group in ok(run, "listGroups")["list"]} == {"contractors", "mfa-exempt"}
    assert [user["username"] for user in ok(run, "listGroupMembers")["list"]] == ["fin.bob"]


def test_set_mfa_status_without_null_optional_strings_is_stored(run: dict[str, Any]) -> None:
    """The SDK sends only the fields given (no nulls); the write succeeds and reads back as sent."""
    assert ok(run, "setMfaStatus") == {"success": True}
    after = ok(run, "getMfaStatusAfter")
    assert after["applicationMfa"] == [{"mfaPolicy": "SMS", "status": 1, "sort": 0}]
    assert (after["mfaPhone"], after["mfaPhoneCountryCode"], after["mfaEmail"]) == ("13800138001", "+86", None)
    assert after["mfaToken"] == ok(run, "getMfaStatus")["mfaToken"]
    assert ok(run, "getUserMfaInfo")["smsMfaStatus"] == "enabled"


def test_organization_and_department_types_match_the_sdk_models(run: dict[str, Any]) -> None:
    """OrganizationDto.status is a string; the root's parentDepartmentId/Code are strings; search is an array."""
    [organization] = ok(run, "listOrganizations")["list"]
    assert organization["organizationCode"] == "acme" and isinstance(organization["status"], str)
    root = ok(run, "getRoot")
    assert isinstance(root["parentDepartmentId"], str) and isinstance(root["parentDepartmentCode"], str)
    assert ok(run, "getDepartmentByCode")["parentDepartmentCode"] == "finance"
    assert {item["code"] for item in ok(run, "searchDepartments")} == {"finance"}
    everything = ok(run, "getAllDepartments")
    assert everything["totalCount"] == len(everything["list"])
    assert {"finance", "finance-payroll", "engineering"} <= {item["code"] for item in everything["list"]}


def test_webhook_crud_trigger_and_logs_answer_the_sdk(run: dict[str, Any]) -> None:
    """create/list/get/update/trigger/logs/event list/delete, with delete-webhook answering {success: true}."""
    created = ok(run, "createWebhook")
    assert created["secret"] == HOOK_SECRET and created["events"] == ["user:created", "login"]
    assert [item["webhookId"] for item in ok(run, "listWebhooks")["list"]] == [created["webhookId"]]
    assert ok(run, "getWebhook")["name"] == "node-sdk"
    assert ok(run, "updateWebhook")["name"] == "node-sdk-renamed"
    assert ok(run, "triggerWebhook") == {"response": {"success": True, "got": True}}
    logs = ok(run, "getWebhookLogs")
    assert logs["totalCount"] == 1 and logs["list"][0]["success"] is True
    assert {"user:created", "application:mfa:enabled"} <= {e["value"] for e in ok(run, "getWebhookEventList")["events"]}
    assert ok(run, "deleteWebhook") == {"success": True}


def test_pool_and_application_mfa_settings_answer_the_sdk(run: dict[str, Any]) -> None:
    """Global settings read and write {enabledFactors}; the app gets its own factors; trigger data follows it."""
    assert ok(run, "getGlobalMfa") == {"enabledFactors": ["OTP", "SMS", "EMAIL"]}
    assert ok(run, "updateGlobalMfa") == {"enabledFactors": ["SMS", "EMAIL"]}
    assert ok(run, "closeGlobalMfa") == {"enabledFactors": ["SMS"]}
    assert ok(run, "updateAppMfa") == {"enabledFactors": ["OTP"]}
    assert ok(run, "getMfaTriggerData")["applicationMfa"] == []  # alice has SMS; the app now challenges OTP only
    assert ok(run, "getApplication")["customSecurityEnabled"] is True
    assert "authing.user.created" in {event["code"] for event in ok(run, "listEvents")["list"]}


def test_the_sdk_event_subscription_receives_a_created_user_and_a_bad_key_is_refused(
    run: dict[str, Any], pool: tuple[EmulatorServer, dict[str, str]]
) -> None:
    """sub() with the right key gets the user created afterwards; with a wrong key the handshake is refused."""
    server, _ = pool
    message = json.loads(run["subscription"]["message"])
    assert message["username"] == "ws.walter" and message["userId"]
    assert "error" in run["badSubscription"] and "message" not in run["badSubscription"]
    assert server.events is not None and server.events.refused >= 1
