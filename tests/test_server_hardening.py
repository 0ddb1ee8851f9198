"""The shipped lighttpd and Apache configs against hostile clients, on the real servers (127.0.0.1).

TRACE is refused; the refusals a server answers itself are the README's JSON error shape with the
code of ocr_core/errors.py; slow clients are cut off within the configs' bounds while the server
keeps answering others (a small, fixed number of sockets); an abandoned request's CGI is stopped
(lighttpd; Apache cannot, see the README); a bad setting in ``python -m deploy`` is one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.runtime import CHECKOUT
from deploy.servers import KINDS, Reply, Server, call, process_tree, running_server, serving
from deploy.sites import SERVER_ERRORS
from ocr_core.errors import ErrorCode
from tests.support import render_text

# The configs' bounds (deploy/*.conf): Apache's RequestReadTimeout header=10-20 and body=10 at
# MinRate=500; lighttpd's server.max-read-idle = 10 (checked once a second).
APACHE_SLOW_CUT_S = 20 + 3
LIGHTTPD_IDLE_CUT_S = 10 + 3
TRICKLE_EVERY_S = 2.0
SLOW_CLIENTS = 8  # of each kind: a bounded count; the point is the bound, not the flood
ANSWER_WITHIN_S = 5.0


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, prefix: Path) -> Iterator[Server]:
    if not shutil.which("lighttpd" if request.param == "lighttpd" else "apache2"):
        pytest.skip(f"{request.param.upper()} IS NOT INSTALLED: `make setup` installs it")
    with serving(request.param, "cgi", prefix) as srv:
        yield srv


def _raw(server: Server, data: bytes, timeout: float = 10) -> Reply:
    """Send ``data`` as it is, read the whole answer (the server closes after a refusal)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    headers = dict(fields)
    assert len(headers) == len(fields), f"a header twice: {fields}"  # e.g. the CGI's type and the config's
    return Reply(int(lines[0].split()[1]), headers, body)


# The application's headers on every answer (ocr_http/response.py), the servers' own refusals too.
APP_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _adds_headers_to_parse_refusals(server: Server) -> bool:
    """lighttpd adds configured headers only to requests it has parsed: a refusal of the request
    line or headers themselves (400, 411, 413, 431, 501) goes out before any module runs (README)."""
    return server.kind == "apache"


def _assert_json_error(reply: Reply, status: int, *, app_headers: bool = True) -> None:
    name, _ = SERVER_ERRORS[status]
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json; charset=utf-8", reply.headers
    if app_headers:
        assert {k: reply.headers.get(k) for k in APP_HEADERS} == APP_HEADERS, reply.headers
    doc = reply.json()
    assert doc["ok"] is False and doc["error"]["message"]
    assert doc["error"]["code"] == ErrorCode[name].value


# --- TRACE and the servers' own refusals ----------------------------------------------------------

def test_trace_is_refused_and_echoes_nothing(server: Server) -> None:
    reply = call(server, "TRACE", path="", headers={"Cookie": "session=secret-cookie-value"})
    # Apache: TraceEnable off → 405; lighttpd does not implement TRACE at all → 501.
    _assert_json_error(reply, 405 if server.kind == "apache" else 501)
    assert b"secret-cookie-value" not in reply.body


HUGE_LENGTH = (b"POST /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
               b"Content-Length: 999999999999\r\nConnection: close\r\n\r\n")
BIG_HEADER = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 9000 + b"\r\nConnection: close\r\n\r\n"
UNKNOWN_METHOD = b"FROB / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
BAD_REQUEST_LINE = b"GET /\x01 nonsense HTTP/9\r\nHost: t\r\n\r\n"
NO_LENGTH = b"POST /cgi-bin/ocr.cgi HTTP/1.0\r\nHost: t\r\nContent-Type: image/png\r\n\r\n"


@pytest.mark.parametrize(("request_bytes", "statuses"), [
    (HUGE_LENGTH, {"lighttpd": 413, "apache": 413}),
    # lighttpd answers an oversize header 431; Apache 400 (it has no 431).
    (BIG_HEADER, {"lighttpd": 431, "apache": 400}),
    (UNKNOWN_METHOD, {"lighttpd": 501, "apache": 501}),
    (BAD_REQUEST_LINE, {"lighttpd": 400, "apache": 400}),
], ids=["413-declared-length", "header-too-large", "501-unknown-method", "400-bad-request-line"])
def test_server_level_refusals_are_json(server: Server, request_bytes: bytes,
                                        statuses: dict[str, int]) -> None:
    _assert_json_error(_raw(server, request_bytes), statuses[server.kind],
                       app_headers=_adds_headers_to_parse_refusals(server))


def test_post_without_length_is_json_411_on_both(server: Server) -> None:
    """lighttpd answers this itself, Apache's CGI does: the same body shape and code either way."""
    reply = _raw(server, NO_LENGTH)
    _assert_json_error(reply, 411, app_headers=_adds_headers_to_parse_refusals(server))
    assert reply.json()["error"]["code"] == ErrorCode.LENGTH_REQUIRED.value


APP_ERROR = (b"POST /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 5\r\n"
             b"Connection: close\r\n\r\nhello")


@pytest.mark.parametrize("request_bytes", [APP_ERROR, b"GET /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\n"
                                           b"Connection: close\r\n\r\n"], ids=["415", "health"])
def test_the_applications_answers_keep_one_of_each_header(server: Server, request_bytes: bytes) -> None:
    """The configs add the headers to the servers' own answers; the application's, which carry
    them already, still have each once (``_raw`` refuses a header sent twice)."""
    reply = _raw(server, request_bytes)
    assert reply.status in (200, 415)
    assert {k: reply.headers.get(k) for k in APP_HEADERS} == APP_HEADERS, reply.headers


def test_apache_without_its_pool_answers_json_503_busy(prefix: Path) -> None:
    """mod_proxy_fcgi with no pool on the socket: the server's own 503, in the JSON shape."""
    if not shutil.which("apache2"):
        pytest.skip("APACHE IS NOT INSTALLED: `make setup` installs it")
    with running_server("apache", prefix, mode="fastcgi") as server:
        _assert_json_error(call(server, "GET"), 503)


def test_server_codes_are_the_applications() -> None:
    """Where a status is also the application's, the server's code is the application's for it."""
    for status, (name, _) in SERVER_ERRORS.items():
        same_status = [code for code in ErrorCode if code.http_status == status]
        if same_status:
            assert ErrorCode[name] in same_status, status


# --- Slow clients ---------------------------------------------------------------------------------

def _open(server: Server, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(first)
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True  # the end of the stream, or an answer (Apache's 408) that the close follows


def _trickle(sock: socket.socket, data: bytes) -> bool:
    """Send a little more; False when the server has closed the connection."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


SLOW_HEADER_START = b"GET / HTTP/1.1\r\nHost: t\r\n"
SLOW_BODY_START = (b"POST /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
                   b"Content-Length: 1000000\r\n\r\n\x89PNG")


def test_slow_clients_are_cut_off_and_others_are_served(server: Server) -> None:
    """SLOW_CLIENTS sending a header line every 2 s, as many sending a body at 5 B/s, and one of
    each that stops sending: the server answers others throughout, and cuts off each slow client
    within its bound (Apache: all of them; lighttpd: the silent ones, see the README)."""
    kinds = ["header"] * SLOW_CLIENTS + ["body"] * SLOW_CLIENTS + ["silent-header", "silent-body"]
    socks = [_open(server, SLOW_HEADER_START if k.endswith("header") else SLOW_BODY_START) for k in kinds]
    start = time.monotonic()
    cut: dict[int, float] = {}
    worst_answer = 0.0
    bound = APACHE_SLOW_CUT_S if server.kind == "apache" else LIGHTTPD_IDLE_CUT_S
    try:
        n = 0
        while time.monotonic() - start < bound + TRICKLE_EVERY_S:
            for i, (kind, sock) in enumerate(zip(kinds, socks, strict=True)):
                if i in cut:
                    continue
                alive = not _closed_by_server(sock)
                if alive and not kind.startswith("silent"):
                    alive = _trickle(sock, b"X-Slow-%d: y\r\n" % n if kind == "header" else b"0123456789")
                if not alive:
                    cut[i] = time.monotonic() - start
            n += 1
            asked = time.monotonic()
            reply = call(server, "GET", path="", timeout=ANSWER_WITHIN_S)
            worst_answer = max(worst_answer, time.monotonic() - asked)
            assert reply.status == 200
            if len(cut) == len(kinds):
                break
            time.sleep(TRICKLE_EVERY_S)
    finally:
        for sock in socks:
            sock.close()
    print(f"{server.kind}: cut after (s) {sorted(round(t, 1) for t in cut.values())}; "
          f"others answered within {worst_answer:.2f} s")
    assert worst_answer < ANSWER_WITHIN_S
    must_cut = range(len(kinds)) if server.kind == "apache" else [len(kinds) - 2, len(kinds) - 1]
    for i in must_cut:
        assert i in cut and cut[i] <= bound, (kinds[i], cut.get(i))


# --- Abandoned requests ---------------------------------------------------------------------------

def _cgi_processes(server: Server) -> list[int]:
    """The running ocr.cgi processes under this server's main process."""
    found = []
    for pid in process_tree([server.pid]):
        with contextlib.suppress(OSError):
            if b"ocr.cgi" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def test_an_abandoned_requests_cgi_is_stopped(server: Server) -> None:
    if server.kind == "apache":
        pytest.skip("Apache (mod_cgid) does not notice a client that hung up while its CGI works: "
                    "the CGI runs to CRNNOCR_TIMEOUT_S (README, Slow clients and abandoned requests)")
    page = render_text([f"Item {i}: 2 x espresso {i}.50 EUR, paid by card" for i in range(40)], size=32)
    head = (f"POST /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(page)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + page)
        deadline = time.monotonic() + 10
        while not (cgis := _cgi_processes(server)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cgis, "the CGI never started"
        time.sleep(0.3)
    hung_up = time.monotonic()
    while any(Path(f"/proc/{pid}").exists() for pid in cgis) and time.monotonic() - hung_up < 5:
        time.sleep(0.02)
    gone_after = time.monotonic() - hung_up
    print(f"lighttpd stopped the abandoned CGI {gone_after:.2f} s after the client hung up")
    assert gone_after < 2.0


# --- python -m deploy with a bad setting ------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "inf", "-1", "nan", "1e400"])
@pytest.mark.parametrize("command", ["render", "serve"])
def test_a_bad_timeout_is_one_line_not_a_traceback(tmp_path: Path, value: str, command: str) -> None:
    argv = [sys.executable, "-m", "deploy", command, "apache", "--prefix", str(tmp_path), "--port", "1"]
    if command == "render":
        argv += ["--run-dir", str(tmp_path / "run")]
    done = subprocess.run(argv, cwd=CHECKOUT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CRNNOCR_TIMEOUT_S": value})
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "CRNNOCR_TIMEOUT_S" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
