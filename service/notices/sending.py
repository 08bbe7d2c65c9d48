"""One round of notifications (``mfa-enforcer notify`` and the worker's every ``ENFORCER_NOTIFY_INTERVAL``):
queue what is due now, then send what the outbox holds.

Queueing adds rows keyed by what they are about (``service.store.outbox``): today's admin digest, once per
channel and day, and the ``before`` notices of the deadlines the rollout stores (``deadlines``, given by the
caller; none until the rollout is built). Sending claims due rows under a lease, renders each with its template
and hands it to its channel; a refusal or silence leaves the row with its attempt, error and next due time,
and the next digest lists it. Nothing here runs on the webhook path or inside a job.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from service import metrics
from service.logs import log_event
from service.notices import channels
from service.notices.digests import build_digest
from service.notices.errors import NoticeNotSentError, TemplateError
from service.notices.scheduling import Deadline, before_notices
from service.notices.templates import ADMIN_DIGEST, USER_BEFORE, USER_ON_ENFORCE, Templates
from service.policy import Policy
from service.settings import ChangeBudget, NotifySettings
from service.store import outbox

logger = logging.getLogger(__name__)

DIGEST = "digest"
LEASE_SECONDS = 120.0
BATCH = 50
TEMPLATE_OF = {DIGEST: ADMIN_DIGEST, "before": USER_BEFORE, "on-enforce": USER_ON_ENFORCE}


def digest_key(day: date, channel: str) -> str:
    """The outbox key of the admin digest of ``day`` on ``channel``: at most one a day."""
    return f"admins|-|{DIGEST}|{day.isoformat()}|{channel}"


def no_deadlines(today: date) -> Iterable[Deadline]:
    """The deadline source until the rollout stores per-user deadlines: none."""
    return ()


@dataclass(frozen=True)
class Round:
    """What one round did."""

    queued: int = 0
    sent: int = 0
    failed: int = 0


@dataclass
class Notifier:
    """Queues and sends notices with one process's settings; safe to run in several processes at once."""

    engine: sa.Engine
    settings: NotifySettings
    policy_getter: Callable[[], Policy]
    change_budget: ChangeBudget = field(default_factory=ChangeBudget)
    unresolved: Callable[[], Sequence[str]] = lambda: ()
    """The names the rules use that GenAuth does not know, for the digest (asked once per digest)."""
    deadlines: Callable[[date], Iterable[Deadline]] = no_deadlines
    """Every (user, rule, deadline) still ahead, for the ``before`` notices."""
    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:notify")

    def __post_init__(self) -> None:
        self.templates = Templates(self.settings.templates_dir)

    def run(self) -> Round:
        """Queue what is due now, then send every due notice."""
        queued = self.queue_due()
        sent, failed = self.send_due()
        return Round(queued=queued, sent=sent, failed=failed)

    def candidates(self) -> list[outbox.Notice]:
        """The notices due now by the calendar (queued or not: the outbox keeps each key once)."""
        now = self.clock()
        today = _day(now)
        notices = []
        if self.settings.is_on and not self._has_digest(today):
            digest = build_digest(
                self.engine,
                self.policy_getter(),
                today=today,
                now=now,
                change_budget=self.change_budget,
                unresolved=self.unresolved,
            )
            fields = digest.as_fields() | {"headline": digest.headline}
            if self.settings.webhook_url:
                notices.append(
                    outbox.Notice(digest_key(today, outbox.WEBHOOK), DIGEST, outbox.WEBHOOK, "webhook", fields)
                )
            if self.settings.can_email and self.settings.admins:
                recipients = ",".join(self.settings.admins)
                notices.append(outbox.Notice(digest_key(today, outbox.EMAIL), DIGEST, outbox.EMAIL, recipients, fields))
        if self.settings.can_email:
            notices += before_notices(self.deadlines(today), self.policy_getter(), today=today)
        return notices

    def queue_due(self) -> int:
        """Add the notices due now to the outbox; returns how many were new."""
        notices = self.candidates()
        with self.engine.begin() as connection:
            added = outbox.add(connection, notices, now=self.clock())
        if added:
            log_event(logger, "notices_queued", count=added)
        return added

    def preview(self) -> list[dict[str, Any]]:
        """What a round would send now, without queueing or sending anything (``notify --dry-run``): the notices
        already due in the outbox and the new ones the calendar calls for."""
        shown = outbox.due(self.engine, now=self.clock())
        known = {row["key"] for row in shown}
        candidates = self.candidates()
        with self.engine.connect() as connection:
            known |= outbox.known_keys(connection, [n.key for n in candidates])
        shown += [
            {"key": n.key, "kind": n.kind, "channel": n.channel, "recipient": n.recipient, "attempts": 0, "new": True}
            for n in candidates
            if n.key not in known
        ]
        return shown

    def send_due(self) -> tuple[int, int]:
        """Send every notice due now, a batch at a time; returns (sent, failed)."""
        sent = failed = 0
        while True:
            batch = outbox.claim(
                self.engine, owner=self.owner, limit=BATCH, lease_seconds=LEASE_SECONDS, now=self.clock()
            )
            for notice in batch:
                if self._send(notice):
                    sent += 1
                else:
                    failed += 1
            if len(batch) < BATCH:
                return sent, failed

    def _send(self, notice: outbox.Claimed) -> bool:
        try:
            self._deliver(notice)
        except (NoticeNotSentError, TemplateError) as error:
            now = self.clock()
            state = outbox.mark_failed(
                self.engine,
                notice,
                owner=self.owner,
                error=error.message,
                due_at=now + outbox.retry_delay(notice.attempts),
            )
            result = "failed" if state == outbox.FAILED else "retry_scheduled"
            metrics.NOTICES.labels(kind=notice.kind, channel=notice.channel, result=result).inc()
            log_event(
                logger,
                "notice_not_sent",
                level=logging.WARNING,
                kind=notice.kind,
                channel=notice.channel,
                attempts=notice.attempts,
                result=result,
                error=error.message,
            )
            return False
        outbox.mark_sent(self.engine, notice, owner=self.owner, now=self.clock())
        metrics.NOTICES.labels(kind=notice.kind, channel=notice.channel, result="sent").inc()
        log_event(logger, "notice_sent", kind=notice.kind, channel=notice.channel, notice_id=notice.id)
        return True

    def _deliver(self, notice: outbox.Claimed) -> None:
        values = _values(notice)
        rendered = self.templates.render(TEMPLATE_OF[notice.kind], values)
        timeout = self.settings.timeout
        if notice.channel == outbox.WEBHOOK:
            if not self.settings.webhook_url:
                raise NoticeNotSentError("ENFORCER_NOTIFY_WEBHOOK is no longer set")
            payload = {"text": f"{rendered.subject}\n\n{rendered.body}", "kind": notice.kind, **dict(notice.fields)}
            channels.post_webhook(self.settings.webhook_url, payload, timeout=timeout)
            return
        if self.settings.smtp is None or not self.settings.sender:
            raise NoticeNotSentError("e-mail is no longer configured (ENFORCER_SMTP_URL, ENFORCER_NOTIFY_FROM)")
        channels.send_email(
            self.settings.smtp,
            sender=self.settings.sender,
            to=notice.recipient.split(","),
            subject=rendered.subject,
            body=rendered.body,
            timeout=timeout,
        )

    def _has_digest(self, today: date) -> bool:
        keys = [digest_key(today, channel) for channel in (outbox.WEBHOOK, outbox.EMAIL)]
        wanted = [
            key
            for key, on in zip(
                keys,
                (bool(self.settings.webhook_url), self.settings.can_email and bool(self.settings.admins)),
                strict=True,
            )
            if on
        ]
        with self.engine.connect() as connection:
            return set(wanted) <= outbox.known_keys(connection, wanted)


def _day(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def _values(notice: outbox.Claimed) -> dict[str, str]:
    """The template's placeholders: the row's fields as text (the digest's sections as lines)."""
    fields = dict(notice.fields)
    if notice.kind == DIGEST:
        sections = fields.get("sections") or []
        text = "\n\n".join("\n".join([f"## {s['title']}", *(f"- {line}" for line in s["lines"])]) for s in sections)
        return {
            "day": str(fields.get("day", "")),
            "headline": str(fields.get("headline", "")),
            "sections": text or "Nothing needs you today.",
        }
    return {key: str(value) for key, value in fields.items()}
