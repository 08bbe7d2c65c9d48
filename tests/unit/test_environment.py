"""Only service/settings.py reads the environment (docs/architecture.md, principle 10): every other module gets
its configuration passed in, so a test builds whatever settings it needs and one message lists every problem."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
SETTINGS = SERVICE / "settings.py"
READERS = {"getenv", "getenvb", "environ", "environb"}
"""The names through which ``os`` hands out the environment."""


def environment_reads(source: str) -> list[int]:
    """The lines of ``source`` that touch ``os.environ``, ``os.getenv`` (or their bytes forms) or import them
    from ``os`` (a local variable called ``environ`` is not a read)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr in READERS) or (
            isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & READERS
        ):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_settings_reads_the_environment():
    reads = [
        f"{path.relative_to(SERVICE.parent)}:{line}"
        for path in sorted(SERVICE.rglob("*.py"))
        if path != SETTINGS
        for line in environment_reads(path.read_text())
    ]
    assert reads == [], "read the variable in service/settings.py (a Settings field) and pass the value in"


def test_the_scan_finds_every_spelling():
    source = "import os\nfrom os import environ\na = os.environ['A']\nb = os.getenv('B')\nc = environ.get('C')\n"
    assert environment_reads(source) == [2, 3, 4]
    assert environment_reads(SETTINGS.read_text()), "settings.py reads the environment, so the scan must see it"
