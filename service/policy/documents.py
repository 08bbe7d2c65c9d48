"""Reading YAML documents strictly and describing marshmallow's problems as lines an operator can act on.

The one document loader of the policy file (``loading``) and test suites (``suites``): both are a mapping
with one list of named items (``policies``, ``cases``), and each problem is reported as ``policies[2] (finance-sms):
match.all[1].custom_data.level: expected one of equals, in, exists``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError

from service.policy.errors import DocumentError

_MERGE_TAG = "tag:yaml.org,2002:merge"

Location = tuple[str | int, ...]


def read_document(path: Path, error: type[DocumentError]) -> str:
    """The UTF-8 text of ``path``; ``error`` when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as failure:
        raise error(str(path), [f"the file is not UTF-8 text ({failure.reason})"]) from failure
    except OSError as failure:
        raise error(str(path), [f"cannot read the file: {failure.strerror or failure}"]) from failure


def parse_document(
    text: str,
    source: str,
    schema: Schema,
    *,
    list_key: str,
    key_order: tuple[str, ...],
    error: type[DocumentError],
    empty: str | None = None,
) -> Any:
    """Load ``text`` (a mapping with a list of named items under ``list_key``) with ``schema``.

    Raises ``error(source, problems)`` with every problem: bad YAML, not a mapping (``empty`` is the problem
    of an empty document, when it has its own), what the schema refuses, and names used twice.
    """
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as failure:
        raise error(source, [_describe_yaml_error(failure)]) from failure
    except yaml.YAMLError as failure:
        raise error(source, [f"not valid YAML: {failure}"]) from failure
    if document is None and empty is not None:
        raise error(source, [empty])
    if not isinstance(document, Mapping):
        got = "nothing" if document is None else kind(document)
        raise error(source, [f"expected a mapping with a '{list_key}' list at the top level, got {got}"])
    problems: list[tuple[int, str]] = []
    loaded: Any = None
    try:
        loaded = schema.load(document)
    except ValidationError as failure:
        problems.extend(describe_problems(failure.messages, document, list_key, key_order))
    problems.extend(find_duplicate_names(document, list_key))
    if problems:
        problems.sort(key=lambda item: item[0])  # stable: keeps field order within an item
        raise error(source, [line for _, line in problems])
    return loaded


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, except that a key written twice in one mapping is an error, not "last one wins"."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_lenient_timestamp(self, node: yaml.ScalarNode) -> object:
        """A date-looking scalar that is no date (``2027-13-01``) stays text, so the field reports it."""
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_lenient_timestamp)


def _describe_yaml_error(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = error.problem or error.context or "invalid"
    context = f" ({error.context})" if error.problem and error.context else ""
    return f"not valid YAML: {where}{what}{context}"


def kind(value: object) -> str:
    """How a wrong value is named in messages: its YAML type, and the value when short."""
    kinds = {
        str: "text",
        dict: "a mapping",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    if isinstance(value, date):
        return f"a date ({value.isoformat()})"
    name = kinds.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return name if len(text) > 40 or isinstance(value, dict | list) else f"{name} ({text})"


# --- describing problems --------------------------------------------------------------------------------


def describe_problems(
    messages: object, document: Mapping[Any, Any], list_key: str, key_order: tuple[str, ...]
) -> Iterator[tuple[int, str]]:
    """Turn marshmallow's nested messages into ``(item index, line)`` pairs; -1 for top-level lines.

    Items of ``document[list_key]`` are labelled ``list_key[i] (name)``; keys sort as ``key_order`` lists
    them, then unknown keys by name, so the same file always gives the same lines.
    """
    items = document.get(list_key)
    for path, message in _flatten(messages, (), key_order):
        if len(path) >= 2 and path[0] == list_key and isinstance(path[1], int):
            index = path[1]
            where = item_label(items, list_key, index)
            rest = path[2:]
        else:
            index, where, rest = -1, "", path
        yield index, ": ".join(part for part in (where, format_path(rest), message) if part)


def find_duplicate_names(document: Mapping[Any, Any], list_key: str) -> Iterator[tuple[int, str]]:
    """Items whose ``name`` repeats an earlier one, ignoring case (reports never show two that read alike)."""
    items = document.get(list_key)
    if not isinstance(items, list):
        return
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(items):
        if not (isinstance(raw, Mapping) and isinstance(raw.get("name"), str)):
            continue
        key = raw["name"].casefold()
        if key in first_seen:
            yield index, f"{item_label(items, list_key, index)}: name: already used by {list_key}[{first_seen[key]}]"
        else:
            first_seen[key] = index


def item_label(items: object, list_key: str, index: int) -> str:
    """``policies[2] (finance-sms)``, or ``policies[2]`` when the item has no usable name."""
    label = f"{list_key}[{index}]"
    if isinstance(items, list) and index < len(items):
        raw = items[index]
        if isinstance(raw, Mapping) and isinstance(raw.get("name"), str) and raw["name"].strip():
            return f"{label} ({raw['name']})"
    return label


def format_path(path: Location) -> str:
    """``match.all[1].custom_data.level``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _flatten(messages: object, path: Location, key_order: tuple[str, ...]) -> Iterator[tuple[Location, str]]:
    if isinstance(messages, Mapping):
        for key in sorted(messages, key=lambda key: _message_order(key, key_order)):
            inner = path if key == "_schema" else (*path, key)
            yield from _flatten(messages[key], inner, key_order)
    elif isinstance(messages, list | tuple):
        for message in messages:
            yield from _flatten(message, path, key_order)
    else:
        yield path, str(messages)


def _message_order(key: object, key_order: tuple[str, ...]) -> tuple[int, int, str]:
    """List indexes in order, known keys in file-format order, then unknown keys by name.

    Marshmallow reports unknown keys in set order, which varies between runs; messages must not.
    """
    if isinstance(key, int):
        return (0, key, "")
    if key == "_schema":
        return (1, -1, "")
    if key in key_order:
        return (1, key_order.index(str(key)), "")
    return (2, 0, str(key))
