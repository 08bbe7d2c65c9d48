"""Console log values that are numbers are written as JSON writes them, whichever way they are formatted."""

from __future__ import annotations

import json
import logging

import pytest

from service.logs import ConsoleFormatter


@pytest.mark.parametrize("value", [0, 7, -3, 123456789012345678901234567890, True, False, None, 2.5])
def test_numbers_and_other_values_are_written_as_json(value):
    """An int (an event id, a count) reads as json.dumps writes it, and so do booleans, null and floats."""
    entry = logging.LogRecord("service.intake.views", logging.INFO, __file__, 1, "webhook_received", None, None)
    entry.fields = {"value": value}
    line = ConsoleFormatter().format(entry)
    assert line.endswith(f" value={json.dumps(value)}")
