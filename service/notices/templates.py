"""The words of every notice: text files, one per kind, that an operator may replace.

A template is ``Subject: ...`` on its first line, a blank line, then the body; ``$name`` placeholders
(``string.Template``) take the values the notice's outbox row keeps, and nothing else. The shipped files are
in service/notices/templates/; a file of the same name in ``ENFORCER_NOTIFY_TEMPLATES`` replaces one.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from service.notices.errors import TemplateError

USER_BEFORE = "user-before.txt"
USER_ON_ENFORCE = "user-on-enforce.txt"
ADMIN_DIGEST = "admin-digest.txt"
NAMES = (USER_BEFORE, USER_ON_ENFORCE, ADMIN_DIGEST)
MAX_TEMPLATE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class Templates:
    """Renders notices from the operator's folder, falling back to the shipped files."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder

    def text(self, name: str) -> str:
        """The template ``name`` as the operator's folder (else the package) has it."""
        if self.folder is not None and (self.folder / name).is_file():
            path = self.folder / name
            if path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise TemplateError(f"template {path} is larger than {MAX_TEMPLATE_BYTES} bytes")
            return path.read_text(encoding="utf-8")
        return resources.files("service.notices").joinpath("templates", name).read_text(encoding="utf-8")

    def render(self, name: str, values: Mapping[str, str]) -> Rendered:
        """Fill template ``name``; ``TemplateError`` names the file and what is wrong."""
        head, blank, body = self.text(name).partition("\n\n")
        if not blank or not head.startswith("Subject:") or "\n" in head.strip():
            raise TemplateError(f"template {name}: the first line must be 'Subject: ...', then a blank line")
        try:
            subject = string.Template(head.removeprefix("Subject:").strip()).substitute(values)
            text = string.Template(body).substitute(values)
        except (KeyError, ValueError) as error:
            raise TemplateError(
                f"template {name}: unknown or malformed placeholder {error}; it may use {', '.join(sorted(values))}"
            ) from error
        return Rendered(subject=" ".join(subject.split())[:200], body=text.rstrip() + "\n")

    def check(self) -> list[str]:
        """Every template that cannot be rendered with sample values (``notify --dry-run`` says them)."""
        problems = []
        for name in NAMES:
            try:
                self.render(name, _SAMPLES[name])
            except (TemplateError, OSError) as error:
                problems.append(str(error))
        return problems


_USER_SAMPLE = {
    "name": "alice",
    "description": "",
    "factors": "SMS",
    "ready": "a mobile phone number",
    "rule": "r",
    "deadline": "2027-01-15",
    "days": "in 7 days",
    "date": "2027-01-15",
}
_SAMPLES: dict[str, Mapping[str, str]] = {
    USER_BEFORE: _USER_SAMPLE,
    USER_ON_ENFORCE: _USER_SAMPLE,
    ADMIN_DIGEST: {"day": "2027-01-15", "headline": "all clear", "sections": ""},
}
