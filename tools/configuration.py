"""Writes docs/configuration.md, the one reference of the environment variables, from service/settings.py.

The settings module is the only place that reads the environment, and each field of its frozen dataclasses
carries a docstring; this script pairs every variable read there with the field it fills and prints that
docstring, the field's default and what the reader accepts. Nothing about a variable is written twice: to
change what the reference says, change the docstring (or the reader) and run ``make configuration``.
tests/unit/test_configuration.py fails when the file is stale, and when README.md or docs/operations.md names
a variable that does not exist (or the README's table misses one).

The pairing is read from the code: in ``load_settings`` and its siblings, ``field=read.parsed("NAME", …)``
(directly, or through a local variable assigned from such a call) inside ``SomeSettings(…)`` fills
``SomeSettings.field`` from ``NAME``. A variable read but filling no documented field stops the script.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import settings as settings_module

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ROOT / "service" / "settings.py"
REFERENCE = ROOT / "docs" / "configuration.md"
NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")


@dataclass(frozen=True)
class Variable:
    """One environment variable and the setting it fills."""

    name: str
    owner: str
    """The settings class (or file) the variable configures."""
    meaning: str
    default: str
    accepts: str


def _reader_methods(tree: ast.Module) -> set[str]:
    reader = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "_Reader")
    return {node.name for node in reader.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}


def _reads(node: ast.AST, methods: set[str]) -> Iterator[ast.Call]:
    """Calls of a reader method whose first argument names an environment variable, anywhere in ``node``."""
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in methods
            and call.args
            and isinstance(call.args[0], ast.Constant)
            and isinstance(call.args[0].value, str)
            and NAME.match(call.args[0].value)
        ):
            yield call


def _field_docstrings(tree: ast.Module) -> dict[tuple[str, str], str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for statement, following in zip(node.body, node.body[1:], strict=False):
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                ):
                    text = " ".join(following.value.value.split())
                    found[(node.name, statement.target.id)] = text.replace("``", "`")
    return found


def _bindings(tree: ast.Module, methods: set[str], classes: set[str]) -> dict[str, list[tuple[str, str, ast.Call]]]:
    """Each variable name -> the (class, field, reading call) it fills, in the order of the source."""
    bound: dict[str, list[tuple[str, str, ast.Call]]] = {}
    for function in (node for node in tree.body if isinstance(node, ast.FunctionDef)):
        local: dict[str, list[ast.Call]] = {}
        for statement in ast.walk(function):
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                built = isinstance(statement.value, ast.Call) and getattr(statement.value.func, "id", None) in classes
                if isinstance(target, ast.Name) and not built:  # a nested settings object is bound field by field
                    local[target.id] = list(_reads(statement.value, methods))
        for call in ast.walk(function):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in classes:
                for keyword in call.keywords:
                    reads = list(_reads(keyword.value, methods))
                    if isinstance(keyword.value, ast.Name):
                        reads += local.get(keyword.value.id, [])
                    for read in reads:
                        name = read.args[0].value  # type: ignore[attr-defined]
                        bound.setdefault(name, []).append((call.func.id, str(keyword.arg), read))
    return bound


def _accepts(read: ast.Call) -> str:
    method = read.func.attr  # type: ignore[attr-defined]
    if method == "parsed" and len(read.args) > 3:
        return str(_value(read.args[3]))
    if method == "choice" and len(read.args) > 2:
        return "one of " + ", ".join(f"`{value}`" for value in _value(read.args[2]))
    if method == "required":
        return f"required where it is used ({_value(read.args[1])})"
    if method == "database_url":
        schemes = sorted(settings_module.DATABASE_SCHEMES)
        return "a URL whose scheme is " + ", ".join(f"`{scheme}://`" for scheme in schemes)
    return "text"


def _value(expression: ast.expr) -> Any:
    """An argument's value, evaluated among the settings module's names (its constants, e.g. ``MODES``)."""
    return eval(compile(ast.Expression(expression), str(SETTINGS), "eval"), vars(settings_module))  # noqa: S307


def _shown(value: Any) -> str:
    if value in ("", (), None):
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def variables() -> list[Variable]:
    """Every variable, in the order its settings class and field are declared in service/settings.py."""
    tree = ast.parse(SETTINGS.read_text(encoding="utf-8"))
    methods = _reader_methods(tree)
    classes = {
        name
        for name, value in vars(settings_module).items()
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == settings_module.__name__
    }
    docstrings = _field_docstrings(tree)
    bound = _bindings(tree, methods, classes)
    problems = []
    secrets = set()
    for call in _reads(tree, methods):
        name = call.args[0].value  # type: ignore[attr-defined]
        if call.func.attr == "strong_secret":  # type: ignore[attr-defined]
            secrets.add(name)
        elif name not in bound:
            problems.append(f"{name} (line {call.lineno}) fills no settings field")
    for name, places in bound.items():
        problems += [
            f"{name}: {owner}.{field} has no docstring"
            for owner, field, _ in places
            if (owner, field) not in docstrings
        ]
    if problems:
        raise SystemExit("service/settings.py: " + "; ".join(problems))
    order = list(docstrings)
    found = []
    for name, places in bound.items():
        for owner, field, read in places:
            default = next(f for f in dataclasses.fields(getattr(settings_module, owner)) if f.name == field).default
            accepts = _accepts(read)
            if name in secrets:
                accepts = "" if accepts == "text" else accepts + "; "
                accepts += f"at least {settings_module.MIN_SECRET_LENGTH} characters, and not a placeholder"
            found.append(Variable(name, owner, docstrings[(owner, field)], _shown(default), accepts))
    found.sort(key=lambda variable: (order.index((variable.owner, _field_of(variable, bound))), variable.name))
    return _unique(found)


def _field_of(variable: Variable, bound: dict[str, list[tuple[str, str, ast.Call]]]) -> str:
    return next(field for owner, field, _ in bound[variable.name] if owner == variable.owner)


def _unique(found: list[Variable]) -> list[Variable]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for variable in found:
        if (variable.name, variable.owner) not in seen:
            seen.add((variable.name, variable.owner))
            kept.append(variable)
    return kept


def names() -> set[str]:
    """The name of every variable the service and its processes read."""
    return {variable.name for variable in variables()}


def _section(owner: str) -> str:
    value = getattr(settings_module, owner, None)
    if value is None:
        return f"Read by `{owner}`"
    summary = (value.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    return f"`{owner}`: {summary[0].lower()}{summary[1:]}"


def render() -> str:
    """The text of docs/configuration.md."""
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `make configuration` (tools/configuration.py) from the docstrings of service/settings.py."
        " Do not edit: change the docstring and regenerate. -->",
        "",
        "Every setting is an environment variable. `service/settings.py` reads them once at startup into frozen",
        "values; a missing or malformed one stops the process with one message that lists every problem. Each",
        "process is asked only for the secrets it uses (a web process without the worker thread needs no GenAuth",
        "credentials; a worker needs no webhook secret). `config/example.env` is a starting point; deploy/README.md",
        "shows where the variables go in each kind of deployment. Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`",
        "and `on`/`off`; durations are in seconds.",
        "",
    ]
    owners: list[str] = []
    for variable in variables():
        if variable.owner not in owners:
            owners.append(variable.owner)
    for owner in owners:
        lines += [f"## {_section(owner)}", "", "| variable | meaning | accepts | default |", "|---|---|---|---|"]
        for variable in (v for v in variables() if v.owner == owner):
            meaning = variable.meaning.replace("|", "\\|")
            lines.append(f"| `{variable.name}` | {meaning} | {variable.accepts} | {variable.default} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``--check`` exits 1 when docs/configuration.md is stale; otherwise it is rewritten."""
    text = render()
    if argv[1:] == ["--check"]:
        if REFERENCE.read_text(encoding="utf-8") != text:
            print("docs/configuration.md is stale: run `make configuration`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
