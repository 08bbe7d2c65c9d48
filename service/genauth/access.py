"""Does GenAuth take this deployment's access key? Asked when a process that runs workers starts, so a wrong key
or ``GENAUTH_HOST`` is said in one line at start rather than found in the first failed job.

What a process does with the answer depends on what it is (docs/architecture.md, principle 11: intake needs
only the database):

- a process that takes deliveries (``serve``, gunicorn, with ``ENFORCER_RUN_WORKER``) starts whatever the
  answer. ``GenAuthAccess`` logs one line (``genauth_access_refused`` or ``genauth_unreachable``), ``/readyz``
  shows it as ``genauth`` / ``genauth_warning`` without making the process unready, and the question is asked
  again every ``GENAUTH_CIRCUIT_COOLDOWN`` seconds (30) until GenAuth takes the key. Its workers keep
  retrying meanwhile; while every call fails, the circuit breaker (``service.genauth.circuit``) pauses them.
- the standalone ``mfa-enforcer worker`` exits 1 with one line when the key is refused (a configuration
  error that no retry fixes), and starts and waits when GenAuth is only unreachable (an outage must not
  crash-loop workers).

A request signature GenAuth refuses (``GENAUTH_AUTH=signature``) is a refused key like a refused token, except
for a clock too far from GenAuth's, which ``failure_line`` names instead of the key.

``failure_line`` is the one wording of both problems; commands (``explain``, ``reconcile`` …) print it too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from service.background import Repeating
from service.errors import PermanentError, ServiceError
from service.genauth.circuit import CircuitBreaker
from service.genauth.client import GenAuthClient
from service.genauth.errors import GenAuthAuthenticationError, GenAuthUnavailableError
from service.genauth.signing import CLOCK_SKEW_API_CODE
from service.logs import log_event

logger = logging.getLogger(__name__)

OK, REFUSED, UNREACHABLE, UNCHECKED = "ok", "refused", "unreachable", "unchecked"
ACCESS_EXTENSION = "mfa_enforcer_genauth_access"
"""Where ``create_app`` keeps the ``GenAuthAccess`` of a web process that runs workers (read by /readyz)."""
PROBE_PATH = "/api/v3/list-organizations"


def failure_line(error: BaseException) -> str | None:
    """The one line that says what to fix when GenAuth refused the key or could not be reached (None: neither)."""
    if isinstance(error, GenAuthAuthenticationError) and error.api_code == CLOCK_SKEW_API_CODE:
        return f"GenAuth refused the signed request (check this machine's clock): {error}"
    if isinstance(error, GenAuthAuthenticationError):
        return f"GenAuth refused the access key (check GENAUTH_ACCESS_KEY_ID and GENAUTH_ACCESS_KEY_SECRET): {error}"
    if isinstance(error, GenAuthUnavailableError):
        return f"GenAuth is unreachable or failing (check GENAUTH_HOST, or try again later): {error}"
    return None


@dataclass(frozen=True)
class Access:
    """GenAuth's answer to the access key: ``OK``, ``REFUSED``, ``UNREACHABLE`` or ``UNCHECKED`` (not asked yet)."""

    state: str
    message: str | None = None
    """The one line to show (None when ``OK``)."""


def check_access(client: GenAuthClient) -> Access:
    """Ask GenAuth once. Any answer to the probe, a refusal of this one request (a missing permission) too,
    means the key works; only a refused key or no answer at all is a problem."""
    try:
        client.call("GET", PROBE_PATH, params={"page": "1", "limit": "1"})
    except GenAuthAuthenticationError as error:
        return Access(REFUSED, failure_line(error))
    except PermanentError:
        return Access(OK)
    except ServiceError as error:
        return Access(UNREACHABLE, failure_line(error) or f"GenAuth did not answer: {error}")
    return Access(OK)


def log_access(access: Access, *, what: str) -> None:
    """The one log line for a problem (``what`` says what goes on regardless), or that GenAuth takes the key."""
    if access.state == OK:
        log_event(logger, "genauth_access_ok")
        return
    event = "genauth_access_refused" if access.state == REFUSED else "genauth_unreachable"
    log_event(logger, event, level=logging.WARNING, problem=access.message, then=what)


def readiness(access: Access, breaker: CircuitBreaker | None) -> dict[str, str]:
    """What ``/readyz`` shows about GenAuth: ``genauth`` (``ok``, ``unchecked``, ``refused``, ``unreachable``, or
    ``unavailable`` while the circuit breaker is open) and, for a problem, ``genauth_warning``. Never a reason to
    be unready: deliveries are taken whatever GenAuth does."""
    if access.state in (REFUSED, UNREACHABLE):
        warning = f"{access.message}; deliveries are still taken, the workers retry until GenAuth takes the key"
        return {"genauth": access.state, "genauth_warning": warning}
    if breaker is not None and breaker.is_open():
        return {
            "genauth": "unavailable",
            "genauth_warning": "GenAuth calls keep failing: the workers wait (circuit breaker open) and resume "
            "when it answers; deliveries are still taken",
        }
    return {"genauth": access.state}


@dataclass
class GenAuthAccess(Repeating):
    """Keeps GenAuth's answer to the key up to date in a daemon thread of a web process that runs workers: asked
    at start, then every ``interval`` seconds until it is ``OK`` (later outages are the circuit breaker's)."""

    thread_name = "mfa-enforcer-genauth-access"
    crash_event = "genauth_access_check_crashed"
    client: GenAuthClient
    interval: float = 30.0
    """Seconds between checks while GenAuth refuses the key or cannot be reached."""
    clock: Callable[[], float] = time.monotonic
    access: Access = field(default_factory=lambda: Access(UNCHECKED))

    def tick(self) -> bool:
        """Ask GenAuth now; log the answer when it differs from the last one. True once GenAuth takes the key."""
        found = check_access(self.client)
        if found.state != self.access.state:
            log_access(found, what="the service takes deliveries; its workers retry until GenAuth takes the key")
        self.access = found
        return found.state == OK

    def close(self) -> None:
        self.client.close()
