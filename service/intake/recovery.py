"""Gap recovery: take in the deliveries the service missed, from GenAuth's own delivery log.

GenAuth documents no retry for webhooks (docs/genauth.md §3.14): a delivery made while the service was down,
redeployed or unreachable is logged by GenAuth as failed and never sent again, and until now only a full sweep
found the users it named. GenAuth keeps a log of every attempt per webhook (``get-webhook-logs``, newest first,
each entry with the request body it sent), so ``recover_gap`` reads the log of each webhook the service manages,
page by page, back to the newest entry it read last time (``service.store.webhook_log``), and takes every entry
that has no event record through the same path a live delivery takes (``service.intake.deliveries``): the same
parsing bounds, validation and subject extraction, the same event record and work rows, in one transaction with
the new position. Nothing of the log is kept beyond what a live delivery keeps (ids and a keyed digest).

Counted once: an entry whose body digest (``service.store.keys``) is already in ``events`` was recorded live (a
delivery GenAuth logged as a timeout may still have been recorded) and is a duplicate. The digest of a live
delivery is of the bytes received; a logged entry's body is an object, so it is encoded as GenAuth's sender
(Node's ``JSON.stringify``) encodes it: compact, keys in their order, non-ASCII as is. That reproduces the bytes of
a JSON webhook, the kind ``webhooks subscribe`` makes; a form-encoded webhook's entries may be recorded twice (the
work is harmless: it coalesces).

Bounded: at most ``max_pages`` pages a read (a log that pages without end stops there, and the log line says
so); an entry that does not validate is counted and skipped, and the position moves past it, so it is never read
again. Entries logged at the very millisecond of the stored position after the last read are not read (the log
has no entry id to tell them apart, docs/genauth.md §5.5).

``PeriodicRecovery`` runs it from the worker's loop every ``ENFORCER_RECOVER_INTERVAL`` seconds and right after
the process starts; ``mfa-enforcer webhooks recover`` runs it once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from service import metrics
from service.errors import ServiceError
from service.genauth.client import GenAuthClient, Json
from service.genauth.paging import MAX_PAGES, PAGE_LIMIT, Page
from service.genauth.webhooks import is_managed, list_webhooks, log_page
from service.intake.deliveries import accepted_delivery, interpret_body
from service.intake.errors import HttpError, InvalidDeliveryError
from service.intake.parsing import JSON_TYPES
from service.intake.schemas import TEST_EVENT
from service.logs import log_event
from service.policy.facts import Fact
from service.policy.rules import Policy
from service.settings import Settings
from service.store.inbox import Delivery, write_deliveries
from service.store.webhook_log import finish_read, recorded_digests, release_read, stored_read, take_read

logger = logging.getLogger(__name__)

MAX_LOG_PAGES = 100
"""Pages of 50 entries one read goes back at most (5,000 deliveries)."""
LEASE_SECONDS = 600.0
"""How long a read keeps other processes off the same log; a crashed reader's lease runs out after it."""
FAILURE_PAUSE = 60.0
"""Seconds before the worker tries again after a read that failed (at most the interval)."""


@dataclass(frozen=True)
class Recovery:
    """What one ``recover_gap`` did (or, in a dry run, would do)."""

    webhooks: int = 0
    """Webhooks of ours whose log was read (0 and ``busy`` 0: the pool has no webhook of ours)."""
    busy: int = 0
    """Webhooks of ours whose log another process was reading (skipped: that read takes the gap in)."""
    read: int = 0
    """Log entries newer than the stored position."""
    recovered: int = 0
    """Deliveries recorded from the log (the event record and work rows a live delivery makes)."""
    skipped_invalid: int = 0
    """Entries whose body did not validate, counted and skipped."""
    duplicates: int = 0
    """Entries already recorded (live, or read twice as the log moved between pages)."""
    last_position: float | None = None
    """Epoch seconds of the newest entry read: where the next read stops (None: nothing read yet)."""
    capped: bool = False
    """The read stopped at ``max_pages`` before reaching the stored position."""

    def as_json(self) -> dict[str, Any]:
        return {
            "webhooks": self.webhooks,
            "busy": self.busy,
            "read": self.read,
            "recovered": self.recovered,
            "skippedInvalid": self.skipped_invalid,
            "duplicates": self.duplicates,
            "lastPosition": self.last_position,
            "capped": self.capped,
        }


def recover_gap(
    engine: sa.Engine,
    client: GenAuthClient,
    *,
    settings: Settings,
    digest_key: bytes,
    policy: Policy,
    since: float | None = None,
    dry_run: bool = False,
    max_pages: int = MAX_LOG_PAGES,
    now: Callable[[], float] = time.time,
) -> Recovery:
    """Read the delivery log of every webhook of ours and record what the service missed.

    ``engine``: the service's database (read and written); ``client``: a GenAuth client (its typed errors,
    ``service.genauth.errors``, propagate; the lease is released first); ``settings``: the service's (the webhook
    limits and pool of the live intake, and ``pool_key``); ``digest_key``: the key of ``events.digest``
    (``service.store.keys.deployment_key``); ``policy``: the rules in force (whether tree events are acted on, as
    live); ``since``: read back to this time (epoch seconds) instead of the stored position; ``dry_run``: count
    what would be recovered, write nothing and take no lease; ``max_pages``: the page cap of each log.

    Returns the sums over the webhooks. A webhook whose log another process is reading is skipped and counted in
    ``busy``; ``webhooks == busy == 0`` means the pool has no webhook of ours (a caller may sweep instead).
    """
    totals = Recovery()
    for webhook in (webhook for webhook in list_webhooks(client) if is_managed(webhook)):
        one = _recover_one(
            engine,
            client,
            webhook.webhook_id,
            settings=settings,
            digest_key=digest_key,
            reads_departments=Fact.DEPARTMENTS in policy.needs,
            since=since,
            dry_run=dry_run,
            max_pages=max_pages,
            now=now,
        )
        if one is None:
            totals = replace(totals, busy=totals.busy + 1)
            continue
        positions = [p for p in (totals.last_position, one.last_position) if p is not None]
        totals = Recovery(
            webhooks=totals.webhooks + 1,
            busy=totals.busy,
            read=totals.read + one.read,
            recovered=totals.recovered + one.recovered,
            skipped_invalid=totals.skipped_invalid + one.skipped_invalid,
            duplicates=totals.duplicates + one.duplicates,
            last_position=max(positions) if positions else None,
            capped=totals.capped or one.capped,
        )
    return totals


def _recover_one(
    engine: sa.Engine,
    client: GenAuthClient,
    webhook_id: str,
    *,
    settings: Settings,
    digest_key: bytes,
    reads_departments: bool,
    since: float | None,
    dry_run: bool,
    max_pages: int,
    now: Callable[[], float],
) -> Recovery | None:
    if dry_run:
        state = stored_read(engine, webhook_id)
    else:
        state = take_read(engine, webhook_id, now=now(), lease_seconds=LEASE_SECONDS)
        if state is None:
            log_event(logger, "webhook_log_busy", webhook_id=webhook_id)
            return None
    position = since if since is not None else (state.position if state is not None else None)
    try:
        entries, capped = _entries_after(client, webhook_id, position, max_pages)
        newest = max((at for at, _ in entries if at is not None), default=None)
        if capped:
            log_event(
                logger,
                "webhook_log_page_cap",
                level=logging.WARNING,
                webhook_id=webhook_id,
                pages=max_pages,
                note="older entries were not read; a reconcile sweep finds their users",
            )
        counts, deliveries = _sort_out(
            engine, entries, settings=settings, digest_key=digest_key, reads_departments=reads_departments
        )
        last = max((p for p in (newest, state.position if state else None) if p is not None), default=None)
        if not dry_run:
            received_at = now()
            with engine.begin() as connection:
                write_deliveries(connection, [(delivery, received_at) for delivery in deliveries])
                finish_read(connection, webhook_id, position=newest, now=received_at, recovered=len(deliveries))
    except BaseException:
        if not dry_run:
            release_read(engine, webhook_id)
        raise
    result = Recovery(
        webhooks=1,
        read=len(entries),
        recovered=len(deliveries),
        skipped_invalid=counts.skipped_invalid,
        duplicates=counts.duplicates,
        last_position=last,
        capped=capped,
    )
    if not dry_run:
        metrics.WEBHOOK_LOG_ENTRIES.labels(result="recovered").inc(result.recovered)
        metrics.WEBHOOK_LOG_ENTRIES.labels(result="duplicate").inc(result.duplicates)
        metrics.WEBHOOK_LOG_ENTRIES.labels(result="invalid").inc(result.skipped_invalid)
    log_event(
        logger,
        "webhook_log_read",
        webhook_id=webhook_id,
        dry_run=dry_run,
        read=result.read,
        recovered=result.recovered,
        skipped_invalid=result.skipped_invalid,
        duplicates=result.duplicates,
        capped=capped,
    )
    return result


def _entries_after(
    client: GenAuthClient, webhook_id: str, position: float | None, max_pages: int
) -> tuple[list[tuple[float | None, Json]], bool]:
    """The log entries newer than ``position`` (all with None), oldest first, and whether the page cap stopped
    the read.

    No source says in which order GenAuth pages its log (docs/genauth.md §5.5), so page 1 decides: newest first
    (the emulator's order), the read goes forward and a page with nothing newer ends it; oldest first, it starts
    at the last page (from ``totalCount``) and goes back the same way. Once a position is stored, an entry without
    a readable ``timestamp`` (required by GenAuth's schema) is passed over, so it cannot make every read run to
    the cap."""
    found: list[tuple[float | None, Json]] = []

    def take(page: Page) -> int:
        newer = [(at, item) for item in page.items if _is_newer(at := _moment(item), position)]
        found.extend(newer)
        return len(newer)

    first = log_page(client, webhook_id, 1)
    newer = take(first)
    oldest_first = _oldest_first(first.items)
    if first.is_last(1) or (not oldest_first and position is not None and not newer):
        return _in_order(found), False
    numbers: range = range(2, MAX_PAGES + 1)
    if oldest_first and first.total is not None:
        numbers = range(-(-first.total // PAGE_LIMIT), 1, -1)
    for read, number in enumerate(numbers, start=2):
        if read > max_pages:
            return _in_order(found), True
        page = log_page(client, webhook_id, number)
        newer = take(page)
        backwards = oldest_first and first.total is not None
        if (position is not None and not newer and (backwards or not oldest_first)) or (
            not backwards and page.is_last(number)
        ):
            return _in_order(found), False
    return _in_order(found), False


def _is_newer(at: float | None, position: float | None) -> bool:
    return position is None or (at is not None and at > position)


def _oldest_first(items: list[Json]) -> bool:
    """Whether a page lists its entries oldest first (its first readable timestamp is the earlier)."""
    moments = [at for at in (_moment(item) for item in items) if at is not None]
    return len(moments) > 1 and moments[0] < moments[-1]


def _in_order(found: list[tuple[float | None, Json]]) -> list[tuple[float | None, Json]]:
    """Oldest first, as they were delivered (entries without a time last)."""
    return sorted(found, key=lambda entry: (entry[0] is None, entry[0] or 0.0))


def _sort_out(
    engine: sa.Engine,
    entries: list[tuple[float | None, Json]],
    *,
    settings: Settings,
    digest_key: bytes,
    reads_departments: bool,
) -> tuple[Recovery, list[Delivery]]:
    """The deliveries to record (oldest first, each once) and the counts of the others."""
    invalid = tests = 0
    candidates: list[Delivery] = []
    for _, item in entries:
        try:
            delivery = _delivery_of(item, settings=settings, digest_key=digest_key, reads_departments=reads_departments)
        except HttpError as error:
            invalid += 1
            log_event(
                logger,
                "webhook_log_entry_invalid",
                level=logging.WARNING,
                event_name=str(item.get("eventName"))[:100],
                at=str(item.get("timestamp"))[:40],
                reason=error.reason,
            )
            continue
        if delivery.event_name == TEST_EVENT:  # changes nothing; a live one is recorded to prove the path works
            tests += 1
            continue
        candidates.append(delivery)
    metrics.WEBHOOK_LOG_ENTRIES.labels(result="test").inc(tests)
    with engine.connect() as connection:
        seen = recorded_digests(connection, {delivery.digest for delivery in candidates})
    chosen: list[Delivery] = []
    for delivery in candidates:
        if delivery.digest not in seen:
            seen.add(delivery.digest)
            chosen.append(delivery)
    return Recovery(skipped_invalid=invalid, duplicates=len(candidates) - len(chosen)), chosen


def _delivery_of(item: Json, *, settings: Settings, digest_key: bytes, reads_departments: bool) -> Delivery:
    """A logged entry as the live intake would have recorded it; the intake's ``HttpError`` when it would have
    refused it."""
    body = item.get("requestBody")
    if isinstance(body, dict):
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raise InvalidDeliveryError("the log entry has no request body")
    webhook = settings.webhook
    if len(raw) > webhook.max_body_bytes:
        raise InvalidDeliveryError(f"the logged body is larger than {webhook.max_body_bytes} bytes")
    mimetype = JSON_TYPES[0]
    interpretation = interpret_body(mimetype, raw, settings=webhook, reads_departments=reads_departments)
    headers = item.get("requestHeaders")
    lowered = {str(k).lower(): v for k, v in headers.items() if isinstance(v, str)} if isinstance(headers, dict) else {}
    return accepted_delivery(
        interpretation,
        raw,
        mimetype,
        header=lowered.get,
        settings=webhook,
        pool_key=settings.pool_key,
        digest_key=digest_key,
    )


def _moment(item: Json) -> float | None:
    """An entry's ``timestamp`` (e.g. ``2022-09-20T08:55:00.188+0800``) as epoch seconds; None if unreadable."""
    text = item.get("timestamp")
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


class PeriodicRecovery:
    """Runs gap recovery from the worker's loop: at the first round (right after the process starts), then every
    ``interval`` seconds (0: never). A failed read is logged and tried again after ``FAILURE_PAUSE``."""

    def __init__(self, run: Callable[[], Recovery], *, interval: float) -> None:
        self.run = run
        self.interval = interval
        self.next_at = 0.0

    def maybe_recover(self, now: float) -> None:
        if self.interval <= 0 or now < self.next_at:
            return
        self.next_at = now + self.interval
        try:
            self.run()
        except (ServiceError, sa.exc.SQLAlchemyError) as error:
            shown = str(error) if isinstance(error, ServiceError) else type(error).__name__
            log_event(
                logger, "webhook_log_read_failed", level=logging.WARNING, error_type=type(error).__name__, error=shown
            )
            self.next_at = now + min(self.interval, FAILURE_PAUSE)
