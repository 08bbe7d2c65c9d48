"""AK/SK-signed requests (the Node and Java SDKs' scheme): both brands, GET query arrays and POST bodies are
verified; each way a signature can be wrong gets GenAuth's apiCode (1300-1306) with statusCode 401; Bearer
tokens keep working beside them."""

from __future__ import annotations

import email.utils

import pytest

from genauth_emulator import EmulatorServer
from tests.support.emulator import Api, Signer
from tests.support.factories import FakeClock


def test_genauth_brand_get_with_a_query_array_is_accepted(signer: Signer, ids: dict[str, str]) -> None:
    """`GenAuth <AK>:<sig>` with x-genauth-* headers; `userIds[]=a&userIds[]=b` is signed as userIds=["a","b"]."""
    wanted = [ids["fin.alice"], ids["eng.dave"]]
    params = [("userIds[]", wanted[0]), ("userIds[]", wanted[1]), ("withDepartmentIds", "true")]
    envelope = signer.get("get-user-batch", params, signed={"userIds": wanted, "withDepartmentIds": "true"})
    assert envelope["statusCode"] == 200, envelope
    assert [user["userId"] for user in envelope["data"]] == wanted


def test_authing_brand_post_with_nested_objects_nulls_and_booleans_is_accepted(
    server: EmulatorServer, ids: dict[str, str]
) -> None:
    """`authing <AK>:<sig>`: top-level body fields are signed, objects as compact JSON, null as `null`."""
    signer = Signer(server, "authing")
    body = {
        "keywords": None,
        "options": {"pagination": {"page": 1, "limit": 2}, "withDepartmentIds": True},
        "advancedFilter": [],
    }
    envelope = signer.post("list-users", body)
    assert envelope["statusCode"] == 200, envelope
    assert len(envelope["data"]["list"]) == 2 and "departmentIds" in envelope["data"]["list"][0]


def test_java_style_signature_with_epoch_millisecond_date_is_accepted(
    server: EmulatorServer, ids: dict[str, str]
) -> None:
    """The Java SDK's rendering: `date` in epoch ms, nulls left out, an empty value as a bare key."""
    signer = Signer(server, "authing", java=True)
    body = {"userId": ids["fin.alice"], "userIdType": "", "mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}
    body_with_null = {**body, "nickname": None}
    envelope = signer.post("set-mfa-status", body_with_null)
    assert (envelope["statusCode"], envelope["data"]) == (200, {"success": True}), envelope


def test_a_body_changed_after_signing_is_a_bad_signature(signer: Signer, ids: dict[str, str]) -> None:
    """Signing one body and sending another: 401 with apiCode 1300, and nothing is written."""
    sent = {"userId": ids["fin.alice"], "mfaTriggerData": {"mfaToken": "t", "applicationMfa": []}}
    signed = {**sent, "userId": ids["fin.bob"]}
    envelope = signer.post("set-mfa-status", sent, signed=signed)
    assert (envelope["statusCode"], envelope["apiCode"]) == (401, 1300)
    assert signer.server.state.get_mfa(ids["fin.alice"])["mfaToken"] != "t"


def test_the_path_is_part_of_what_is_signed(signer: Signer, ids: dict[str, str]) -> None:
    """A signature made for get-user does not open get-mfa-status."""
    params = [("userId", ids["fin.alice"])]
    headers = signer.headers("GET", "/api/v3/get-user", dict(params))
    answer = signer.session.get(f"{signer.server.url}/api/v3/get-mfa-status", params=params, headers=headers).json()
    assert (answer["statusCode"], answer["apiCode"]) == (401, 1300)


@pytest.mark.parametrize(
    ("overrides", "api_code"),
    [
        ({"x-genauth-signature-method": "HMAC-SHA256"}, 1301),
        ({"x-genauth-signature-method": None}, 1301),
        ({"x-genauth-signature-version": "2.0"}, 1302),
        ({"date": "yesterday-ish"}, 1303),
        ({"date": None}, 1304),
        ({"x-genauth-signature-nonce": None}, 1300),
    ],
)
def test_each_wrong_signature_header_has_its_api_code(
    signer: Signer, ids: dict[str, str], overrides: dict[str, str | None], api_code: int
) -> None:
    """Method, version, date format, missing date, missing nonce: each refusal names its reason."""
    envelope = signer.get("get-user", [("userId", ids["fin.alice"])], overrides=overrides)
    assert (envelope["statusCode"], envelope.get("apiCode")) == (401, api_code), envelope


def test_a_date_far_from_the_server_clock_is_refused_either_way(
    signer: Signer, clock: FakeClock, ids: dict[str, str]
) -> None:
    """More than the allowed skew (15 minutes) early or late: apiCode 1305; within it: accepted."""
    params = [("userId", ids["fin.alice"])]
    for offset in (-901, 901):
        date = email.utils.formatdate(clock.now + offset, usegmt=True)
        assert signer.get("get-user", params, date=date)["apiCode"] == 1305
    assert (
        signer.get("get-user", params, date=email.utils.formatdate(clock.now - 600, usegmt=True))["statusCode"] == 200
    )


def test_a_replayed_nonce_is_refused(signer: Signer, ids: dict[str, str]) -> None:
    """The same signed request twice: the second is apiCode 1306; a fresh nonce is fine again."""
    params = [("userId", ids["fin.alice"])]
    assert signer.get("get-user", params, nonce="n-1")["statusCode"] == 200
    assert signer.get("get-user", params, nonce="n-1")["apiCode"] == 1306
    assert signer.get("get-user", params, nonce="n-2")["statusCode"] == 200


def test_wrong_secret_unknown_key_and_mixed_brands_are_refused(
    signer: Signer, server: EmulatorServer, ids: dict[str, str]
) -> None:
    """The wrong secret or AK is 1300; `authing` in authorization with x-genauth-* headers has no method: 1301."""
    params = [("userId", ids["fin.alice"])]
    assert signer.get("get-user", params, secret="not-it")["apiCode"] == 1300
    headers = signer.headers("GET", "/api/v3/get-user", dict(params))
    headers["authorization"] = headers["authorization"].replace(server.state.access_key_id, "0" * 24)
    assert signer.session.get(f"{server.url}/api/v3/get-user", params=params, headers=headers).json()["apiCode"] == 1300
    headers = signer.headers("GET", "/api/v3/get-user", dict(params))
    headers["authorization"] = headers["authorization"].replace("GenAuth ", "authing ")
    assert signer.session.get(f"{server.url}/api/v3/get-user", params=params, headers=headers).json()["apiCode"] == 1301


def test_bearer_tokens_still_work_beside_signatures(api: Api, signer: Signer, ids: dict[str, str]) -> None:
    """Both schemes on the same pool; the journal keeps only the scheme of either."""
    assert api.data("get-user", {"userId": ids["fin.alice"]})["userId"] == ids["fin.alice"]
    assert signer.get("get-user", [("userId", ids["fin.alice"])])["statusCode"] == 200
    schemes = [entry.headers["authorization"] for entry in api.server.journal.entries("/api/v3/get-user")]
    assert schemes == ["Bearer <redacted>", "GenAuth <redacted>"]
