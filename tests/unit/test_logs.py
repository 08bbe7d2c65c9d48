"""Log lines cannot be forged or hidden: every value that could end a line or reorder text is escaped, in the
console format and in JSON."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import ConsoleFormatter, JsonFormatter

HOSTILE = {
    "newline": "a\n12:00:00 info    webhook_received forged=1",
    "carriage return": "a\rb",
    "escape sequence": "a\x1b[2Jb",
    "nul": "a\x00b",
    "delete": "a\x7fb",
    "next line (C1)": "a\x85b",
    "C1 CSI": "a\x9b2Jb",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "right-to-left override": "a\u202eb",
    "left-to-right embedding": "a\u202ab",
    "right-to-left isolate": "a\u2067b",
    "pop directional isolate": "a\u2069b",
    "zero-width space": "a\u200bb",
    "zero-width joiner": "a\u200db",
    "byte order mark": "a\ufeffb",
}
RAW = set("\n\r\x1b\x00\x7f\x85\x9b\u2028\u2029\u202e\u202a\u2067\u2069\u200b\u200d\ufeff")


def record(message="webhook_received", name="service.intake.views", args=None, **fields):
    entry = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)
    entry.fields = fields
    return entry


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), JsonFormatter()], ids=["console", "json"])
@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_unsafe_characters_in_a_value_are_escaped(formatter, value):
    """The line holds no raw control, separator, bidi or zero-width character, and stays one line."""
    line = formatter.format(record(path=value, event_name=value))
    assert not RAW & set(line), repr(line)
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize("formatter", [ConsoleFormatter(), JsonFormatter()], ids=["console", "json"])
def test_the_message_and_gunicorn_access_fields_are_escaped_too(formatter):
    """A library's message (gunicorn quoting a bad request line) and the access log's path are values too."""
    line = formatter.format(record("Invalid request: GET /\n\u202eforged", name="gunicorn.error"))
    assert not RAW & set(line) and len(line.splitlines()) == 1
    access = record("-", name="gunicorn.access", args={"U": "/p\n\x85\u2028", "m": "GET", "s": "404"})
    line = formatter.format(access)
    assert not RAW & set(line) and len(line.splitlines()) == 1


def test_json_escapes_mean_the_same_text():
    """JSON escapes are JSON: the original value comes back when the line is parsed."""
    value = "".join(HOSTILE.values())
    assert json.loads(JsonFormatter().format(record(path=value)))["path"] == value


def test_console_values_stay_readable_and_apart():
    """Plain values are written as they are, non-ASCII letters included; a space or quote makes a value quoted."""
    line = ConsoleFormatter().format(record(user="alice", display="李 娜", quote='a"b', count=3))
    assert "user=alice" in line and 'display="李 娜"' in line and 'quote="a\\"b"' in line and "count=3" in line


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_log_line():
    """Exception text with a newline stays inside the indented traceback."""
    try:
        raise ValueError("boom\n12:00:00 info    forged")
    except ValueError:
        import sys

        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "request_crashed", None, sys.exc_info())
    entry.fields = {}
    lines = ConsoleFormatter().format(entry).splitlines()
    assert lines[0].endswith("request_crashed") or "request_crashed" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:])
