"""The webhook shared-secret check.

GenAuth signs nothing: it echoes the configured "request key" in a header (docs/genauth.md §1.2-1.3), under
one of three spellings depending on the documentation you believe. Every candidate header is compared with
every configured secret (several during rotation) in constant time, without stopping at the first match, so the
time taken says nothing about which secret or how much of it matched.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Protocol


class HeaderLookup(Protocol):
    def get(self, key: str, /) -> str | None: ...


SECRET_HEADERS = ("x-authing-webhook-secret", "x-authing-token", "x-genauth-token")


def presented_secrets(headers: HeaderLookup) -> list[str]:
    """The secret values a request carries, from any of the accepted headers (names are case-insensitive)."""
    return [value for name in SECRET_HEADERS if (value := headers.get(name))]


def is_authentic(headers: HeaderLookup, secrets: Iterable[str]) -> bool:
    """True when any presented header value equals any configured secret."""
    configured = [secret.encode("utf-8") for secret in secrets if secret]
    presented = [value.encode("utf-8", "surrogateescape") for value in presented_secrets(headers)]
    matched = False
    for candidate in presented:
        for secret in configured:
            matched |= hmac.compare_digest(candidate, secret)
    return matched
