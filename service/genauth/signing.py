"""Access-key request signing (``GENAUTH_AUTH=signature``): proving the key on every call instead of with a token.

GenAuth's Node SDKs, and its Java SDK up to 3.1.3, never fetch a management token: each request carries
``authorization: authing <AK>:<base64 HMAC-SHA1(SK, stringToSign)>`` with a nonce, the signature method and
version, and a ``date``. docs/genauth.md §5.1 gives the construction; this module is written from it, not
from any SDK's code:

    METHOD "\\n"
    "date" and every "x-authing-*" header sent, names lower case and sorted: name ":" value "\\n"
    path, then "?" and the parameters as sorted "key=value" pairs joined by "&" (no "?" when there are none)

The parameters are the query of a GET and the top-level fields of the JSON body otherwise; values are not
URL-encoded, strings are written as they are, numbers and booleans as JavaScript writes them (``true``,
``1``), and objects and arrays as compact JSON with their keys in the order sent.

The SDKs differ in a few details; the service follows the Java SDK for ``date`` (Unix milliseconds, the form
apiCode 1303 asks for) and sends nothing whose signed text they would write differently: no top-level
``null`` field (the client leaves them out), no query key twice. An empty value is the one difference left
(``key=`` here, as the Node SDK writes it; the Java SDK wrote a bare ``key``); the service sends none today.
``sign_request`` reads the method, path, query and body from the request as it is about to be sent (the
client prepares it first), so what is signed is what GenAuth receives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BRAND = "authing"
"""The scheme in ``authorization`` (the Authing SDKs' spelling; the signed headers start with ``x-authing-``)."""
HEADER_PREFIX = "x-authing-"
SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"

CLOCK_SKEW_API_CODE = 1305
REFUSALS = {
    1300: "the signature does not match (a wrong access key secret, or an unknown access key id)",
    1301: "the signature method is not the one GenAuth expects",
    1302: "the signature version is not the one GenAuth expects",
    1303: "the date header is not in the format GenAuth expects (Unix milliseconds)",
    1304: "the date header is missing",
    CLOCK_SKEW_API_CODE: "the request's date is too far from GenAuth's clock (this machine's clock is off)",
    1306: "the signature was already used (a replayed nonce)",
}
"""GenAuth's apiCodes for a refused signature (docs/genauth.md §2.5) and what each means."""


@dataclass(frozen=True)
class AccessKey:
    """The key pair a request is signed with."""

    key_id: str
    secret: str = field(repr=False)


def refusal(api_code: int | None) -> str | None:
    """What a signature apiCode means, or None for any other code."""
    return REFUSALS.get(api_code) if api_code is not None else None


def sign_request(
    key: AccessKey,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | None,
    *,
    now: float,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign a prepared request (``url`` with its encoded query, ``body`` as it will be sent,
    ``headers`` those it already has); the caller adds them. ``now`` is the wall-clock time in seconds."""
    added = {
        f"{HEADER_PREFIX}signature-nonce": nonce or secrets.token_hex(16),
        f"{HEADER_PREFIX}signature-method": SIGNATURE_METHOD,
        f"{HEADER_PREFIX}signature-version": SIGNATURE_VERSION,
        "date": str(int(now * 1000)),
    }
    parts = urlsplit(url)
    if method.upper() == "GET":
        if body:
            raise ValueError("a signed GET carries no body")
        parameters = _query(parts.query)
    else:
        if parts.query:
            raise ValueError(f"a signed {method} carries its parameters in the JSON body, not in the query")
        parameters = _body(body)
    text = string_to_sign(method, parts.path, {**headers, **added}, parameters)
    added["authorization"] = f"{BRAND} {key.key_id}:{signature(key.secret, text)}"
    return added


def string_to_sign(method: str, path: str, headers: Mapping[str, str], parameters: Mapping[str, Any]) -> str:
    """The text a request's signature is made of (docs/genauth.md §5.1)."""
    chosen = {name.lower(): value for name, value in headers.items()}
    signed = sorted(name for name in chosen if name == "date" or name.startswith(HEADER_PREFIX))
    lines = "".join(f"{name}:{_header_value(chosen[name])}\n" for name in signed)
    pairs = "&".join(f"{name}={render(parameters[name])}" for name in sorted(parameters))
    return f"{method.upper()}\n{lines}{path}" + (f"?{pairs}" if pairs else "")


def signature(secret: str, text: str) -> str:
    """Base64 of the HMAC-SHA1 of ``text`` keyed with ``secret`` (both UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def render(value: Any) -> str:
    """A parameter value as the signed text has it: strings bare, the rest as JavaScript writes them."""
    if isinstance(value, str):
        return value
    return json.dumps(_javascript(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _javascript(value: Any) -> Any:
    """``value`` with whole floats made integers: JavaScript writes ``1.0`` as ``1``."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _javascript(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_javascript(item) for item in value]
    return value


def _header_value(value: str) -> str:
    for blank in "\t\n\r\f":
        value = value.replace(blank, " ")
    return value.strip()


def _query(query: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name in parameters:
            raise ValueError(f"a signed query names {name!r} twice (the SDKs sign repeated keys differently)")
        parameters[name] = value
    return parameters


def _body(body: bytes | str | None) -> dict[str, Any]:
    if not body:
        return {}
    parsed = json.loads(body)
    if not isinstance(parsed, dict):
        raise ValueError("a signed body is a JSON object")
    if any(value is None for value in parsed.values()):
        raise ValueError("a signed body has no top-level null (the SDKs sign it differently)")
    return parsed
