"""Where a running server's CPU goes, by intake stage: py-spy samples of gunicorn's workers under load.

``bench/intake.py --sample`` runs one extra closed-loop round per server with ``py-spy record`` attached to
each worker process (``--nonblocking``: the workers are not paused; ``--gil``: only the thread holding the GIL
is sampled, so a thread waiting for the GIL, a lock or the disk is not counted). Every sample goes to the stage
of the innermost frame the service knows, so a stage's share times the round's server CPU per acknowledged
delivery is what that stage costs per delivery under real load (threads, locks, gunicorn, the access log).
py-spy is not a dependency of the project; install it anywhere, for example
``.venv/bin/pip install --target var/pyspy py-spy``, and pass ``--py-spy var/pyspy/bin/py-spy``.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# (stage, a piece of the frame's file path), tried on each frame from the innermost out; the first match names
# the sample's stage. The access log is matched on the whole stack first: the bare app writes it too.
ACCESS_LOG = "access log (gunicorn, also in the bare app)"
STAGES: list[tuple[str, str]] = [
    ("secret check", "service/intake/authentication.py"),
    ("parse", "service/intake/parsing.py"),
    ("validate + subjects", "service/intake/schemas.py"),
    ("digest", "service/store/keys.py"),
    ("commit (group commit, SQL, lock, fsync)", "service/store/"),
    ("metrics", "prometheus_client/"),
    ("logs (webhook_received)", "service/logs.py"),
    ("view glue (views.py)", "service/intake/views.py"),
    ("request hooks (app.py)", "service/app.py"),
    ("framework (Flask, Werkzeug)", "flask/"),
    ("framework (Flask, Werkzeug)", "werkzeug/"),
]
SERVER = "server (gunicorn, sockets, buffering worker)"
ORDER = [ACCESS_LOG, *dict.fromkeys(stage for stage, _ in STAGES), SERVER]


@contextlib.contextmanager
def sampled(py_spy: str, pids: list[int], duration: float, folder: Path, name: str) -> Iterator[list[Path]]:
    """Record each of ``pids`` with py-spy for ``duration`` seconds while the block runs; yields the raw files."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs = [folder / f"{name}-{pid}.txt" for pid in pids]
    command = ["--rate", "250", "--nonblocking", "--gil", "--format", "raw", "--duration", f"{max(1, round(duration))}"]
    processes = [
        subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), *command, "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, output in zip(pids, outputs, strict=True)
    ]
    try:
        yield outputs
    finally:
        for process in processes:
            try:
                process.wait(timeout=duration + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stage_of(stack: str) -> str:
    """The stage of one collapsed stack (``outer (file:line);…;inner (file:line)``)."""
    if "gunicorn/glogging.py" in stack:
        return ACCESS_LOG
    for frame in reversed(stack.split(";")):
        for stage, piece in STAGES:
            if piece in frame:
                return stage
    return SERVER


def stage_shares(files: list[Path]) -> tuple[dict[str, float], int]:
    """Each stage's share of the samples in ``files`` (py-spy's raw format), and the number of samples."""
    counts: Counter[str] = Counter()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, number = line.rpartition(" ")
            if stack and number.isdigit():
                counts[stage_of(stack)] += int(number)
    total = sum(counts.values())
    return {stage: counts[stage] / total for stage in ORDER if total}, total
