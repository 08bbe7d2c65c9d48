"""`WebhookDispatcher`: GenAuth's sending side. When the pool changes, every enabled webhook subscribed to the
event gets the delivery, and every attempt is written to that webhook's log (`get-webhook-logs`).

It observes the state's `ChangeFeed`: the body is built while the change is fresh, then a background thread
posts it (one at a time, in order) with GenAuth's headers, the webhook's own secret and its content type
(`application/x-www-form-urlencoded` webhooks get bracket notation, `sender.encode_form_brackets`). A receiver
that is down or slow is a failed attempt in the log, not an error here: `success: false`, no
`responseStatusCode`, and `errorMessage` `ERRTIMEOUT` (the log sample's value) or `ECONNREFUSED`-style codes
(the sender is axios, whose errors carry Node's codes). GenAuth documents no retry policy; the emulator
makes one attempt per delivery. `trigger-webhook` uses the same attempt, synchronously.

`enabled` (the state's `auto_deliver`) switches automatic deliveries off; `wait_until_idle` lets a test wait
until every queued delivery has been attempted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from genauth_emulator.changes import Change
from genauth_emulator.records import log_timestamp
from genauth_emulator.sender import WebhookSender
from genauth_emulator.webhooks import WebhookRegistry

DEFAULT_TIMEOUT = 10.0
_BODY_MAX = 2000
_IDLE_EXIT_SECONDS = 2.0  # an idle dispatcher thread ends; the next delivery starts another


@dataclass(frozen=True)
class _Delivery:
    webhook: dict[str, Any]
    body: dict[str, Any]


def attempt(
    webhook: Mapping[str, Any],
    body: Mapping[str, Any],
    *,
    userpool_id: str,
    timeout: float,
    now: Callable[[], float],
    extra_headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
) -> tuple[dict[str, Any], Any]:
    """Deliver `body` to the webhook once; return its `WebhookLogDto` and what the receiver answered."""
    encoding = "json" if webhook["contentType"] == "application/json" else "form-brackets"
    sender = WebhookSender(webhook["url"], webhook.get("secret") or "", userpool_id, timeout=timeout, session=session)
    text, headers = sender.prepare(body, encoding=encoding, extra_headers=extra_headers)
    log: dict[str, Any] = {
        "webhookId": webhook["webhookId"],
        "eventName": str(body.get("eventName", "test")),
        "requestBody": dict(body),
        "requestHeaders": headers,
        "timestamp": log_timestamp(now()),
    }
    answer: Any = None
    with sender:
        try:
            response = sender.post(text, headers)
        except requests.Timeout:
            log.update(_no_response("ERRTIMEOUT"))
        except requests.ConnectionError as error:
            log.update(_no_response(_connection_code(error)))
        except requests.RequestException as error:
            log.update(_no_response(type(error).__name__))
        else:
            answer = _answer_of(response)
            log.update(
                success=200 <= response.status_code < 300,
                responseStatusCode=response.status_code,
                responseHeaders=dict(response.headers),
                responseBody=answer,
            )
            if not log["success"]:
                log["errorMessage"] = f"Request failed with status code {response.status_code}"
    return log, answer


class WebhookDispatcher:
    """Queues deliveries for the webhooks a change concerns and attempts them on one background thread."""

    def __init__(
        self,
        registry: WebhookRegistry,
        *,
        userpool_id: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._userpool_id = userpool_id
        self._clock = clock
        self.enabled = True
        """Deliver automatically when the pool changes (the state's `auto_deliver`)."""
        self.timeout = DEFAULT_TIMEOUT
        """Seconds to wait for a receiver before logging `ERRTIMEOUT`."""
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def observe(self, change: Change) -> None:
        """Queue the change's delivery for every enabled webhook subscribed to its event."""
        if not self.enabled:
            return
        targets = self._registry.subscribed(change.event)
        if not targets:
            return
        body = change.body()
        with self._idle:
            self._pending += len(targets)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="genauth-emulator-webhooks", daemon=True)
                self._thread.start()
        for webhook in targets:
            self._queue.put(_Delivery(webhook=webhook, body=body))

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery has been attempted and logged; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight."""
        with self._idle:
            return self._pending

    def _run(self) -> None:
        session = requests.Session()
        try:
            while True:
                try:
                    delivery = self._queue.get(timeout=_IDLE_EXIT_SECONDS)
                except queue.Empty:
                    with self._idle:
                        if not self._pending:  # nothing is about to be queued: let the thread go
                            self._thread = None
                            return
                    continue
                try:
                    log, _ = attempt(
                        delivery.webhook,
                        delivery.body,
                        userpool_id=self._userpool_id(),
                        timeout=self.timeout,
                        now=self._clock,
                        session=session,
                    )
                    self._registry.add_log(delivery.webhook["webhookId"], log)
                except Exception:  # noqa: S110 - a broken delivery must not stop the ones after it
                    pass
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            session.close()


def _no_response(error_message: str) -> dict[str, Any]:
    return {
        "success": False,
        "responseStatusCode": None,
        "responseHeaders": {},
        "responseBody": None,
        "errorMessage": error_message,
    }


def _connection_code(error: requests.ConnectionError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "ECONNREFUSED"
    if "reset" in text or "aborted" in text:
        return "ECONNRESET"
    if "name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "ENOTFOUND"
    return "ECONNREFUSED" if "connect" in text else "ECONNRESET"


def _answer_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:_BODY_MAX]
