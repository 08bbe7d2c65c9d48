"""deploy/Dockerfile and .dockerignore, checked statically (``test_image.py`` runs the built image).

The Dockerfile is parsed into instructions and stages (continuation lines joined, comments dropped) and the
tests assert what the image must be: multi-stage, non-root with a fixed UID, gunicorn as PID 1 with the
project's config, a HEALTHCHECK that works without curl, nothing but the venv from the builder, and neither
the emulator nor the tests in the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath

import pytest

from tests.support.deploy import DEPLOY, ROOT, UID
from tests.support.serving import serve_in_thread

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_COMMAND = ["gunicorn", "--config", "config/gunicorn.conf.py", "service.app:create_app()"]


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (KEYWORD, arguments) instructions."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (and parser directives), also inside continued instructions
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: arguments[m.group(1) or m.group(2)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            arguments[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return arguments, stages


def environment(stage: Stage) -> dict[str, str]:
    """The ENV values a stage sets (KEY=value form)."""
    values = {}
    for arguments in stage.all("ENV"):
        for word in shlex.split(arguments):
            key, _, value = word.partition("=")
            values[key] = value
    return values


def exec_form(arguments: str) -> list[str]:
    """A JSON-array instruction argument; fails for the shell form (which would put /bin/sh in front)."""
    value = json.loads(arguments)
    assert isinstance(value, list), arguments
    assert all(isinstance(word, str) for word in value), arguments
    return value


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(dockerfile):
    return dockerfile[1][-1]


@pytest.fixture(scope="module")
def builder(dockerfile):
    return dockerfile[1][0]


def test_image_is_built_in_stages_from_one_slim_python_311_base(dockerfile):
    """A builder stage and a runtime stage, both on the same slim Python 3.11 (the venv links to its python)."""
    _, stages = dockerfile
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    assert {stage.base for stage in stages} == {stages[0].base}
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]{64})?", stages[0].base)


def test_final_stage_runs_as_a_fixed_numeric_non_root_user(final):
    """The last USER is numeric (so runAsNonRoot can verify it) and matches the UID/GID the image creates."""
    user = final.all("USER")[-1]
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user} is not numeric"
    assert int(match.group(1)) == UID != 0
    assert match.group(2) is None or int(match.group(2)) != 0
    created = " ".join(final.all("RUN"))
    assert f"--uid {UID}" in created
    assert f"--gid {UID}" in created


def test_final_stage_copies_the_venv_from_the_builder_and_installs_nothing(builder, final):
    """Build tools and pip caches stay in the builder: the runtime stage only copies its venv."""
    copies = final.all("COPY")
    assert any(re.fullmatch(r"--from=builder\s+/opt/venv\s+/opt/venv", copy) for copy in copies)
    for command in final.all("RUN"):
        assert not re.search(r"\bpip3?\s+install\b|\bapt-get\s+install\b|\bapk\s+add\b", command), command
    assert environment(final)["PATH"].startswith("/opt/venv/bin:")
    installs = [command for command in builder.all("RUN") if re.search(r"\bpip\s+install\b", command)]
    assert installs
    assert all("--no-cache-dir" in command for command in installs)


def test_image_runs_gunicorn_with_the_project_config_as_pid_1(final):
    """CMD is the exec form of the Procfile's web command, so gunicorn itself is PID 1 and receives SIGTERM."""
    assert final.all("ENTRYPOINT") == []
    assert exec_form(final.all("CMD")[-1]) == GUNICORN_COMMAND
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert shlex.split(procfile["web"]) == GUNICORN_COMMAND
    assert final.all("WORKDIR")[-1] == "/app"
    assert any(
        "config/gunicorn.conf.py" in copy.split()[:-1] and copy.split()[-1] == "./config/" for copy in final.all("COPY")
    )
    assert final.all("STOPSIGNAL") in ([], ["SIGTERM"])


def test_image_serves_on_port_8000(final):
    """EXPOSE and PORT agree with the port the manifests probe and route to."""
    assert final.all("EXPOSE") == ["8000"]
    assert environment(final)["PORT"] == "8000"


def test_runtime_environment_suits_a_read_only_root_filesystem(final):
    """No bytecode writes, unbuffered logs, and the default SQLite file on the declared volume the user owns."""
    env = environment(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    volumes = [path for arguments in final.all("VOLUME") for path in exec_form(arguments)]
    database = PurePosixPath(env["DATABASE_URL"].removeprefix("sqlite:///"))
    assert env["DATABASE_URL"].startswith("sqlite:////")
    assert str(database.parent) in volumes
    assert any(f"--owner={UID}" in command and str(database.parent) in command for command in final.all("RUN"))


def test_healthcheck_asks_healthz_with_python_not_curl(final):
    """The slim image has no curl: the HEALTHCHECK is a python one-liner in exec form against /healthz."""
    (healthcheck,) = final.all("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2]
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_passes_only_when_healthz_answers_2xx(final, status, healthy):
    """The HEALTHCHECK one-liner, run against a loopback /healthz on $PORT, exits 0 on 200 and non-zero on 503."""
    (healthcheck,) = final.all("HEALTHCHECK")
    code = exec_form(healthcheck.partition("CMD ")[2])[2]
    handler = type("Handler", (_Health,), {"status": status})
    with serve_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as server:
        port = str(server.server_address[1])
        result = subprocess.run([sys.executable, "-c", code], env={"PORT": port}, capture_output=True, timeout=10)
    assert (result.returncode == 0) is healthy, result.stderr


def test_healthcheck_fails_when_nothing_listens(final):
    """A refused connection makes the HEALTHCHECK fail instead of hanging or passing."""
    (healthcheck,) = final.all("HEALTHCHECK")
    code = exec_form(healthcheck.partition("CMD ")[2])[2]
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as server:
        port = str(server.server_address[1])  # bound, then closed below: nothing listens on it any more
    result = subprocess.run([sys.executable, "-c", code], env={"PORT": port}, capture_output=True, timeout=10)
    assert result.returncode != 0


# --- .dockerignore -----------------------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching: `**` spans directories, `*` and `?` stay inside one path segment."""
    out, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def is_ignored(path: str) -> bool:
    """True when the build context leaves out ``path`` (or a directory above it); the last match wins."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    ignored = False
    for pattern in _ignore_patterns():
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        "var/sandbox.db",
        ".env",
        ".env.production",
        "service/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/service.json",
        ".ruff_cache/CACHEDIR.TAG",
        "mfa_enforcer.egg-info/PKG-INFO",
        "tests/deploy/test_dockerfile.py",
        "genauth_emulator/state.py",
    ],
)
def test_dockerignore_keeps_local_state_caches_and_credentials_out_of_the_build_context(path):
    """Local environments, databases, caches, .env files, the tests and the emulator never reach the image build."""
    assert is_ignored(path)


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context(dockerfile):
    """Each COPY source from the context is present in the repository and not excluded by .dockerignore."""
    _, stages = dockerfile
    sources = [
        source
        for stage in stages
        for copy in stage.all("COPY")
        if not copy.startswith("--from=")
        for source in copy.split()[:-1]
    ]
    assert {"pyproject.toml", "README.md", "service", "config/gunicorn.conf.py"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not is_ignored(source), source


def test_the_service_package_leaves_the_emulator_out(dockerfile):
    """The emulator is its own distribution (genauth_emulator/pyproject.toml): the service's wheel, which is what
    the image installs, finds only service packages, and no COPY names the emulator."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include
    assert not any(fnmatch.fnmatch("genauth_emulator", pattern) for pattern in include)
    emulator = tomllib.loads((ROOT / "genauth_emulator" / "pyproject.toml").read_text(encoding="utf-8"))
    assert emulator["project"]["name"] != project["project"]["name"]
    _, stages = dockerfile
    assert not any("genauth_emulator" in copy for stage in stages for copy in stage.all("COPY"))
