"""The CGI's warm path: hand the request to the worker pool over FastCGI and relay its answer.

``cgi-bin/ocr.cgi`` calls ``forward`` before anything else. When a pool answers on
``CRNNOCR_POOL_SOCKET`` (default ``/run/crnnocr/pool.sock``; a path, or ``HOST:PORT`` for a pool on
another host; empty turns forwarding off), the request's meta-variables and body go to it and its
response, already in CGI form, goes to stdout byte for byte: the same bytes the CGI would have
written itself. When nothing answers, nothing has been read and the CGI does the work in-process.

A forwarded hit must start in a few milliseconds, so this path imports almost nothing: the
script runs ``python -I -S`` (no ``site``), and this module uses ``_socket`` rather than ``socket``
(whose ``enum`` and ``selectors`` cost ~7 ms) and no ``typing`` (~10 ms).
"""

from __future__ import annotations

import _socket
import os

from . import fastcgi

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_POOL_SOCKET = "/run/crnnocr/pool.sock"
CONNECT_TIMEOUT_S = 1.0
# A backstop only: the pool answers 503 timeout itself at CRNNOCR_TIMEOUT_S.
ANSWER_SLACK_S = 10.0
DEFAULT_TIMEOUT_S = 20.0
REQUEST_ID = 1
# RFC 3875 meta-variables and the common extensions; HTTP_* are added below. Nothing else of the
# CGI's environment (CRNNOCR_* above all: the pool has its own configuration) is sent.
META_VARIABLES = frozenset({
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT", "GATEWAY_INTERFACE", "HTTPS",
    "PATH_INFO", "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_IDENT",
    "REMOTE_PORT", "REMOTE_USER", "REQUEST_METHOD", "REQUEST_SCHEME", "REQUEST_URI", "SCRIPT_FILENAME",
    "SCRIPT_NAME", "SERVER_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
})


class PoolFailed(Exception):
    """The pool stopped answering midway (nothing more can be done in-process: the body is gone)."""


def request_params(environ: Mapping[str, str]) -> dict[str, str]:
    """What a web server would send as FastCGI params for this CGI request."""
    return {k: v for k, v in environ.items()
            if k in META_VARIABLES or (k.startswith("HTTP_") and k != "HTTP_PROXY")}


def connect(address: str) -> _socket.socket | None:
    """A connection to the pool, or None when none answers there."""
    if address.startswith("/"):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        target: str | tuple[str, int] = address
    else:
        host, _, port = address.rpartition(":")
        if not port.isdigit():
            return None
        sock = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET, _socket.SOCK_STREAM)
        target = (host.strip("[]"), int(port))
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        return None
    return sock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay(sock: _socket.socket, environ: Mapping[str, str], stdin: int = 0, stdout: int = 1) -> bool:
    """Send the request, copy the response to ``stdout``; True once the pool has ended the request.

    Raises PoolFailed if the pool breaks off; returns False if it did so after writing part of
    its answer (nothing can be added then).
    """
    raw = environ.get("CONTENT_LENGTH", "").strip()
    remaining = int(raw) if raw.isascii() and raw.isdigit() else 0
    params = fastcgi.encode_pairs(request_params(environ))
    wrote = False
    try:
        sock.sendall(fastcgi.begin_request(REQUEST_ID) + fastcgi.stream(fastcgi.PARAMS, REQUEST_ID, params))
        while remaining:
            chunk = os.read(stdin, min(remaining, fastcgi.CHUNK))
            if not chunk:
                break
            sock.sendall(fastcgi.record(fastcgi.STDIN, REQUEST_ID, chunk))
            remaining -= len(chunk)
        sock.sendall(fastcgi.record(fastcgi.STDIN, REQUEST_ID))
        parser = fastcgi.RecordParser()
        while data := sock.recv(1 << 16):
            for rec in parser.feed(data):
                if rec.request_id != REQUEST_ID:
                    continue
                if rec.type == fastcgi.STDOUT and rec.content:
                    _write_all(stdout, rec.content)
                    wrote = True
                elif rec.type == fastcgi.STDERR and rec.content:
                    _write_all(2, rec.content)
                elif rec.type == fastcgi.END_REQUEST:
                    return True
    except (OSError, fastcgi.ProtocolError) as exc:
        if not wrote:
            raise PoolFailed(str(exc)) from None
        return False
    if not wrote:
        raise PoolFailed("the pool closed the connection without answering")
    return False


def forward(environ: Mapping[str, str]) -> bool:
    """Answer this CGI request through the pool; False (and nothing read) when no pool answers."""
    address = environ.get("CRNNOCR_POOL_SOCKET", DEFAULT_POOL_SOCKET).strip()
    method = environ.get("REQUEST_METHOD", "").upper()
    # A POST without a length is refused in-process, cheaply, exactly as the CGI always has.
    if not address or (method == "POST" and not environ.get("CONTENT_LENGTH", "").strip()):
        return False
    sock = connect(address)
    if sock is None:
        return False
    try:
        timeout = float(environ.get("CRNNOCR_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout = DEFAULT_TIMEOUT_S
    sock.settimeout((timeout or DEFAULT_TIMEOUT_S) + ANSWER_SLACK_S)
    try:
        relay(sock, environ)
    except PoolFailed as exc:
        _answer_pool_failed(environ, str(exc))
    finally:
        sock.close()
    return True


def _answer_pool_failed(environ: Mapping[str, str], detail: str) -> None:
    """The pool took the request and broke off: 503 busy in JSON, as the pool itself would say."""
    from ocr_core.errors import ErrorCode, OcrError

    from .app import error_reply, log
    from .settings import CgiSettings

    log(f"the worker pool stopped answering mid-request: {detail}")
    try:
        settings = CgiSettings.from_env(environ)
    except OcrError:
        settings = CgiSettings()
    error = OcrError(ErrorCode.BUSY, "the worker pool stopped answering; retry")
    response = error_reply(error, environ, settings)
    _write_all(1, response.to_cgi(include_body=environ.get("REQUEST_METHOD", "").upper() != "HEAD"))
