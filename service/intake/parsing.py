"""Turning a webhook body into a JSON-like value, whatever shape GenAuth chose to send it in.

A webhook is configured as ``application/json`` or ``application/x-www-form-urlencoded``, and no source shows
how GenAuth form-encodes its nested body (docs/genauth.md §1.1). So a form body is accepted in all three
plausible shapes:

* bracket notation: ``eventName=login&data[id]=…&data[registerSource][0]=…`` (qs/axios style);
* a JSON string in a field: ``eventName=login&data={"id": …}``;
* a JSON document sent with the form content type.

Parsing is bounded: depth, field count and list indexes are capped so a hostile body costs little. Before a
JSON document is parsed, its values are counted from the raw bytes: every value but the first follows a
``,``, ``:``, ``[`` or ``{``, so the number of those bytes bounds the number of values (bytes inside strings
only raise the count). A body with more than ``max_values`` (ENFORCER_MAX_BODY_BYTES / 8) is refused without
parsing it: a body of empty objects, which costs about 50 times its size once parsed, costs a byte count.
A form body is counted the same way before it is decoded (``&`` and the same bytes, percent-encoded or not,
since a field may hold a JSON document), and a form value that is not UTF-8 once percent-decoded is refused,
as a JSON body that is not UTF-8 is.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from service.intake.errors import MalformedBodyError, TooManyValuesError, UnsupportedMediaTypeError
from service.settings import WebhookSettings

JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_DEPTH = 32
MAX_FIELDS = 5000
MAX_INDEX = 10000
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)\Z")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
DEFAULT_MAX_VALUES = WebhookSettings().max_values


def decode_body(mimetype: str, raw: bytes, *, max_values: int = DEFAULT_MAX_VALUES) -> Any:
    """The parsed body; raises ``UnsupportedMediaTypeError`` or ``MalformedBodyError`` (``TooManyValuesError``
    when the body holds more than ``max_values`` values)."""
    if mimetype in JSON_TYPES or mimetype.endswith("+json"):
        return _json(raw, max_values)
    if mimetype == FORM_TYPE:
        if raw.lstrip()[:1] in (b"{", b"["):
            return _json(raw, max_values)
        return _form(raw, max_values)
    shown = mimetype or "none"
    raise UnsupportedMediaTypeError(
        f"content type {shown!r} is not supported; configure the webhook as application/json"
    )


def _json(raw: bytes, max_values: int) -> Any:
    opening = raw.count(b"{") + raw.count(b"[")
    if opening + raw.count(b",") + raw.count(b":") >= max_values:
        raise TooManyValuesError(f"the body holds more values than any GenAuth event (at most {max_values})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedBodyError("the body is not UTF-8") from exc
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise MalformedBodyError(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise MalformedBodyError(f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise MalformedBodyError("the body holds a number too large to read") from exc
    # Nesting needs an opening bracket per level, so a body with few brackets needs no walk (the usual case).
    if opening > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise MalformedBodyError(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth, computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


# The bytes that start a value in a form, as they are and percent-encoded (a JSON document in a field).
_FORM_VALUE_MARKS = (b"&", b",", b":", b"{", b"[", b"%2C", b"%2c", b"%3A", b"%3a", b"%7B", b"%7b", b"%5B", b"%5b")


def _form(raw: bytes, max_values: int) -> dict[str, Any]:
    # Counted before percent-decoding, which costs tens of bytes of memory per escape.
    if sum(raw.count(mark) for mark in _FORM_VALUE_MARKS) >= max_values:
        raise TooManyValuesError(f"the body holds more values than any GenAuth event (at most {max_values})")
    try:
        text = raw.decode("utf-8")
        # errors="strict": a percent-encoded byte sequence that is not UTF-8 is refused, not turned into U+FFFD.
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedBodyError("the form body is not UTF-8") from exc
    except ValueError as exc:
        raise MalformedBodyError(f"the form body has more than {MAX_FIELDS} fields") from exc
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _path(key), value)
    # The top level stays an object even when every field name is a number ("0=x").
    result = {key: _listify(value) for key, value in root.items()}
    data = result.get("data")
    if isinstance(data, str) and data.lstrip()[:1] in ("{", "["):
        result["data"] = _json(data.encode("utf-8"), max_values)
    return result


def _path(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise MalformedBodyError(f"form field name {key[:60]!r} is not valid bracket notation")
    path = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(path) > MAX_DEPTH:
        raise MalformedBodyError(f"form field {key[:60]!r} is nested deeper than {MAX_DEPTH} levels")
    return path


def _assign(root: dict[str, Any], path: list[str], value: str) -> None:
    node: dict[str, Any] = root
    for position, segment in enumerate(path):
        is_last = position == len(path) - 1
        if segment == "":
            # "a[]=x": append, as the next free index.
            segment = str(len(node))
        if _is_index(segment) and (len(segment) > len(str(MAX_INDEX)) or int(segment) > MAX_INDEX):
            raise MalformedBodyError(f"form list index {segment} is larger than {MAX_INDEX}")
        if is_last:
            if isinstance(node.get(segment), dict):
                raise MalformedBodyError(f"form field {'.'.join(path)[:60]!r} is both a value and an object")
            node[segment] = value
            return
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise MalformedBodyError(
                f"form field {'.'.join(path[: position + 1])[:60]!r} is both a value and an object"
            )
        node = child


def _is_index(key: str) -> bool:
    """Plain ASCII digits only: str.isdigit() also accepts "¹" and other digits int() refuses."""
    return key.isascii() and key.isdigit()


def _listify(node: Any) -> Any:
    """Objects whose keys are all indexes become lists (in index order); an empty string becomes null."""
    if isinstance(node, str):
        return None if node == "" else node
    assert isinstance(node, dict)
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(_is_index(key) for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
