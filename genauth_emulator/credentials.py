"""`Credentials`: the pool's access key and the two ways a caller proves it holds it.

* A management token (the Python SDKs): `get-management-token` exchanges the AK/SK for a JWT the caller sends
  as `authorization: Bearer <token>`; `tokens.TokenRegistry` remembers what was issued and when it expires.
* A request signature (the Node and Java SDKs; see `signatures`): every request is signed with the secret, and
  the emulator checks the method and version headers, the `date` (within the allowed skew), the signature
  itself and that the nonce was not used before.

One aggregate because both answer the same question (may this request act on the pool?) with the same key.
`state.EmulatorState` owns one and calls it with its lock held.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import MultiDict

from genauth_emulator import signatures
from genauth_emulator.signatures import SignatureError
from genauth_emulator.tokens import TokenRegistry


class Credentials:
    """The access key pair, issued tokens and recently used signature nonces."""

    def __init__(self, access_key_id: str, access_key_secret: str | None) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret or secrets.token_urlsafe(24)
        self.tokens = TokenRegistry()
        self.signature_skew = signatures.DEFAULT_SKEW_SECONDS
        """Seconds a signed request's `date` may differ from the emulator's clock (and nonces are kept)."""
        self._nonces: OrderedDict[str, float] = OrderedDict()  # nonce -> when it may be forgotten

    def key_pair_matches(self, access_key_id: str, access_key_secret: str) -> bool:
        """True for this pool's AK and SK (both compared in constant time)."""
        key_ok = hmac.compare_digest(access_key_id.encode(), self.access_key_id.encode())
        secret_ok = hmac.compare_digest(access_key_secret.encode(), self.access_key_secret.encode())
        return key_ok and secret_ok

    def check_signature(
        self,
        authorization: signatures.SignedAuthorization,
        *,
        method: str,
        path: str,
        headers: Mapping[str, str],
        args: MultiDict[str, str],
        body: Any,
        now: float,
    ) -> None:
        """Accept a signed request or raise `SignatureError` with GenAuth's apiCode for what is wrong."""
        prefix = authorization.header_prefix
        if not hmac.compare_digest(authorization.access_key_id.encode(), self.access_key_id.encode()):
            raise SignatureError(signatures.BAD_SIGNATURE, "AK/SK signature is invalid: unknown access key")
        method_header = headers.get(f"{prefix}signature-method")
        if method_header != signatures.SIGNATURE_METHOD:
            raise SignatureError(
                signatures.WRONG_METHOD, f"{prefix}signature-method must be {signatures.SIGNATURE_METHOD}"
            )
        if headers.get(f"{prefix}signature-version") != signatures.SIGNATURE_VERSION:
            raise SignatureError(
                signatures.WRONG_VERSION, f"{prefix}signature-version must be {signatures.SIGNATURE_VERSION}"
            )
        date = headers.get("date")
        if date is None:
            raise SignatureError(signatures.NO_DATE, "a signed request needs a date header")
        sent_at = signatures.parse_date(date)
        if sent_at is None:
            raise SignatureError(signatures.BAD_DATE, "date must be a Unix timestamp in milliseconds")
        if abs(now - sent_at) > self.signature_skew:
            raise SignatureError(signatures.CLOCK_SKEW, "the signature's date is too far from the server's time")
        nonce = headers.get(f"{prefix}signature-nonce", "")
        pairs = signatures.query_pairs(args) if method.upper() == "GET" else signatures.body_pairs(body)
        candidates = signatures.strings_to_sign(method, path, headers, pairs, prefix)
        if not nonce or not signatures.matches(self.access_key_secret, authorization.signature, candidates):
            raise SignatureError(signatures.BAD_SIGNATURE, "AK/SK signature is invalid")
        self._forget_nonces(now)
        if nonce in self._nonces:
            raise SignatureError(signatures.REPLAYED, "this signature has already been used")
        self._nonces[nonce] = now + self.signature_skew

    def socket_authorization_matches(self, value: str) -> bool:
        """True when an event-subscription `authorization` is this key pair's (either brand, any case)."""
        try:
            parsed = signatures.parse_authorization(value)
        except SignatureError:
            return False
        if parsed is None:
            return False
        expected = signatures.sign(self.access_key_secret, signatures.WEBSOCKET_STRING_TO_SIGN)
        key_ok = hmac.compare_digest(parsed.access_key_id.encode(), self.access_key_id.encode())
        signature_ok = hmac.compare_digest(parsed.signature.encode(), expected.encode())
        return key_ok and signature_ok

    def _forget_nonces(self, now: float) -> None:
        while self._nonces:
            nonce, forget_at = next(iter(self._nonces.items()))
            if forget_at > now:
                return
            del self._nonces[nonce]
