"""GenAuth's event WebSocket (docs/genauth.md §5.2): the subscription ``mfa-enforcer listen`` holds per event code.

What GenAuth specifies is all here, and nothing of what the service does with a message: the URL
(``<events host>/events/v1/management/sub?code=<code>``), the handshake's one header (``authorization: <brand>
<AK>:<base64 HMAC-SHA1(SK, "websocket\\n")>``, made with ``service.genauth.signing.signature``), the dotted event
codes the webhook events the service acts on are published under (``EVENT_CODES``), and what a refused
handshake means. The client is the ``websockets`` library's asyncio client (14 and later), not the SDKs'
helper: the Python SDK's passes an argument ``websockets`` 14 removed, and neither reconnects usefully.

A handshake GenAuth answers 401 or 403 (apiCode 1300: the signature does not match) is
``GenAuthAuthenticationError``: the key is wrong and no reconnect fixes it. Any other failure to connect, and
any connection that ends, is ``GenAuthUnavailableError``: the caller waits and connects again. Frames are bounded
(``max_size``): a larger one closes the connection (1009), which the caller treats like any lost connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote

from service.errors import ConfigurationError
from service.genauth.errors import GenAuthAuthenticationError, GenAuthUnavailableError
from service.genauth.signing import signature

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

SUBSCRIPTION_PATH = "/events/v1/management/sub"
STRING_TO_SIGN = "websocket\n"
"""What every SDK signs for the handshake: the method ``websocket``, no headers, path or parameters."""

EVENT_CODES: dict[str, str] = {
    "user:created": "authing.user.created",
    "user:updated": "authing.user.updated",
    "login": "authing.user.login",
}
"""Webhook event -> the event code GenAuth publishes the same change under. Only the codes the sources name
for these events (docs/genauth.md §5.2: S-EVT, the genauth-docs events page, ``list-events``' example); the
other events the rules need have no documented code, so sweeps (and webhooks, where there are any) cover them."""
EVENT_NAMES: dict[str, str] = {code: event for event, code in EVENT_CODES.items()}
"""Event code -> the webhook event its messages are read as."""

OPEN_TIMEOUT = 10.0
"""Seconds the handshake may take before the attempt counts as failed."""
REFUSED_STATUSES = (401, 403)
HANDSHAKE_BODY_MAX = 500


def authorization(brand: str, key_id: str, secret: str) -> str:
    """The handshake's ``authorization`` value: fixed for a key pair (no date, no nonce), so a secret itself."""
    return f"{brand} {key_id}:{signature(secret, STRING_TO_SIGN)}"


def subscription_url(base: str, code: str) -> str:
    """The URL that subscribes to ``code`` on the event host ``base`` (``wss://events.genauth.ai``)."""
    return f"{base.rstrip('/')}{SUBSCRIPTION_PATH}?code={quote(code, safe='.-_')}"


@asynccontextmanager
async def subscription(
    base: str, code: str, *, brand: str, key_id: str, secret: str, max_size: int
) -> AsyncIterator[ClientConnection]:
    """An open subscription to ``code``; raises ``GenAuthAuthenticationError`` when GenAuth refuses the key and
    ``GenAuthUnavailableError`` for any other failed handshake."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

    try:
        connection = await connect(
            subscription_url(base, code),
            additional_headers={"authorization": authorization(brand, key_id, secret)},
            max_size=max_size,
            open_timeout=OPEN_TIMEOUT,
            compression=None,
            user_agent_header="mfa-enforcer",
        )
    except InvalidStatus as error:
        raise handshake_error(code, error.response.status_code, bytes(error.response.body or b"")) from error
    except (InvalidURI, ValueError) as error:
        raise ConfigurationError(f"GENAUTH_EVENTS_URL={base!r} is not a usable WebSocket URL") from error
    except (WebSocketException, OSError, TimeoutError) as error:
        raise GenAuthUnavailableError(
            SUBSCRIPTION_PATH, f"cannot subscribe to {code}: {type(error).__name__}"
        ) from error
    try:
        yield connection
    finally:
        await connection.close()


def handshake_error(code: str, status: int, body: bytes | None) -> GenAuthAuthenticationError | GenAuthUnavailableError:
    """The error for a handshake GenAuth answered with ``status`` (its JSON body may name an apiCode)."""
    api_code, message = _answer(body)
    problem = f"the subscription to {code} was refused" + (f": {message}" if message else "")
    if status in REFUSED_STATUSES or api_code == 1300:
        return GenAuthAuthenticationError(SUBSCRIPTION_PATH, problem, status_code=status, api_code=api_code)
    return GenAuthUnavailableError(SUBSCRIPTION_PATH, problem, status_code=status, api_code=api_code)


def _answer(body: bytes | None) -> tuple[int | None, str | None]:
    """apiCode and message of a GenAuth-style JSON error body (both None when it is not one)."""
    try:
        data = json.loads((body or b"")[:HANDSHAKE_BODY_MAX])
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    api_code = data.get("apiCode")
    message = data.get("message")
    return (
        api_code if isinstance(api_code, int) and not isinstance(api_code, bool) else None,
        message if isinstance(message, str) else None,
    )
