"""`WebhookSender`: posts webhook bodies to a receiver the way GenAuth does (docs/genauth.md §1.1-1.2), in each body
encoding and header style the docs leave open, so the receiver can be tested against all of them.

Encodings: `json`; `form-brackets` (`data[id]=...&data[registerSource][0]=...`, see `encode_form_brackets`);
`form-json-field` (`eventName=login&data=<JSON>`); `form-raw-json` (a JSON body labelled as a form).
Header styles: `authing` (`x-authing-webhook-secret` + `x-authing-token`, as observed) or `genauth`
(`X-GenAuth-Token`, as the GenAuth guide's configuration table says).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import requests

ENCODINGS = ("json", "form-brackets", "form-json-field", "form-raw-json")
HEADER_STYLES = ("authing", "genauth")
USER_AGENT = "authing-webhook@2.0"
ACCEPT = "application/json, text/plain, */*"
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def encode_form_brackets(body: Mapping[str, Any]) -> str:
    """Encode nested data in bracket notation, as `qs.stringify` does.

    Objects nest as `a[b]`, arrays index as `a[0]`; null becomes an empty string, booleans `true`/`false`.
    Empty objects and arrays produce no pair at all. Brackets in names are left unescaped.
    """
    pairs: list[tuple[str, str]] = []
    for key, value in body.items():
        _flatten(str(key), value, pairs)
    return "&".join(f"{quote(name, safe='[]')}={quote(value, safe=':@')}" for name, value in pairs)


def _flatten(name: str, value: Any, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{name}[{key}]", item, pairs)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(f"{name}[{index}]", item, pairs)
    else:
        pairs.append((name, _scalar(value)))


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def encode_body(body: Mapping[str, Any], encoding: str) -> tuple[str, str]:
    """Return `(text, content type)` for `body` in one of `ENCODINGS`."""
    if encoding == "json":
        return _json(body), JSON_TYPE
    if encoding == "form-raw-json":
        return _json(body), FORM_TYPE
    if encoding == "form-brackets":
        return encode_form_brackets(body), FORM_TYPE
    if encoding == "form-json-field":
        fields = [(key, value if isinstance(value, str) else _json(value)) for key, value in body.items()]
        return urlencode(fields), FORM_TYPE
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class WebhookSender:
    """Delivers webhook bodies to `url` over one `requests.Session`; close it (or use `with`) when done."""

    def __init__(
        self,
        url: str,
        secret: str,
        userpool_id: str,
        *,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.userpool_id = userpool_id
        self.timeout = timeout
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()

    def headers(self, header_style: str, content_type: str) -> dict[str, str]:
        """Return the headers GenAuth sends with a delivery in this style."""
        if header_style not in HEADER_STYLES:
            raise ValueError(f"unknown header style {header_style!r}; expected one of {HEADER_STYLES}")
        headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT, "Content-Type": content_type}
        if header_style == "authing":
            headers["x-authing-webhook-secret"] = self.secret
            headers["x-authing-token"] = self.secret
        else:
            headers["X-GenAuth-Token"] = self.secret
        headers["x-authing-userpool-id"] = self.userpool_id
        return headers

    def deliver(
        self,
        body: Mapping[str, Any],
        *,
        encoding: str = "json",
        header_style: str = "authing",
        bare: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """POST one delivery and return the receiver's response. `bare` sends `body["data"]` alone."""
        text, headers = self.prepare(
            body, encoding=encoding, header_style=header_style, bare=bare, extra_headers=extra_headers
        )
        return self._session.post(self.url, data=text.encode("utf-8"), headers=headers, timeout=self.timeout)

    def prepare(
        self,
        body: Mapping[str, Any],
        *,
        encoding: str = "json",
        header_style: str = "authing",
        bare: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """The encoded body and the headers `deliver` sends with it."""
        if bare:
            if not isinstance(body.get("data"), Mapping):
                raise ValueError("bare=True needs an enveloped body whose data is an object")
            body = body["data"]
        text, content_type = encode_body(body, encoding)
        headers = self.headers(header_style, content_type)
        headers.update(extra_headers or {})
        return text, headers

    def post(self, text: str, headers: Mapping[str, str]) -> requests.Response:
        """POST an already prepared delivery."""
        return self._session.post(self.url, data=text.encode("utf-8"), headers=dict(headers), timeout=self.timeout)

    def close(self) -> None:
        """Close the underlying HTTP session (unless it was lent to this sender)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
