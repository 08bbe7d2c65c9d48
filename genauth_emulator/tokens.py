"""Management tokens: minting GenAuth-shaped JWTs and remembering which are still good.

`credentials.Credentials` owns one `TokenRegistry`; `state.EmulatorState` calls it under its lock, so the registry
does not lock.
The official Python SDK reads `scoped_userpool_id` by decoding the JWT payload with *standard* base64, so a
payload segment containing `-` or `_` would break it; `mint_management_token` never returns one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from genauth_emulator.records import b64url

# Base64 of ASCII text yields `-`/`_` (6-bit values 62/63) only from the bytes `>`, `?`, `~` and DEL, so
# `_payload_json` escapes those and the first attempt is always clean. The re-mint loop is a safety net; its
# bound turns a logic error into an exception instead of a hang.
_MAX_MINT_ATTEMPTS = 100
_ESCAPES = str.maketrans({char: f"\\u{ord(char):04x}" for char in ">?~\x7f"})


def _payload_json(claims: dict[str, object]) -> str:
    """Compact ASCII JSON with the four base64-unsafe characters written as \\u escapes."""
    return json.dumps(claims, separators=(",", ":")).translate(_ESCAPES)


def mint_management_token(*, userpool_id: str, access_key_id: str, now: float, lifetime: int, key: bytes) -> str:
    """Return an HS256 JWT with `scoped_userpool_id`, `iat`, `exp` and a fresh `jti`, safe for the SDK."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    for _ in range(_MAX_MINT_ATTEMPTS):
        claims: dict[str, object] = {
            "scoped_userpool_id": userpool_id,
            "access_key_id": access_key_id,
            "token_type": "management_token",
            "iat": int(now),
            "exp": int(now) + lifetime,
            "jti": secrets.token_hex(12),
        }
        payload = b64url(_payload_json(claims).encode())
        if "-" not in payload and "_" not in payload:
            signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            return f"{header}.{payload}.{b64url(signature)}"
    raise RuntimeError("could not mint a management token whose payload is standard-base64 clean")


@dataclass
class _Issued:
    expires_at: float


class TokenRegistry:
    """Tokens handed out by `get-management-token`, with their expiry. Not thread-safe on its own."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._issued: dict[str, _Issued] = {}

    def issue(self, *, userpool_id: str, access_key_id: str, now: float, lifetime: int) -> str:
        """Mint a token valid for `lifetime` seconds from `now` and remember it."""
        token = mint_management_token(
            userpool_id=userpool_id, access_key_id=access_key_id, now=now, lifetime=lifetime, key=self._key
        )
        self._issued[token] = _Issued(expires_at=now + lifetime)
        return token

    def problem_with(self, token: str, now: float) -> str | None:
        """Return why `token` is unacceptable at `now`, or None when it is good."""
        issued = self._issued.get(token)
        if issued is None:
            return "Invalid management token"
        if now >= issued.expires_at:
            return "Management token has expired"
        return None

    def revoke_all(self) -> None:
        """Forget every token, so each is rejected as unknown."""
        self._issued.clear()

    def expire_all(self, now: float) -> None:
        """Keep every token but make each one expired as of `now`."""
        for issued in self._issued.values():
            issued.expires_at = min(issued.expires_at, now)
