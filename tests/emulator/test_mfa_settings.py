"""Pool and application MFA settings: get/update/disable-global-mfa-settings answer `{enabledFactors}`; an app
inherits the pool's factors until update-application-mfa-settings gives it its own (firing
application:mfa:enabled/disabled); get-mfa-trigger-data shows what the app challenges; controls for tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from genauth_emulator import EmulatorServer, EmulatorState, UnknownApplicationError
from tests.support.emulator import Api, Receiver


def app_id(server: EmulatorServer) -> str:
    return str(server.state.applications()[0]["appId"])


def test_the_pool_enables_sms_email_and_otp_by_default(api: Api) -> None:
    """GET get-global-mfa-settings (no parameters) answers {enabledFactors} in the SDK enum's order."""
    assert api.data("get-global-mfa-settings") == {"enabledFactors": ["OTP", "SMS", "EMAIL"]}


def test_update_sets_and_disable_removes_pool_factors(api: Api) -> None:
    """update-global-mfa-settings makes the list the enabled set; disable-global-mfa-settings switches some off."""
    set_answer = api.post("update-global-mfa-settings", {"enabledFactors": ["FACE", "SMS"]}).json()
    assert set_answer["data"] == {"enabledFactors": ["SMS", "FACE"]}
    off = api.post("disable-global-mfa-settings", {"disableFactors": ["FACE"]}).json()
    assert off["data"] == {"enabledFactors": ["SMS"]}
    assert api.data("get-global-mfa-settings") == {"enabledFactors": ["SMS"]}
    bad = api.post("update-global-mfa-settings", {"enabledFactors": ["SMS", "VOICE"]}).json()
    assert bad["statusCode"] == 400 and api.post("update-global-mfa-settings", {}).json()["statusCode"] == 400


def test_an_app_inherits_the_pool_until_it_has_its_own_factors(api: Api, server: EmulatorServer) -> None:
    """A new app follows the pool (customSecurityEnabled false); once updated it keeps its own set."""
    app = app_id(server)
    assert api.data("get-application", {"appId": app})["customSecurityEnabled"] is False
    server.state.disable_global_mfa_factors(["EMAIL"])
    assert server.state.application_mfa_factors(app) == ["OTP", "SMS"]
    answer = api.post(
        "update-application-mfa-settings", {"appId": app, "enabledFactors": ["EMAIL"], "disabledFactors": ["SMS"]}
    )
    assert answer.json()["data"] == {"enabledFactors": ["OTP", "EMAIL"]}
    server.state.set_global_mfa_factors(["SMS"])
    assert server.state.application_mfa_factors(app) == ["OTP", "EMAIL"]
    assert api.data("get-application", {"appId": app})["customSecurityEnabled"] is True
    assert server.state.inherit_application_mfa(app) == ["SMS"]


def test_trigger_data_shows_only_what_the_app_challenges(api: Api, server: EmulatorServer, ids: dict[str, str]) -> None:
    """get-mfa-trigger-data: fin.frank's SMS shows while the app enables SMS and disappears when it does not."""
    app = app_id(server)
    query = {"appId": app, "userId": ids["fin.frank"]}
    assert [item["mfaPolicy"] for item in api.data("get-mfa-trigger-data", query)["applicationMfa"]] == ["SMS"]
    server.state.update_application_mfa(app, disabled=["SMS"])
    data = api.data("get-mfa-trigger-data", query)
    assert data["applicationMfa"] == [] and data["mfaPhone"] == "13800138006"
    assert api.data("get-mfa-status", {"userId": ids["fin.frank"]})["applicationMfa"][0]["mfaPolicy"] == "SMS"


def test_unknown_apps_are_404_with_api_code_2011(api: Api, ids: dict[str, str]) -> None:
    """Every app endpoint answers an unknown appId with statusCode 404 and apiCode 2011."""
    unknown = "0" * 24
    answers = [
        api.get("get-application", {"appId": unknown}).json(),
        api.get("get-mfa-trigger-data", {"appId": unknown, "userId": ids["fin.alice"]}).json(),
        api.post("update-application-mfa-settings", {"appId": unknown, "enabledFactors": ["SMS"]}).json(),
    ]
    assert [(answer["statusCode"], answer.get("apiCode")) for answer in answers] == [(404, 2011)] * 3


def test_app_factor_changes_fire_application_mfa_webhooks(api: Api, server: EmulatorServer, receiver: Receiver) -> None:
    """One application:mfa:enabled / :disabled delivery per factor that changed, {type, applicationId}."""
    api.post(
        "create-webhook",
        {
            "name": "apps",
            "url": receiver.url,
            "contentType": "application/json",
            "events": ["application:mfa:enabled", "application:mfa:disabled"],
        },
    )
    app = app_id(server)
    server.state.update_application_mfa(app, enabled=["FACE"], disabled=["SMS", "EMAIL"])
    server.state.update_application_mfa(app, enabled=["FACE"])  # no change: no event
    assert server.state.wait_for_deliveries(10)
    sent = [json.loads(delivery.raw) for delivery in receiver.deliveries]
    assert sent == [
        {"eventName": "application:mfa:enabled", "data": {"type": "FACE", "applicationId": app}},
        {"eventName": "application:mfa:disabled", "data": {"type": "SMS", "applicationId": app}},
        {"eventName": "application:mfa:disabled", "data": {"type": "EMAIL", "applicationId": app}},
    ]


def test_the_control_api_switches_pool_and_app_factors(server: EmulatorServer) -> None:
    """/_emulator/mfa-settings and /_emulator/applications[/<id>/mfa] drive the same settings from outside."""
    base = f"{server.url}/_emulator"
    switched = requests.post(f"{base}/mfa-settings", json={"disable": ["SMS"]}, timeout=5).json()
    assert switched["enabledFactors"] == ["OTP", "EMAIL"]
    [listed] = switched["applications"]
    assert listed["enabledFactors"] == ["OTP", "EMAIL"] and listed["customSecurityEnabled"] is False
    created = requests.post(f"{base}/applications", json={"name": "Payroll"}, timeout=5)
    assert created.status_code == 201
    new_app = created.json()["application"]["appId"]
    custom = requests.post(f"{base}/applications/{new_app}/mfa", json={"enabledFactors": ["SMS"]}, timeout=5).json()
    assert custom["enabledFactors"] == ["OTP", "SMS", "EMAIL"] and custom["application"]["customSecurityEnabled"]
    back = requests.post(f"{base}/applications/{new_app}/mfa", json={"inherit": True}, timeout=5).json()
    assert back["enabledFactors"] == ["OTP", "EMAIL"]
    assert requests.post(f"{base}/applications/nope/mfa", json={}, timeout=5).status_code == 404
    assert requests.post(f"{base}/mfa-settings", json={"enable": ["PIN"]}, timeout=5).status_code == 400


def test_list_applications_pages_and_filters(api: Api, server: EmulatorServer) -> None:
    """list-applications answers {totalCount, list} of ApplicationDto, filtered by keywords in the name."""
    server.state.add_application("Payroll")
    everything = api.data("list-applications", {"page": 1, "limit": 10})
    assert everything["totalCount"] == 2 and everything["list"][0]["appName"] == "ACME Portal"
    assert [app["appName"] for app in api.data("list-applications", {"keywords": "pay"})["list"]] == ["Payroll"]


def test_state_helpers_refuse_unknown_factors_and_apps() -> None:
    """Factors outside OTP/SMS/EMAIL/FACE are a ValueError; an unknown app UnknownApplicationError."""
    state = EmulatorState()
    with pytest.raises(ValueError, match="factors"):
        state.set_global_mfa_factors(["TOTP"])
    with pytest.raises(UnknownApplicationError):
        state.application_mfa_factors("0" * 24)
    app: Any = state.add_application("x", app_id="a" * 24)
    with pytest.raises(ValueError):
        state.add_application("y", app_id=app)
