"""The FastCGI 1.0 wire format: records, name-value pairs and a sans-IO record parser.

Both ends use it: the pool answers as a Responder, ``ocr.cgi`` talks to the pool as a web server
would. The CGI's forwarder imports it on every hit, so it imports only ``struct``: ``typing``
alone would cost a forwarded hit ~10 ms. Reference: the FastCGI Specification, Open Market, 1996
(sections 3-8).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

VERSION = 1
HEADER = struct.Struct("!BBHHBx")  # version, type, request id, content length, padding length
HEADER_LEN = HEADER.size
MAX_CONTENT = 0xFFFF
# Stream records carry at most this much: a multiple of 8, so no padding is ever needed.
CHUNK = 0xFFF8

BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11
MANAGEMENT_ID = 0

RESPONDER = 1
KEEP_CONN = 1

REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

_BEGIN = struct.Struct("!HB5x")  # role, flags
_END = struct.Struct("!IB3x")  # application status, protocol status
_LONG = struct.Struct("!I")


class ProtocolError(Exception):
    """The peer broke the FastCGI framing: the connection cannot be used any further."""


class Record:
    __slots__ = ("content", "request_id", "type")

    def __init__(self, type_: int, request_id: int, content: bytes) -> None:
        self.type = type_
        self.request_id = request_id
        self.content = content

    def __repr__(self) -> str:
        return f"Record(type={self.type}, request_id={self.request_id}, content={self.content!r})"


def record(type_: int, request_id: int, content: bytes = b"") -> bytes:
    """One record; ``content`` must fit (≤ 65535 bytes)."""
    if len(content) > MAX_CONTENT:
        raise ValueError(f"a record holds at most {MAX_CONTENT} bytes, not {len(content)}")
    padding = -len(content) % 8
    return HEADER.pack(VERSION, type_, request_id, len(content), padding) + content + bytes(padding)


def stream(type_: int, request_id: int, data: bytes, *, close: bool = True) -> bytes:
    """``data`` as a run of stream records, then (``close``) the empty record that ends the stream."""
    view = memoryview(data)
    parts = [record(type_, request_id, bytes(view[i:i + CHUNK])) for i in range(0, len(view), CHUNK)]
    if close:
        parts.append(record(type_, request_id))
    return b"".join(parts)


def begin_request(request_id: int, role: int = RESPONDER, flags: int = 0) -> bytes:
    return record(BEGIN_REQUEST, request_id, _BEGIN.pack(role, flags))


def parse_begin(content: bytes) -> tuple[int, int]:
    """(role, flags) of a BEGIN_REQUEST body."""
    if len(content) != _BEGIN.size:
        raise ProtocolError(f"BEGIN_REQUEST body of {len(content)} bytes, not {_BEGIN.size}")
    role, flags = _BEGIN.unpack(content)
    return role, flags


def end_request(request_id: int, app_status: int = 0, protocol_status: int = REQUEST_COMPLETE) -> bytes:
    return record(END_REQUEST, request_id, _END.pack(app_status, protocol_status))


def parse_end(content: bytes) -> tuple[int, int]:
    """(application status, protocol status) of an END_REQUEST body."""
    if len(content) != _END.size:
        raise ProtocolError(f"END_REQUEST body of {len(content)} bytes, not {_END.size}")
    app_status, protocol_status = _END.unpack(content)
    return app_status, protocol_status


def unknown_type(type_: int) -> bytes:
    return record(UNKNOWN_TYPE, MANAGEMENT_ID, bytes([type_]) + bytes(7))


def _length(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else _LONG.pack(n | 0x80000000)


def encode_pairs(pairs: Mapping[str, str]) -> bytes:
    """Name-value pairs; text is encoded as ``os.environ`` decodes it (UTF-8, surrogateescape)."""
    out = []
    for name, value in pairs.items():
        raw_name = name.encode("utf-8", "surrogateescape")
        raw_value = value.encode("utf-8", "surrogateescape")
        out += [_length(len(raw_name)), _length(len(raw_value)), raw_name, raw_value]
    return b"".join(out)


def decode_pairs(data: bytes) -> dict[str, str]:
    """The inverse of ``encode_pairs``: what a CGI process would find in ``os.environ``."""
    pairs: dict[str, str] = {}
    pos, end = 0, len(data)

    def length() -> int:
        nonlocal pos
        if pos >= end:
            raise ProtocolError("name-value pair cut short")
        if data[pos] < 0x80:
            pos += 1
            return data[pos - 1]
        if pos + 4 > end:
            raise ProtocolError("name-value pair cut short")
        pos += 4
        return _LONG.unpack_from(data, pos - 4)[0] & 0x7FFFFFFF

    while pos < end:
        name_len, value_len = length(), length()
        if pos + name_len + value_len > end:
            raise ProtocolError("name-value pair runs past its record")
        name = data[pos:pos + name_len].decode("utf-8", "surrogateescape")
        pos += name_len
        pairs[name] = data[pos:pos + value_len].decode("utf-8", "surrogateescape")
        pos += value_len
    return pairs


class RecordParser:
    """Bytes in, whole records out; keeps a partial record until the rest arrives."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Record]:
        self._buffer += data
        while len(self._buffer) >= HEADER_LEN:
            version, type_, request_id, length, padding = HEADER.unpack_from(self._buffer)
            if version != VERSION:
                raise ProtocolError(f"FastCGI version {version}; only version {VERSION} exists")
            total = HEADER_LEN + length + padding
            if len(self._buffer) < total:
                return
            content = bytes(self._buffer[HEADER_LEN:HEADER_LEN + length])
            del self._buffer[:total]
            yield Record(type_, request_id, content)

    @property
    def pending(self) -> int:
        """Bytes of a record not yet complete."""
        return len(self._buffer)
