"""The image `make image` built, run the way the manifests run it: its own commands, as UID 10001, against the
GenAuth emulator from this checkout.

These tests run only when ``TEST_IMAGE`` names a built image (``make image-test`` builds it and sets it; CI
runs that); otherwise they skip. They need buildah. The container runtimes (crun, runc) cannot start
containers on the development machines and CI, so each command runs with ``buildah run --isolation chroot``
in a working container of the image, on the host network, where the emulator listens on loopback. Like a pod,
each container gets its own /tmp (a host directory) and the containers share one data volume mounted at
/var/lib/mfa-enforcer, where the image's default DATABASE_URL keeps SQLite.

What a cluster would do, in order: the release command (``mfa-enforcer db upgrade``) creates the schema on the
volume; the image's CMD (gunicorn) serves /healthz and /readyz and queues a signed delivery; ``mfa-enforcer
worker`` in another container enforces it (the emulator receives set-mfa-status) and shows it on its /metrics;
the worker's liveness command and the image's HEALTHCHECK command pass; SIGTERM stops both cleanly.

Production runs the root filesystem read-only, which buildah cannot do, so every container's root filesystem
is recorded after a first no-op run (buildah's own mount points exist from then on) and compared at the end:
nothing may have changed outside /tmp and the data volume.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from genauth_emulator.payloads import event_body
from genauth_emulator.sample import seed_sandbox
from genauth_emulator.sender import WebhookSender
from genauth_emulator.server import EmulatorServer
from genauth_emulator.state import EmulatorState
from tests.support.deploy import UID
from tests.support.processes import free_port
from tests.support.waiting import wait_until

IMAGE = os.environ.get("TEST_IMAGE", "").strip()
pytestmark = pytest.mark.skipif(not IMAGE, reason="TEST_IMAGE is unset: `make image-test` builds the image, runs these")

DATA = "/var/lib/mfa-enforcer"
SET_MFA = "/api/v3/set-mfa-status"
WEBHOOK_SECRET = "image-test-webhook-secret-0123456789"
# Paths a container never writes through its root filesystem: kernel filesystems and the two mounts.
NOT_ROOT_FILESYSTEM = {"proc", "sys", "dev", "tmp", DATA.lstrip("/")}
# buildah creates /run/.containerenv for each run and removes it afterwards, touching /run itself.
TOUCHED_BY_BUILDAH = {"run"}
COMPILER = re.compile(r"(cc|c\+\+|gcc|g\+\+|clang|clang\+\+|tcc)(-\d+)?|.+-linux-gnu-(gcc|g\+\+|cc)(-\d+)?")
PIP = re.compile(r"pip(3(\.\d+)?)?")
# Nothing of the test suite, the emulator or the dev tools belongs in the image.
DEV_PACKAGES = {"genauth_emulator", "genauth", "pytest", "_pytest", "hypothesis", "mypy", "ruff", "kubernetes_validate"}
MAX_IMAGE_BYTES = 300_000_000  # about 190 MB today; a build tree or the dev tools would push it past this


# --- helpers ---------------------------------------------------------------------------------------------


def buildah(*arguments: str, timeout: float = 120) -> str:
    result = subprocess.run(["buildah", *arguments], capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"buildah {' '.join(arguments)} failed: {result.stderr.strip()}"
    return result.stdout


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int]]:
    """Every path of a root filesystem (outside the mounts) with its type/mode, owner, size and times."""
    entries = {}
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        subdirectories[:] = [name for name in subdirectories if str(relative / name) not in NOT_ROOT_FILESYSTEM]
        for name in [*subdirectories, *files]:
            path = relative / name
            status = os.lstat(root / path)
            times = (0, 0) if str(path) in TOUCHED_BY_BUILDAH else (status.st_mtime_ns, status.st_ctime_ns)
            entries[str(path)] = (status.st_mode, status.st_uid, status.st_size, *times)
    return entries


def children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # exited meanwhile
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, queue = children(), [], [pid]
    while queue:
        for child in tree.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def argv0(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


class Running:
    """A long-running command in a container: the `buildah run` process and the command's own process."""

    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log

    def main_pid(self) -> int:
        """The command itself, as the kubelet would signal it (buildah's wrapper SIGKILLs what it forwards)."""

        def find() -> int | None:
            for pid in descendants(self.process.pid):
                if argv0(pid) == "buildah-chroot-exec":
                    return next(iter(children().get(pid, [])), None)
            return None

        return wait_until(find, timeout=10, what="the container's main process")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM to the command; its exit status (buildah passes it on)."""
        if self.process.poll() is None:
            os.kill(self.main_pid(), signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """Tear-down after a failure: everything this `buildah run` started, by pid."""
        if self.process.poll() is None:
            for pid in reversed(descendants(self.process.pid)):
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
        self.process.wait(10)


class Container:
    """One working container of the image, like one pod: its own /tmp, the shared data volume, host network."""

    def __init__(self, name: str, workspace: Path, data: Path) -> None:
        self.name = name
        self.workspace = workspace / name
        self.tmp = self.workspace / "tmp"
        self.tmp.mkdir(parents=True)
        self.tmp.chmod(0o1777)
        self.data = data
        self.id = buildah("from", "--pull=never", IMAGE).strip()
        # buildah (1.28) mounts its own copy of an image VOLUME as well as a --volume given for the same path, in
        # no fixed order, so a command sometimes saw an empty copy instead of the shared volume. Only this working
        # container forgets the VOLUME (the image keeps it: the first test checks), so the shared volume is the
        # only mount there.
        buildah("config", "--volume", f"{DATA}-", self.id)
        self.root = Path(buildah("mount", self.id).strip())
        first = self.run(["grep", f" {DATA} ", "/proc/self/mountinfo"])
        assert first.returncode == 0, first.stderr
        assert "buildah-volumes" not in first.stdout, f"{DATA} is not the shared volume: {first.stdout}"
        self.before = snapshot(self.root)

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        # No --user: the image's USER (10001:10001) applies, as runAsUser does in the manifests.
        options = ["--isolation", "chroot", "--network", "host"]
        options += ["--volume", f"{self.data}:{DATA}", "--volume", f"{self.tmp}:/tmp"]
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        return ["buildah", "run", *options, self.id, "--", *argv]

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv, env or {}), capture_output=True, text=True, timeout=60, check=False)

    def start(self, argv: list[str], env: dict[str, str]) -> Running:
        log = self.workspace / "output.log"
        with log.open("w") as sink:
            process = subprocess.Popen(
                self.command(argv, env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Running(process, log)

    def changes(self) -> list[str]:
        """Paths of the root filesystem created, deleted or modified since the first run."""
        after = snapshot(self.root)
        changed = {path for path in self.before.keys() & after.keys() if self.before[path] != after[path]}
        return sorted(changed | (self.before.keys() ^ after.keys()))

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.id], capture_output=True, timeout=60, check=False)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return 0.0


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The image's configuration (Cmd, User, Env, Healthcheck, ...), as a runtime reads it."""
    if shutil.which("buildah") is None:
        pytest.fail("TEST_IMAGE is set but buildah is not installed (Debian: apt-get install buildah)")
    return json.loads(buildah("inspect", "--type", "image", IMAGE))["Docker"]["config"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """The emulator from this checkout, on the host's loopback, which the containers share."""
    server = EmulatorServer(EmulatorState())
    server.start()
    server.users = seed_sandbox(server.state)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pods(config, tmp_path_factory) -> Iterator[dict[str, Container]]:
    """The containers, created on first use; removed at the end of the module."""
    workspace = tmp_path_factory.mktemp("image")
    data = workspace / "data"
    data.mkdir()
    os.chown(data, UID, UID)  # a fresh volume that fsGroup 10001 (or the image's own directory) makes writable
    data.chmod(0o750)
    created: dict[str, Container] = {}

    class Pods(dict):
        def __missing__(self, name: str) -> Container:
            created[name] = self[name] = Container(name, workspace, data)
            return self[name]

    try:
        yield Pods()
    finally:
        for container in created.values():
            container.remove()


def service_env(emulator: EmulatorServer, **extra: str) -> dict[str, str]:
    return {
        "GENAUTH_HOST": emulator.url,
        "GENAUTH_ACCESS_KEY_ID": emulator.state.access_key_id,
        "GENAUTH_ACCESS_KEY_SECRET": emulator.state.access_key_secret,
        "GENAUTH_USERPOOL_ID": emulator.state.userpool_id,
        "LOG_FORMAT": "json",
        **extra,
    }


@pytest.fixture(scope="module")
def release(pods) -> subprocess.CompletedProcess:
    """The migration Job's command, on the empty data volume."""
    return pods["release"].run(["mfa-enforcer", "db", "upgrade"])


@pytest.fixture(scope="module")
def web(config, pods, emulator, release) -> Iterator[tuple[Running, str]]:
    """The image's default command (gunicorn) as the web Deployment runs it, on a free loopback port."""
    assert release.returncode == 0, release.stderr
    port = free_port()
    env = service_env(
        emulator, PORT=str(port), HOST="127.0.0.1", ENFORCER_RUN_WORKER="false", GENAUTH_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    running = pods["web"].start(config["Cmd"], env)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert running.process.poll() is None, f"the web command exited:\n{running.output()}"
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:  # not listening yet, or the workers are still booting
            return False

    try:
        wait_until(ready, timeout=60, what="gunicorn in the image to answer /healthz")
        yield running, url
    finally:
        running.kill()


@pytest.fixture(scope="module")
def delivery(web, emulator) -> requests.Response:
    """A signed login delivery for fin.alice (Finance: the image's policy requires SMS)."""
    _, url = web
    with WebhookSender(f"{url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id) as sender:
        return sender.deliver(event_body(emulator.state, "login", emulator.users["fin.alice"]))


@pytest.fixture(scope="module")
def worker(pods, emulator, delivery) -> Iterator[tuple[Running, str]]:
    """`mfa-enforcer worker` as the worker Deployment runs it (with its /metrics port), in its own container."""
    assert delivery.status_code == 200, delivery.text
    port = free_port()
    env = service_env(emulator, ENFORCER_METRICS_PORT=str(port), ENFORCER_POLL_INTERVAL="0.1")
    running = pods["worker"].start(["mfa-enforcer", "worker"], env)
    try:
        yield running, f"http://127.0.0.1:{port}/metrics"
    finally:
        running.kill()


# --- the tests, in the order a rollout runs them ---------------------------------------------------------


def test_image_declares_the_user_volume_and_commands_the_manifests_rely_on(config, pods):
    """USER 10001:10001, the data volume, gunicorn as CMD with /app as the working directory, a HEALTHCHECK, and
    the base it was built from; a command in the image runs as 10001."""
    assert config["User"] == f"{UID}:{UID}"
    assert DATA in config["Volumes"]
    assert config["Cmd"] == ["gunicorn", "--config", "config/gunicorn.conf.py", "service.app:create_app()"]
    assert config["WorkingDir"] == "/app"
    assert config["Healthcheck"]["Test"][0] == "CMD", "HEALTHCHECK is lost unless the image is in docker format"
    assert config["Labels"]["org.opencontainers.image.base.name"]
    result = pods["release"].run(["sh", "-c", "id -u; id -g"])
    assert result.stdout.split() == [str(UID), str(UID)], result.stderr


def test_release_command_creates_the_schema_on_the_data_volume(release, pods):
    """`mfa-enforcer db upgrade` (the migration Job) writes enforcer.db, owned by 10001, onto the volume."""
    assert release.returncode == 0, release.stderr
    assert "upgraded from empty" in release.stdout
    database = pods["release"].data / "enforcer.db"
    assert database.stat().st_uid == UID
    status = pods["release"].run(["mfa-enforcer", "db", "status"])
    assert status.returncode == 0, status.stdout + status.stderr


def test_release_command_reaches_postgresql_through_the_bundled_driver(pods, postgres_url):
    """The same command against PostgreSQL: psycopg's bundled libpq loads in the image and the schema is made."""
    env = {"DATABASE_URL": postgres_url}
    result = pods["release"].run(["mfa-enforcer", "db", "upgrade"], env)
    assert result.returncode == 0, result.stderr
    assert pods["release"].run(["mfa-enforcer", "db", "status"], env).returncode == 0


def test_web_command_serves_health_and_readiness(web):
    """gunicorn from the image answers /healthz, and /readyz with the database and the bundled policy."""
    _, url = web
    assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok"
    assert "/app/config/policies.yaml" in checks["policy"]


def test_web_command_accepts_a_signed_delivery_and_refuses_an_unsigned_one(web, delivery):
    """The signed delivery is queued (200); the same body without the secret is refused (401)."""
    _, url = web
    assert delivery.status_code == 200 and delivery.json()["success"] is True, delivery.text
    unsigned = requests.post(f"{url}/webhooks/genauth", json={"eventName": "login", "data": {}}, timeout=5)
    assert unsigned.status_code == 401


def test_healthcheck_command_passes_while_the_web_command_serves(config, pods, web):
    """The image's HEALTHCHECK command, run inside a container as a container engine would, exits 0."""
    _, url = web
    command = config["Healthcheck"]["Test"][1:]
    result = pods["web"].run(command, {"PORT": url.rpartition(":")[2]})
    assert result.returncode == 0, result.stderr


def test_worker_command_enforces_the_delivery(worker, emulator):
    """`mfa-enforcer worker` claims the queued row and writes SMS for alice to GenAuth (set-mfa-status)."""
    alice = emulator.users["fin.alice"]
    running, _ = worker
    try:
        [write] = emulator.journal.wait_for(
            lambda entry: entry.path == SET_MFA and (entry.body or {}).get("userId") == alice, timeout=60
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\nworker output:\n{running.output()}") from None
    assert write.http_status == 200
    assert {"mfaPolicy": "SMS", "status": 1, "sort": 0} in write.body["mfaTriggerData"]["applicationMfa"]
    stored = {entry["mfaPolicy"]: entry["status"] for entry in emulator.state.get_mfa(alice)["applicationMfa"]}
    assert stored.get("SMS") == 1


def test_worker_metrics_show_the_decision_and_the_genauth_call(worker, emulator):
    """The worker's /metrics (ENFORCER_METRICS_PORT, as the manifests set it) counts the write it made."""
    _, metrics_url = worker
    emulator.journal.wait_for(SET_MFA, timeout=60)

    def scraped() -> str | None:
        try:
            text = requests.get(metrics_url, timeout=2).text
        except requests.RequestException:  # the metrics server starts with the worker
            return None
        return text if sample(text, "mfa_enforcer_decisions_total", rule="finance-sms", action="enforced") else None

    text = wait_until(scraped, timeout=30, what="the worker's decision on its /metrics")
    assert sample(text, "mfa_enforcer_genauth_calls_total", endpoint=SET_MFA, status="200") >= 1


def test_worker_liveness_command_sees_the_heartbeat(pods, worker):
    """The worker pods' liveness probe (`mfa-enforcer worker-alive`) passes: the heartbeat is written to /tmp."""
    result = pods["worker"].run(["mfa-enforcer", "worker-alive", "--max-age", "300"])
    assert result.returncode == 0, result.stderr


def test_sigterm_stops_the_web_and_worker_commands_cleanly(config, pods, web, worker):
    """SIGTERM (what the kubelet sends) ends both with status 0, the worker after saying so; then the
    HEALTHCHECK command fails, as it must when nothing answers."""
    web_process, url = web
    worker_process, _ = worker
    assert worker_process.stop() == 0, worker_process.output()
    assert '"event": "worker_stopped"' in worker_process.output()
    assert web_process.stop() == 0, web_process.output()
    failed = pods["web"].run(config["Healthcheck"]["Test"][1:], {"PORT": url.rpartition(":")[2]})
    assert failed.returncode != 0


def test_nothing_was_written_outside_tmp_and_the_data_volume(pods):
    """Every container's root filesystem is as it was before its commands ran (it is read-only in production);
    the writes went to /tmp and the volume."""
    assert set(pods) >= {"release", "web", "worker"}, "run the whole module: the commands come first"
    for name, container in pods.items():
        assert container.changes() == [], f"{name} wrote to its root filesystem"
    assert any(container.tmp.iterdir() for container in pods.values()), "nothing reached /tmp: the check is blind"


def test_runtime_stage_has_no_compiler_no_pip_and_no_test_code(pods):
    """No compiler and no pip anywhere in the image; neither the emulator, the tests nor any dev tool is in its
    venv; and the emulator cannot be imported."""
    root = pods["release"].root
    compilers, pips, packages = [], [], set()
    for directory, subdirectories, files in os.walk(root):
        relative = Path(directory).relative_to(root)
        subdirectories[:] = [name for name in subdirectories if str(relative / name) not in NOT_ROOT_FILESYSTEM]
        if relative.name in ("bin", "sbin", "libexec"):
            compilers += [str(relative / name) for name in files if COMPILER.fullmatch(name)]
            pips += [str(relative / name) for name in files if PIP.fullmatch(name)]
        if relative.name in ("site-packages", "dist-packages"):
            packages |= set(subdirectories)
            pips += [str(relative / name) for name in subdirectories if name == "pip"]
    assert compilers == []
    assert pips == []
    assert packages, "no site-packages found: the check is blind"
    assert packages & DEV_PACKAGES == set()
    result = pods["release"].run(["python", "-c", "import genauth_emulator"])
    assert result.returncode != 0 and "No module named 'genauth_emulator'" in result.stderr


def test_image_size_is_reported_and_bounded(capsys):
    """The size goes to the log; a build tree, pip cache or dev tools in the image would push it past the bound."""
    if shutil.which("podman") is None:
        pytest.skip("podman reports the image size; buildah alone does not")
    size = int(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE], capture_output=True, text=True, check=True
        ).stdout
    )
    with capsys.disabled():
        print(f"\n{IMAGE}: {size / 1e6:.0f} MB")
    assert size < MAX_IMAGE_BYTES
