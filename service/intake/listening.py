"""Pull intake: events from GenAuth's event WebSocket, for a deployment GenAuth cannot reach with a webhook.

``mfa-enforcer listen`` (``service.cli.listening``) runs one ``Listener``: one subscription per event code
(``service.genauth.events``), each reconnecting forever with exponential backoff and jitter (``backoff_delay``;
the Node SDK gives up after five tries, the Python SDK never retries). Every message goes through the webhook's
own intake (``service.intake.deliveries``: the same bounded parse, subject extraction, pool check, event record
and work rows), so the worker cannot tell the two doors apart; its event record says ``websocket`` where a
delivery's says its content type.

No source defines a message's body (docs/genauth.md §5.2), so every shape the sources allow is read
(``webhook_body``): the user as a JSON object, that object JSON-encoded again (a JSON string), or an envelope
``{"eventType", "eventData"}`` with the data as a string or an object; a webhook body (``eventName``) is taken as
it is. A message it cannot read is counted (``mfa_enforcer_listen_messages_total{outcome="unreadable"}``) and
logged by its size and why, never its body, and the subscription carries on. A frame over
``ENFORCER_MAX_BODY_BYTES`` closes the connection (the library refuses it, 1009), which then reconnects.

A WebSocket delivers only while connected and nothing says what was missed, so after every connection (the
first one too: a listener that was not running missed events) the listener asks its ``catch_up`` hook, once
for the codes that (re)connected together and again until it succeeds; the command wires that hook
(``service.cli.listening``). GenAuth refusing the key at the handshake stops the listener
(``GenAuthAuthenticationError``): no reconnect fixes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from service import metrics
from service.background import backoff_delay
from service.errors import ServiceError
from service.genauth.errors import GenAuthAuthenticationError, GenAuthError
from service.genauth.events import EVENT_NAMES, subscription
from service.intake.deliveries import POOL_HEADERS, accepted_delivery, interpret_body
from service.intake.errors import (
    ForbiddenPoolError,
    HttpError,
    MissingPoolError,
    StoreUnavailableError,
    TooManySubjectsError,
)
from service.intake.parsing import decode_body
from service.intake.schemas import SUBJECT_SCHEMAS, UserInData, UserIsData
from service.logs import log_event
from service.policy.facts import Fact
from service.policy.rules import Policy
from service.settings import Settings
from service.store.errors import GroupCommitTimeoutError
from service.store.inbox import Inbox

logger = logging.getLogger(__name__)

CONTENT_TYPE = "websocket"
"""What an event record taken from the socket says in ``content_type``."""
JSON = "application/json"
REFUSALS = (ForbiddenPoolError.reason, MissingPoolError.reason, TooManySubjectsError.reason)
"""Readable messages the intake refuses (counted under their reason); anything else it refuses is unreadable."""
SETTLE = 0.2
"""Seconds the catch-up waits after a connection, so the codes that reconnect together share one catch-up."""


class UnreadableMessageError(ServiceError, reason="unreadable"):
    """The message is none of the shapes an event message may have."""


def webhook_body(code: str, message: str | bytes, *, max_values: int) -> Any:
    """The message as the webhook body it stands for; ``UnreadableMessageError`` or the parser's own errors
    (``HttpError``) when it is none of the shapes. Every JSON text inside is parsed with the webhook's bounds."""
    value = _json(message, max_values)
    if isinstance(value, str):  # the object JSON-encoded again
        value = _json(value, max_values)
    if not isinstance(value, dict):
        raise UnreadableMessageError("the message is not a JSON object")
    if "eventName" in value:
        return value  # already a webhook body
    if "eventType" in value and "eventData" in value:
        event_type, value = value["eventType"], value["eventData"]
        if isinstance(event_type, str) and event_type in EVENT_NAMES:
            code = event_type
        if isinstance(value, str):
            value = _json(value, max_values)
        if not isinstance(value, dict):
            raise UnreadableMessageError("the envelope's eventData is not a JSON object")
        if "eventName" in value:
            return value
    event = EVENT_NAMES.get(code)
    if event is None:
        raise UnreadableMessageError("no webhook event is known for the message's event code")
    return envelope(event, value)


def envelope(event: str, user: dict[str, Any]) -> dict[str, Any]:
    """The webhook body of ``event`` about ``user``: where the event's schema looks for its user."""
    schema = SUBJECT_SCHEMAS[event]
    if schema is UserIsData:
        return {"eventName": event, "data": user}
    if schema is UserInData:
        return {"eventName": event, "data": {"user": user}}
    raise UnreadableMessageError("the event does not name one user")


def _json(text: str | bytes, max_values: int) -> Any:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return decode_body(JSON, raw, max_values=max_values)


class Listener:
    """The subscriptions of one process, their reconnects, and the catch-up after each connection."""

    def __init__(
        self,
        settings: Settings,
        inbox: Inbox,
        digest_key: bytes,
        policy_getter: Callable[[], Policy],
        codes: Sequence[str],
        *,
        catch_up: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.inbox = inbox
        self.digest_key = digest_key
        self.policy_getter = policy_getter
        self.codes = tuple(dict.fromkeys(codes))
        self.catch_up = catch_up
        self.started = time.time()
        self.last_message: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._stopping = asyncio.Event()
        self._needs_catch_up = asyncio.Event()

    # -- running

    def run(self) -> None:
        """Listen until ``stop``; raises ``GenAuthAuthenticationError`` when GenAuth refuses the key."""
        for code in self.codes:
            metrics.LISTEN_SILENCE.labels(code=code).set_function(self._silence(code))
        asyncio.run(self._main())

    def stop(self) -> None:
        """Ask ``run`` to return (from any thread or a signal handler): open subscriptions are closed."""
        self._stop_requested = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:  # asked before the loop existed
            self._stopping.set()
        tasks = [asyncio.create_task(self._subscribe_forever(code), name=code) for code in self.codes]
        tasks.append(asyncio.create_task(self._catch_up_when_asked(), name="catch-up"))
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    task.result()  # a refused key ends every subscription
        finally:
            for task in [stopping, *tasks]:
                task.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)

    async def _subscribe_forever(self, code: str) -> None:
        from websockets.exceptions import ConnectionClosed

        listen = self.settings.listen
        failures = 0
        while True:
            try:
                async with subscription(
                    listen.events_url,
                    code,
                    brand=listen.brand,
                    key_id=self.settings.genauth.access_key_id,
                    secret=self.settings.genauth.access_key_secret,
                    max_size=self.settings.webhook.max_body_bytes,
                ) as connection:
                    failures = 0
                    metrics.LISTEN_CONNECTS.labels(code=code, result="connected").inc()
                    log_event(logger, "listen_connected", code=code)
                    self._needs_catch_up.set()
                    try:
                        async for message in connection:
                            await asyncio.to_thread(self.take, code, message)
                    except ConnectionClosed:
                        pass  # an oversized frame (1009), a reset, a server gone: reconnect, as after a clean close
                    self._lost(code, connection.close_code)
            except GenAuthAuthenticationError:
                metrics.LISTEN_CONNECTS.labels(code=code, result="failed").inc()
                raise
            except GenAuthError as error:
                metrics.LISTEN_CONNECTS.labels(code=code, result="failed").inc()
                log_event(logger, "listen_connect_failed", level=logging.WARNING, code=code, error=str(error))
            failures += 1
            delay = backoff_delay(failures, listen.backoff_base, listen.backoff_max)
            log_event(logger, "listen_reconnect_scheduled", code=code, attempt=failures, delay=round(delay, 2))
            await asyncio.sleep(delay)

    def _lost(self, code: str, close_code: int | None) -> None:
        metrics.LISTEN_CONNECTS.labels(code=code, result="lost").inc()
        log_event(logger, "listen_connection_lost", level=logging.WARNING, code=code, close_code=close_code)

    async def _catch_up_when_asked(self) -> None:
        listen = self.settings.listen
        failures = 0
        while True:
            await self._needs_catch_up.wait()
            await asyncio.sleep(SETTLE)
            self._needs_catch_up.clear()
            try:
                await asyncio.to_thread(self.catch_up)
            except Exception as error:  # the database or GenAuth down: the gap is caught up once they answer
                failures += 1
                log_event(
                    logger,
                    "listen_catch_up_failed",
                    level=logging.WARNING,
                    error_type=type(error).__name__,
                    error=str(error)[:200],
                )
                self._needs_catch_up.set()
                await asyncio.sleep(backoff_delay(failures, listen.backoff_base, listen.backoff_max))
            else:
                failures = 0

    # -- one message

    def take(self, code: str, message: str | bytes) -> str:
        """Take one message through the intake; returns its outcome (also counted, and logged without the body)."""
        self.last_message[code] = time.time()
        raw = message.encode("utf-8", "surrogatepass") if isinstance(message, str) else message
        webhook = self.settings.webhook
        try:
            body = webhook_body(code, raw, max_values=webhook.max_values)
            # The body the message stands for goes through the webhook's own path; the digest is of what arrived.
            interpretation = interpret_body(
                JSON,
                json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"),
                settings=webhook,
                reads_departments=Fact.DEPARTMENTS in self.policy_getter().needs,
            )
            delivery = accepted_delivery(
                interpretation,
                raw,
                CONTENT_TYPE,
                header=self._header,
                settings=webhook,
                pool_key=self.settings.pool_key,
                digest_key=self.digest_key,
            )
            event_id = self.inbox.record(delivery, now=time.time())
        except (sa.exc.SQLAlchemyError, GroupCommitTimeoutError) as error:
            outcome = StoreUnavailableError.reason
            log_event(
                logger, "listen_event_not_recorded", level=logging.ERROR, code=code, error_type=type(error).__name__
            )
            self._ask_catch_up()  # the database did not take it: the catch-up finds the user once it does
        except (UnreadableMessageError, HttpError) as error:
            outcome = error.reason if error.reason in REFUSALS else "unreadable"
            log_event(
                logger,
                "listen_message_unreadable" if outcome == "unreadable" else "listen_message_refused",
                level=logging.WARNING,
                code=code,
                reason=error.reason,
                size=len(raw),
            )
        else:
            outcome = delivery.outcome
            users = sum(subject.is_user for subject in delivery.subjects)
            log_event(
                logger,
                "listen_event_received",
                event_id=event_id,
                event_name=delivery.event_name,
                outcome=outcome,
                users=users,
                expansions=len(delivery.subjects) - users,
            )
        metrics.LISTEN_MESSAGES.labels(code=code, outcome=outcome).inc()
        return outcome

    def _header(self, name: str) -> str | None:
        """The subscription is signed with the pool's key: it names the pool as a delivery's header does."""
        return self.settings.webhook.userpool_id if name == POOL_HEADERS[0] else None

    def _ask_catch_up(self) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._needs_catch_up.set)

    def _silence(self, code: str) -> Callable[[], float]:
        return lambda: time.time() - self.last_message.get(code, self.started)
