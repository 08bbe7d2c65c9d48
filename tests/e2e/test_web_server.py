"""The web service as gunicorn runs it from the Procfile, under the faults and abuse that used to stop intake:
a bad policy file when a worker process dies, clients that send half a request, requests gunicorn itself
refuses, and values that would forge log lines."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from genauth_emulator.payloads import event_body
from genauth_emulator.sender import WebhookSender
from tests.support.processes import BIN, free_port, service_env, stop
from tests.support.values import ROOT, WEBHOOK_SECRET
from tests.support.waiting import wait_until

BROKEN_POLICY = "policies:\n  - name: broken\n    require_mfa: [SMS]\n"


class Web:
    """gunicorn with config/gunicorn.conf.py, as the Procfile runs it, on a free loopback port."""

    def __init__(self, emulator, database_url, log_path: Path, **extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = service_env(
            emulator, database_url, PORT=str(self.port), HOST="127.0.0.1", ENFORCER_RUN_WORKER="false", **extra
        )
        self.sender = WebhookSender(f"{self.url}/webhooks/genauth", WEBHOOK_SECRET, emulator.state.userpool_id)

    def __enter__(self) -> Web:
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py", "service.app:create_app()"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.is_ready, what="gunicorn to answer /readyz")
        return self

    def __exit__(self, *_exc) -> None:
        self.sender.close()
        if self.process.poll() is None:
            stop(self.process)
        self._log.close()

    def is_ready(self) -> bool:
        assert self.process.poll() is None, f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}"
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def workers(self) -> set[int]:
        """The pids of gunicorn's worker processes."""
        found: set[int] = set()
        for children in Path(f"/proc/{self.process.pid}/task").glob("*/children"):
            found.update(int(pid) for pid in children.read_text().split())
        return found

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]


def test_a_worker_that_dies_while_the_policy_file_is_bad_is_replaced_and_intake_continues(
    emulator, database_url, tmp_path
):
    """The reported failure: valid policy, then an invalid edit, then kill -9 of one gunicorn worker. The new
    worker starts on the last good rules from the database, gunicorn keeps running, deliveries get 200."""
    policy = tmp_path / "policies.yaml"
    shutil.copy(ROOT / "config" / "policies.yaml", policy)
    web = Web(
        emulator,
        database_url,
        tmp_path / "web.log",
        POLICY_FILE=str(policy),
        WEB_CONCURRENCY="2",
        ENFORCER_POLICY_CHECK_INTERVAL="0.1",
    )
    alice = emulator.users["fin.alice"]
    with web:
        assert web.sender.deliver(event_body(emulator.state, "login", alice)).status_code == 200
        wait_until(lambda: len([1 for line in web.log() if line["event"] == "app_started"]) == 2, what="2 workers")
        policy.write_text(BROKEN_POLICY)
        wait_until(
            lambda: "policy_error" in requests.get(f"{web.url}/readyz", timeout=2).json()["checks"],
            what="/readyz to show the bad edit",
        )
        victim = min(web.workers())
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in web.workers() and len(web.workers()) == 2, what="a replacement worker")
        for _ in range(10):
            response = web.sender.deliver(event_body(emulator.state, "login", alice))
            assert response.status_code == 200, response.text
        assert web.process.poll() is None, "gunicorn must keep running"
        states = {requests.get(f"{web.url}/readyz", timeout=2).json()["checks"]["policy_state"] for _ in range(8)}
        assert states <= {"previous", "last-good-copy"}, "old workers keep their rules, the new one the saved copy"
    failed = [line for line in web.log() if line["event"] == "policy_load_failed"]
    assert failed and failed[0]["using"] == "last-good-copy" and failed[0]["level"] == "error"
    started = [line for line in web.log() if line["event"] == "app_started"]
    assert [line["policy"] for line in started] == ["current", "current", "last-good-copy"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gunicorn_starts_with_a_bad_policy_file_and_no_saved_copy(emulator, database_url, tmp_path):
    """A first start with an invalid policy file serves deliveries with no rules, and /readyz says why."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: x\n    match: {departments: [finance]}\n    require_mfa: []\n")
    with Web(emulator, database_url, tmp_path / "web.log", POLICY_FILE=str(bad), WEB_CONCURRENCY="1") as web:
        checks = requests.get(f"{web.url}/readyz", timeout=5).json()["checks"]
        assert checks["policy_state"] == "none" and "require_mfa" in checks["policy_error"]
        delivered = web.sender.deliver(event_body(emulator.state, "login", emulator.users["fin.alice"]))
        assert delivered.status_code == 200
    assert "Traceback" not in web.log_path.read_text()


# -- slow and abusive clients ---------------------------------------------------------------------------------

HALF_A_REQUEST = (
    b"POST /webhooks/genauth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 400\r\nx-authing-token: wrong\r\n\r\n{"eventName": "lo'
)


def open_slow_clients(port: int, count: int, payload: bytes) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(payload)
        clients.append(client)
    return clients


def read_answer(client: socket.socket, timeout: float) -> bytes:
    client.settimeout(timeout)
    answer = b""
    try:
        while chunk := client.recv(65536):
            answer += chunk
    except TimeoutError:
        pass
    return answer


def test_sixty_four_slow_clients_leave_deliveries_answering_fast(emulator, database_url, tmp_path):
    """64 connections that send half a request (four times the threads) hold no thread: every delivery is
    answered at once, and the slow ones get 408 in JSON when their read deadline passes."""
    web = Web(
        emulator,
        database_url,
        tmp_path / "web.log",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        ENFORCER_REQUEST_READ_TIMEOUT="3",
    )
    with web:
        started = time.monotonic()
        slow = open_slow_clients(web.port, 64, HALF_A_REQUEST)
        slow += open_slow_clients(web.port, 8, b"POST /webhooks/genauth HTTP/1.1\r\nHost: x\r\nContent-Le")
        try:
            for _ in range(20):
                sent = time.monotonic()
                response = web.sender.deliver(event_body(emulator.state, "login", emulator.users["fin.alice"]))
                assert response.status_code == 200
                assert time.monotonic() - sent < 1.0, "a delivery waited behind the slow clients"
            answers = [read_answer(client, timeout=8) for client in slow]
        finally:
            for client in slow:
                client.close()
        assert time.monotonic() - started < 15
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert json.loads(body)["code"] == "request_timeout"
    timeouts = [line for line in web.log() if line["event"] == "http_request_timeout"]
    assert len(timeouts) == len(slow)


def raw_request(port: int, request: bytes) -> tuple[int, dict]:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        client.sendall(request)
        answer = read_answer(client, timeout=5)
    finally:
        client.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_requests_gunicorn_refuses_are_answered_in_json(emulator, database_url, tmp_path):
    """Bad request lines, overlong lines and headers and unknown transfer codings get the JSON error shape
    from gunicorn itself, without echoing the request."""
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "invalid_request_line"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "request_header_fields_too_large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 70 + b"\r\n", 431, "request_header_fields_too_large"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: bogus\r\n\r\n", 501, "not_implemented"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400, "invalid_header"),
    ]
    with Web(emulator, database_url, tmp_path / "web.log", WEB_CONCURRENCY="1") as web:
        for request, status, code in cases:
            answered, body = raw_request(web.port, request)
            assert (answered, body["code"], body["status"]) == (status, code, status), request[:60]
            assert set(body) == {"code", "status", "message", "errors"}
            assert b"a" * 50 not in json.dumps(body).encode() and "b" * 50 not in body["message"]
        assert web.sender.deliver(event_body(emulator.state, "test")).status_code == 200
    refused = [line for line in web.log() if line["event"] == "http_request_refused"]
    assert [line["status"] for line in refused] == [status for _, status, _ in cases]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_control_characters_in_a_path_cannot_forge_log_lines(emulator, database_url, tmp_path):
    """A path with an encoded newline, C1 and bidi characters is logged escaped, in JSON and in console lines."""
    forged = "/x%0A12:00:00%20info%20%20%20%20webhook_received%C2%85%E2%80%AE%E2%80%A8"
    for log_format in ("json", "console"):
        log_path = tmp_path / f"{log_format}.log"
        with Web(emulator, database_url, log_path, WEB_CONCURRENCY="1", LOG_FORMAT=log_format) as web:
            assert requests.get(f"{web.url}{forged}", timeout=5).status_code == 404
            wait_until(lambda path=log_path: "/x\\n12:00:00" in path.read_text(), what="the access line")
        text = log_path.read_text()
        assert "\n12:00:00 info" not in text
        assert "\x85" not in text and "\u202e" not in text and "\u2028" not in text
        assert len(text.splitlines()) == len(text.split("\n")) - 1, "every line ends where a line ends"
        assert "webhook_received" not in text.replace("\\n12:00:00 info    webhook_received", "")
