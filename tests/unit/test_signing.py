"""Access-key signing (service.genauth.signing): the string to sign is docs/genauth.md §5.1's recorded example
exactly, the signature is base64 HMAC-SHA1, and a signed request is what the emulator's independent verifier
accepts (and refuses once anything sent differs from what was signed)."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug.datastructures import MultiDict

from genauth_emulator.credentials import Credentials
from genauth_emulator.signatures import SignatureError, parse_authorization
from service.errors import ConfigurationError
from service.genauth import signing
from service.settings import load_settings
from tests.support.values import ROOT

KEY = signing.AccessKey("AKID123", "a-secret-of-the-test-pool")
NOW = 1_796_110_510.123  # Tue, 01 Dec 2026 07:35:10 GMT


def documented_example() -> str:
    """The fenced block after "Recorded example" in docs/genauth.md §5.1."""
    text = (ROOT / "docs" / "genauth.md").read_text(encoding="utf-8")
    found = re.search(r"Recorded example \(`get-user-batch`.*?```\n(.*?)\n```", text, re.DOTALL)
    assert found, "docs/genauth.md §5.1 no longer has the recorded example"
    return found.group(1)


def test_the_string_to_sign_is_the_documented_example():
    """The recorded get-user-batch request of §5.1, rebuilt from its headers and parameters, byte for byte."""
    headers = {
        "Date": "Tue, 01 Dec 2026 07:35:10 GMT",
        "x-authing-signature-version": "1.0",
        "x-authing-signature-nonce": "99ba1f326f0947054ccc03c928580199",
        "x-authing-signature-method": "HMAC-SHA1",
        "X-Authing-Sdk-Version": "authing-node-sdk:4.0.1",
        "x-authing-lang": " en-US\t",
        "authorization": "not signed",
        "content-type": "application/json",
        "user-agent": "not signed either",
    }
    parameters = {
        "userIds": ["a1", "b2"],
        "withCustomData": "false",
        "flatCustomData": "false",
        "withIdentities": "false",
        "withDepartmentIds": "true",
        "userIdType": "user_id",
    }
    text = signing.string_to_sign("get", "/api/v3/get-user-batch", headers, parameters)
    assert text == documented_example()


def test_the_signature_is_base64_hmac_sha1():
    """RFC 2202's HMAC-SHA1 test case 2 (key "Jefe"), in base64."""
    assert signing.signature("Jefe", "what do ya want for nothing?") == "7/zfauXrL6LSdBbV8YTfnCWafHk="


def test_values_are_written_as_javascript_writes_them():
    """Strings bare; booleans, numbers and JSON compact, with whole floats as integers and keys in order."""
    assert signing.render("a b&c") == "a b&c"
    assert signing.render(True) == "true"
    assert signing.render(3.0) == "3"
    assert signing.render(2.5) == "2.5"
    assert signing.render({"z": [1.0, None], "a": "é"}) == '{"z":[1,null],"a":"é"}'


def test_an_empty_parameter_list_gives_the_bare_path():
    assert signing.string_to_sign("POST", "/api/v3/x", {"date": "1"}, {}) == "POST\ndate:1\n/api/v3/x"


def verify(method, url, headers, body):
    """The emulator's verifier (genauth_emulator.credentials) on the request as sent."""
    path, _, query = url.partition("?")
    credentials = Credentials(KEY.key_id, KEY.secret)
    lower = {name.lower(): value for name, value in headers.items()}
    authorization = parse_authorization(lower["authorization"])
    assert authorization is not None
    args = MultiDict([tuple(pair.split("=", 1)) for pair in query.split("&")] if query else [])
    credentials.check_signature(
        authorization,
        method=method,
        path=path,
        headers=lower,
        args=args,
        body=json.loads(body) if body else None,
        now=NOW + 1,
    )


def test_a_signed_get_carries_the_documented_headers_and_verifies():
    """Nonce, method, version and a millisecond date are added and signed with the query."""
    url = "http://genauth.test/api/v3/get-user?userId=u1&userIdType=user_id&withCustomData=true"
    sent = {"x-authing-lang": "en-US", "User-Agent": "mfa-enforcer"}
    added = signing.sign_request(KEY, "GET", url, sent, None, now=NOW)
    assert added["date"] == "1796110510123"
    assert re.fullmatch(r"[0-9a-f]{32}", added["x-authing-signature-nonce"])
    assert (added["x-authing-signature-method"], added["x-authing-signature-version"]) == ("HMAC-SHA1", "1.0")
    assert added["authorization"].startswith("authing AKID123:")
    assert KEY.secret not in repr(KEY) and KEY.secret not in str(added)
    verify("GET", url.removeprefix("http://genauth.test"), {**sent, **added}, None)
    again = signing.sign_request(KEY, "GET", url, sent, None, now=NOW)
    assert again["x-authing-signature-nonce"] != added["x-authing-signature-nonce"]


def test_a_signed_post_signs_its_top_level_body_fields_and_verifies():
    body = json.dumps({"userId": "u1", "mfaTriggerData": {"applicationMfa": [], "mfaPhone": None}}).encode()
    url = "http://genauth.test/api/v3/set-mfa-status"
    added = signing.sign_request(KEY, "POST", url, {"x-authing-lang": "en-US"}, body, now=NOW, nonce="n" * 32)
    headers = {"x-authing-lang": "en-US", **added}
    verify("POST", "/api/v3/set-mfa-status", headers, body)
    with pytest.raises(SignatureError) as caught:  # a body other than the one signed
        verify("POST", "/api/v3/set-mfa-status", headers, body.replace(b"u1", b"u2"))
    assert caught.value.api_code == 1300


@pytest.mark.parametrize(
    ("method", "url", "body", "problem"),
    [
        ("POST", "http://h/api/v3/x?a=1", b"{}", "in the JSON body"),
        ("GET", "http://h/api/v3/x?a=1&a=2", None, "twice"),
        ("GET", "http://h/api/v3/x", b'{"a": 1}', "no body"),
        ("POST", "http://h/api/v3/x", b'{"a": null}', "top-level null"),
    ],
)
def test_requests_whose_signed_text_the_sdks_disagree_on_are_refused(method, url, body, problem):
    with pytest.raises(ValueError, match=problem):
        signing.sign_request(KEY, method, url, {}, body, now=NOW)


def test_every_signature_api_code_has_a_meaning():
    assert sorted(signing.REFUSALS) == list(range(1300, 1307))
    assert "clock" in (signing.refusal(signing.CLOCK_SKEW_API_CODE) or "")
    assert signing.refusal(2004) is None and signing.refusal(None) is None


SETTINGS_REQUIRED = {"GENAUTH_ACCESS_KEY_ID": "pool-id", "GENAUTH_ACCESS_KEY_SECRET": "pool-secret"}


def test_genauth_auth_is_token_by_default_signature_on_request_and_nothing_else():
    """GENAUTH_AUTH: `token` unless set, `signature` (any case) when asked, any other value one clear problem."""
    assert load_settings(SETTINGS_REQUIRED, role="worker").genauth.auth == "token"
    assert load_settings({**SETTINGS_REQUIRED, "GENAUTH_AUTH": "Signature"}, role="worker").genauth.auth == "signature"
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**SETTINGS_REQUIRED, "GENAUTH_AUTH": "hmac"}, role="worker")
    [problem] = [line for line in str(caught.value).splitlines() if "GENAUTH_AUTH" in line]
    assert problem.strip() == "- GENAUTH_AUTH='hmac' is not one of token, signature"
