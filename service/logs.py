"""One structured logging pipeline to stdout: readable lines locally, one JSON object per line in a cluster.

Log records carry a constant snake_case event name as their message and values as fields
(``log_event(logger, "job_retry_scheduled", job_id=7, delay=4.2)``). Fields bound with ``bind`` (request id,
job id) are added to every line logged inside the block. Callers log identifiers, never payloads or secrets.

Values can come from a client (a request path, a header, a library's message quoting a bad request line), so
neither format lets one forge or hide lines: characters that end a line, move the cursor or reorder text on
a terminal (C0 and C1 controls, DEL, U+2028/2029, the bidirectional overrides and isolates, zero-width
characters) are written as ``\\uXXXX`` escapes. JSON already escapes C0 controls; the others are legal in a
JSON string, but ``str.splitlines`` breaks a line at U+2028 and U+0085, so they are escaped too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

_HANDLER_NAME = "mfa-enforcer"
UNSAFE_CHARACTERS = (
    # Characters that can end a line, or hide or reorder text on a terminal. Ids refuse them too (intake).
    "\x00-\x1f\x7f-\x9f"  # C0, DEL, C1 (U+0085 ends a line for str.splitlines)
    "\u061c\u200b-\u200f"  # Arabic letter mark; zero-width space, joiners; left-to-right/right-to-left marks
    "\u2028-\u202e"  # line and paragraph separators; bidirectional embeddings and overrides
    "\u2060-\u2069"  # word joiner, invisible operators; bidirectional isolates
    "\ufeff"  # zero-width no-break space (byte order mark)
)
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# In console values a space or a quote also makes the value quoted, so that fields stay apart.
_NEEDS_QUOTES = re.compile(f'[ "\\\\{UNSAFE_CHARACTERS}]')
_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("log_fields", default=None)


def log_event(logger: logging.Logger, event: str, /, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with ``fields``."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every line logged in this block (in this thread or task)."""
    token = _bound.set({**(_bound.get() or {}), **fields})
    try:
        yield
    finally:
        _bound.reset(token)


def bind_request(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Like ``bind``, for a block that spans two callbacks (Flask's before and teardown request)."""
    return _bound.set({**(_bound.get() or {}), **fields})


def unbind_request(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _bound.reset(token)


# gunicorn's access log passes its "atoms" as the record's args; these become fields.
_ACCESS_ATOMS = {"m": "method", "U": "path", "s": "status", "M": "duration_ms", "B": "bytes", "h": "remote"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(_bound.get() or {})
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        atoms = record.args
        fields.update({name: atoms.get(atom) for atom, name in _ACCESS_ATOMS.items()})
        fields["request_id"] = atoms.get("{x-request-id}o") or None
    fields.update(getattr(record, "fields", None) or {})
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["error_type"] = type(error).__name__
        fields["error"] = str(error)[:500]
    return fields


def _event(record: logging.LogRecord) -> str:
    if record.name == "gunicorn.access":
        return "http_request"
    return record.getMessage()


def _escape_match(match: re.Match[str]) -> str:
    character = match.group()
    return _SHORT_ESCAPES.get(character) or f"\\u{ord(character):04x}"


def escape_unsafe(text: str) -> str:
    """``text`` with every character that could forge or hide a log line written as an escape."""
    return _UNSAFE.sub(_escape_match, text) if _UNSAFE.search(text) else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _event(record),
        }
        # A field never overwrites the line's own keys (a field named "event" would hide the event name).
        entry.update({key: value for key, value in _fields(record).items() if key not in entry})
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["traceback"] = self.formatException(record.exc_info)
        # json.dumps escapes C0 controls; C1, DEL and the Unicode separators and bidi controls it leaves as they
        # are, and they can only occur inside strings, where an escape means the same character.
        return escape_unsafe(json.dumps(entry, default=str, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        pairs = " ".join(f"{escape_unsafe(str(key))}={_short(value)}" for key, value in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():<7} {escape_unsafe(_event(record)):<24} {pairs}".rstrip()
        if record.exc_info and record.levelno >= logging.ERROR:
            # A traceback keeps its lines, each indented, so that no line of it can pass for a log line.
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n    {escape_unsafe(part)}" for part in trace.splitlines())
        return line


def _short(value: Any) -> str:
    if type(value) is int:  # what json.dumps writes for an int, at a tenth of the cost (ids and counts)
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if not _NEEDS_QUOTES.search(text):
        return text
    return escape_unsafe(json.dumps(text, ensure_ascii=False))


def skip_unused_record_attributes() -> None:
    """Stop the logging module from gathering what no line here shows: the caller's file and line (a walk up
    the stack for every record), thread and process names. The logging documentation lists these switches
    under "Optimization"; they cost a noticeable share of a webhook's CPU (docs/benchmarks.md)."""
    logging._srcfile = None  # documented there: "set logging._srcfile to None"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure_logging(log_format: str = "console", level: str = "INFO") -> None:
    """Send every logger to stdout in ``log_format`` (``console`` or ``json``)."""
    skip_unused_record_attributes()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter(log_format))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler, so calling this twice (or under pytest's capture) is harmless.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    # urllib3 logs every URL with its query (user ids); keep it quiet.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def formatter(log_format: str = "console") -> logging.Formatter:
    """The formatter of ``log_format`` (``LOG_FORMAT``); gunicorn's ``logconfig_dict`` uses it for its own
    loggers, so it also turns off what no line shows."""
    skip_unused_record_attributes()
    return JsonFormatter() if log_format == "json" else ConsoleFormatter()
