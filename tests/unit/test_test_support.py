"""The suite's own shape: what tests share lives in tests/support/, so no test module (or conftest) imports
another test module, where a helper would hide and then be copied."""

from __future__ import annotations

import ast

from tests.support.values import ROOT

TESTS = ROOT / "tests"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _is_refused(module: str) -> bool:
    """A relative import, a bare conftest or test module, or any of the suite's modules outside tests.support."""
    parts = module.split(".")
    if module.startswith(".") or parts[0] == "conftest" or parts[0].startswith("test_"):
        return True
    return parts[0] == "tests" and parts[:2] != ["tests", "support"]


def test_tests_import_shared_code_only_from_tests_support():
    """Every import of the suite's own code names tests.support; relative imports (of a conftest, say) are out."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in _imported(ast.parse(path.read_text(encoding="utf-8")))
        if _is_refused(module)
    ]
    assert wrong == [], "move what is shared to tests/support/:\n" + "\n".join(wrong)


def test_the_scan_sees_the_imports_it_must_refuse():
    tree = ast.parse("from tests.e2e.test_processes import BIN\nfrom .conftest import Api\nimport tests.conftest\n")
    modules = [module for _, module in _imported(tree)]
    assert modules == ["tests.e2e.test_processes", ".conftest", "tests.conftest"]
    assert all(_is_refused(module) for module in modules)
    assert not any(_is_refused(module) for module in ("tests.support.waiting", "service.settings", "pytest"))
