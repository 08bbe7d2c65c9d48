"""AK/SK request signing as the official Node and Java SDKs do it, rebuilt on the receiving side.

Those SDKs never fetch a management token: each request carries `authorization: authing <AK>:<signature>`
(GenAuth-branded SDKs: `GenAuth <AK>:...`), where the signature is the base64 HMAC-SHA1, keyed with the access
key secret, of a string built from the request. Read in `authing-node-sdk` 4.0.1 (npm) `src/utils/buildSignature.ts`
and `src/ManagementHttpClient.ts`, `GenAuth-Official/genauth-node-sdk` (same files, `GenAuth` and `x-genauth-`),
and `Authing/authing-java-sdk` `ManagementClientOptions.doRequest` with `util/signature/Impl/SignatureComposer.java`:

    METHOD "\\n"
    for each header named `date` or starting with the brand prefix (`x-authing-` / `x-genauth-`), sorted:
        name ":" value (tabs and newlines as spaces, trimmed) "\\n"
    path, then "?" and the sorted `key=value` pairs joined by "&" (no "?" when there are no keys)

The pairs are the query parameters of a GET and the top-level body fields otherwise; values are not
URL-encoded, objects and arrays are JSON (`JSON.stringify`), and the Node SDK writes `key=null` for a null.
The Java SDK skips nulls, writes an empty value as a bare `key`, and renders a list of enums as `[A, B]`; the
emulator accepts every variant. A query array (`userIds[]=a&userIds[]=b`, as axios sends it) is the key
`userIds` with the JSON array as its value. Headers also sent: `x-<brand>-signature-nonce` (random),
`-signature-method: HMAC-SHA1`, `-signature-version: 1.0`, and `date` (RFC 1123 from Node, epoch
milliseconds from Java). The event WebSocket signs the constant string "websocket\\n".

GenAuth's error-code page lists the signature apiCodes (1300-1306); the statusCode that goes with them is not
documented, the emulator answers 401. Clock-skew tolerance and nonce lifetime are not documented either: the
emulator allows 15 minutes and remembers nonces that long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from werkzeug.datastructures import MultiDict

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
WEBSOCKET_STRING_TO_SIGN = "websocket\n"
#: Scheme (lower case) in `authorization` -> the prefix of the headers that are signed.
BRANDS = {"authing": "x-authing-", "genauth": "x-genauth-"}
DEFAULT_SKEW_SECONDS = 900.0

BAD_SIGNATURE = 1300
WRONG_METHOD = 1301
WRONG_VERSION = 1302
BAD_DATE = 1303
NO_DATE = 1304
CLOCK_SKEW = 1305
REPLAYED = 1306


class SignatureError(Exception):
    """A signed request GenAuth refuses, with the apiCode it documents for the reason."""

    def __init__(self, api_code: int, message: str) -> None:
        super().__init__(message)
        self.api_code = api_code
        self.message = message


@dataclass(frozen=True)
class SignedAuthorization:
    """The parts of `authorization: <brand> <AK>:<signature>`."""

    brand: str
    access_key_id: str
    signature: str

    @property
    def header_prefix(self) -> str:
        """`x-authing-` or `x-genauth-`: the signed headers' prefix."""
        return BRANDS[self.brand]


def parse_authorization(value: str) -> SignedAuthorization | None:
    """Split a signature `authorization` value; None when it is not one (e.g. `Bearer ...`)."""
    scheme, _, credential = value.strip().partition(" ")
    brand = scheme.lower()
    if brand not in BRANDS:
        return None
    access_key_id, colon, signature = credential.strip().partition(":")
    if not colon or not access_key_id or not signature:
        raise SignatureError(BAD_SIGNATURE, f"authorization must be '{scheme} <accessKeyId>:<signature>'")
    return SignedAuthorization(brand=brand, access_key_id=access_key_id, signature=signature)


def sign(access_key_secret: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA1 of the string, keyed with the secret (UTF-8 both)."""
    digest = hmac.new(access_key_secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def websocket_authorization(brand: str, access_key_id: str, access_key_secret: str) -> str:
    """The `authorization` value of an event subscription: a signature of "websocket\\n" (brand as written)."""
    return f"{brand} {access_key_id}:{sign(access_key_secret, WEBSOCKET_STRING_TO_SIGN)}"


def parse_date(value: str) -> float | None:
    """Epoch seconds of a `date` header (epoch milliseconds or RFC 1123); None if it is neither."""
    text = value.strip()
    if text.isdigit():
        return int(text) / 1000.0
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def canonical_headers(headers: Mapping[str, str], prefix: str) -> str:
    """The signed header lines: `date` and every `prefix*` header, names lower-case and sorted."""
    chosen = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in sorted(key for key in chosen if key == "date" or key.startswith(prefix)):
        value = chosen[name]
        for blank in "\t\n\r\f":
            value = value.replace(blank, " ")
        lines.append(f"{name}:{value.strip()}\n")
    return "".join(lines)


def query_pairs(args: MultiDict[str, str]) -> dict[str, Any]:
    """The signed parameters of a query: repeated or `key[]`/`key[0]` keys become one key with a list."""
    grouped: dict[str, list[str]] = {}
    arrays: set[str] = set()
    for key, value in args.items(multi=True):
        base = key
        if key.endswith("]") and "[" in key:
            base = key[: key.index("[")]
            arrays.add(base)
        grouped.setdefault(base, []).append(value)
    return {key: values if key in arrays or len(values) > 1 else values[0] for key, values in grouped.items()}


def body_pairs(body: Any) -> dict[str, Any]:
    """The signed parameters of a JSON body: its top-level fields (none for anything but an object)."""
    return dict(body) if isinstance(body, dict) else {}


def strings_to_sign(
    method: str, path: str, headers: Mapping[str, str], pairs: Mapping[str, Any], prefix: str
) -> list[str]:
    """Every string a correct SDK may have signed for this request (Node and Java render values differently)."""
    head = f"{method.upper()}\n{canonical_headers(headers, prefix)}"
    keys = sorted(pairs)
    resources = {
        _resource(path, [f"{key}={_node_value(pairs[key])}" for key in keys]),
        _resource(path, [_java_pair(key, pairs[key], enum_lists=False) for key in keys if pairs[key] is not None]),
        _resource(path, [_java_pair(key, pairs[key], enum_lists=True) for key in keys if pairs[key] is not None]),
    }
    if not keys:
        resources.add(f"{path}?")  # Node: parameters that were all undefined still add the "?"
    return [head + resource for resource in sorted(resources)]


def matches(access_key_secret: str, signature: str, candidates: Iterable[str]) -> bool:
    """True when `signature` is the signature of any candidate (each compared in constant time)."""
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(sign(access_key_secret, candidate).encode(), signature.encode())
    return found


def _resource(path: str, parts: list[str]) -> str:
    return f"{path}?{'&'.join(parts)}" if parts else path


def _node_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js_number(value)
    return _js_json(value)


def _java_pair(key: str, value: Any, *, enum_lists: bool) -> str:
    if value == "":
        return key
    if enum_lists and isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return f"{key}=[{', '.join(value)}]"
    return f"{key}={_node_value(value)}"


def _js_number(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _js_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
