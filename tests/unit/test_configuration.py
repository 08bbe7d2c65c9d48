"""One reference of the environment variables: docs/configuration.md is generated from service/settings.py
(tools/configuration.py), and the prose docs name only variables that exist."""

from __future__ import annotations

import re

import pytest

from tests.support.values import ROOT
from tools import configuration

NOT_THE_SERVICES = {
    "TEST_DATABASE_URL": "the test suite's PostgreSQL",
    "TEST_IMAGE": "the image the image tests run",
    "IMAGE_TOOL": "deploy/build-image.sh",
    "PYTHON_IMAGE": "deploy/build-image.sh",
    "XDG_RUNTIME_DIR": "rootless podman",
}
"""Variables the docs may name that configure the tests or the tools, not the service."""

PROSE = ["README.md", "docs/operations.md", "docs/setup.md", "deploy/README.md"]


def mentioned(text: str) -> set[str]:
    """Every ``ENFORCER_*``/``GENAUTH_*`` name, and every other name in backticks that looks like a variable."""
    prefixed = re.findall(r"\b(?:ENFORCER|GENAUTH)_[A-Z0-9_]*[A-Z0-9]\b", text)
    quoted = re.findall(r"`\$?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)", text)
    return set(prefixed) | set(quoted)


def test_the_reference_is_generated_from_the_settings():
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == configuration.render(), (
        "docs/configuration.md is stale: run `make configuration`"
    )


def test_every_variable_the_settings_read_is_in_the_reference():
    names = configuration.names()
    assert {"GENAUTH_WEBHOOK_SECRET", "DATABASE_URL", "ENFORCER_WORKER_THREADS", "PORT"} <= names
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert all(f"| `{name}` |" in text for name in names)


@pytest.mark.parametrize("document", PROSE)
def test_the_docs_name_only_variables_that_exist(document):
    unknown = mentioned((ROOT / document).read_text(encoding="utf-8")) - configuration.names() - set(NOT_THE_SERVICES)
    assert unknown == set(), f"{document} names variables nothing reads (docs/configuration.md lists those that are)"


def test_the_readme_table_lists_every_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in readme.splitlines() if line.startswith("| `") and "|" in line[2:]]
    in_table = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    assert configuration.names() - in_table == set(), "README.md's variable table misses these"


def test_the_scan_finds_names_in_prose():
    assert mentioned("set `ENFORCER_MODE=audit`, `$DATABASE_URL` and GENAUTH_HOST; `USER` is an id") == {
        "ENFORCER_MODE",
        "DATABASE_URL",
        "GENAUTH_HOST",
    }


def test_the_operations_guide_and_the_deploy_guide_point_at_the_reference_instead_of_listing_variables():
    """They name variables where a step needs one; the list of them all is docs/configuration.md alone."""
    for document in ("docs/operations.md", "deploy/README.md"):
        text = (ROOT / document).read_text(encoding="utf-8")
        assert "configuration.md" in text, document
        assert "| variable |" not in text, f"{document} has a variable table: link to docs/configuration.md"
