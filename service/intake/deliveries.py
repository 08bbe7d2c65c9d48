"""From a webhook body to the ``Delivery`` the inbox records: the one path every delivery takes, whether it came
in live (``service.intake.views``) or was read back from GenAuth's delivery log (``service.intake.recovery``).

Keeping it in one place is the point: a delivery recovered from the log is parsed with the same bounds, validated
by the same schemas, checked against the same pool and subject limits, and reduced to the same ids and keyed
digest as if it had arrived, so a recovered event record cannot differ from a live one.

With GENAUTH_USERPOOL_ID set the pool check fails closed: a delivery is refused (403) when any pool header or any
pool id in its body names another pool, and also when it names no pool at all; ``test`` deliveries (which change
nothing) are the one exception and are accepted without a pool, so a console or ``webhooks test`` check works
through proxies that drop the header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from service.intake.errors import ForbiddenPoolError, InvalidDeliveryError, MissingPoolError, TooManySubjectsError
from service.intake.parsing import decode_body
from service.intake.schemas import TEST_EVENT, Interpretation, interpret
from service.logs import log_event
from service.settings import WebhookSettings
from service.store.inbox import Delivery
from service.store.keys import body_digest

logger = logging.getLogger(__name__)

POOL_HEADERS = ("x-authing-userpool-id", "x-genauth-userpool-id")
MAX_POOL_ID = 64


def interpret_body(mimetype: str, raw: bytes, *, settings: WebhookSettings, reads_departments: bool) -> Interpretation:
    """The event a body is and the subjects it names; raises the intake's ``HttpError``s for a body that does not
    parse or validate. An event that changes the organisation tree is ``ignored`` while no rule reads departments
    (``reads_departments``): as if not subscribed."""
    body = decode_body(mimetype, raw, max_values=settings.max_values)
    interpretation = interpret(body)
    if interpretation.changes_tree and not reads_departments:
        interpretation = interpretation.ignored()
    return interpretation


def accepted_delivery(
    interpretation: Interpretation,
    raw: bytes,
    mimetype: str,
    *,
    header: Callable[[str], str | None],
    settings: WebhookSettings,
    pool_key: str,
    digest_key: bytes,
) -> Delivery:
    """What the inbox records of an interpreted delivery, once its pool (``header`` looks up a request header by
    its lower-case name) and its number of subjects are checked; raises ``ForbiddenPoolError``,
    ``InvalidDeliveryError`` or ``TooManySubjectsError``."""
    _check_pool(settings, interpretation, header)
    count = len(interpretation.subjects)
    if count > settings.max_subjects:
        raise TooManySubjectsError(
            f"the delivery names {count} subjects and at most {settings.max_subjects} are accepted "
            "(ENFORCER_MAX_SUBJECTS); nothing was stored, and a reconcile will find these users"
        )
    return Delivery(
        event_name=interpretation.event_name,
        userpool_id=pool_key,
        subjects=interpretation.subjects,
        digest=body_digest(digest_key, raw),
        content_type=mimetype,
        outcome=interpretation.outcome,
        changes_tree=interpretation.changes_tree,
    )


def _check_pool(settings: WebhookSettings, interpretation: Interpretation, header: Callable[[str], str | None]) -> None:
    """Refuse a delivery for another pool, or (with GENAUTH_USERPOOL_ID set) one that names no pool."""
    # One value per name: the WSGI server joins a repeated header into one (a cheap lookup, where getlist walks
    # every header of the request).
    header_pools = [value for name in POOL_HEADERS if (value := header(name))]
    # Header values are only compared, never stored or logged, so any text is fine; only the length is bounded.
    if any(len(value) > MAX_POOL_ID for value in header_pools):
        raise InvalidDeliveryError("the user-pool header is too long", errors={"x-authing-userpool-id": ["Too long."]})
    expected = settings.userpool_id
    if not expected:
        return
    pools = {*header_pools, *interpretation.userpool_ids}
    if pools - {expected}:
        log_event(logger, "webhook_wrong_userpool", level=logging.WARNING, event_name=interpretation.event_name)
        raise ForbiddenPoolError()
    if not pools and interpretation.event_name != TEST_EVENT:
        log_event(logger, "webhook_userpool_missing", level=logging.WARNING, event_name=interpretation.event_name)
        raise MissingPoolError()
