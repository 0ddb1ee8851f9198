"""The FastCGI wire format (ocr_http/fastcgi.py) on its own; the pool speaks it in tests/test_pool.py."""

from __future__ import annotations

import pytest

from ocr_http import fastcgi


def test_records_round_trip_through_the_parser_in_any_split() -> None:
    data = (fastcgi.begin_request(7, fastcgi.RESPONDER, fastcgi.KEEP_CONN)
            + fastcgi.stream(fastcgi.PARAMS, 7, fastcgi.encode_pairs({"A": "1"}))
            + fastcgi.stream(fastcgi.STDIN, 7, bytes(range(256)) * 600)
            + fastcgi.end_request(7, 3, fastcgi.OVERLOADED))
    for step in (1, 7, 8, 4096, len(data)):
        parser = fastcgi.RecordParser()
        records = [r for i in range(0, len(data), step) for r in parser.feed(data[i:i + step])]
        assert parser.pending == 0
        assert [r.type for r in records] == [fastcgi.BEGIN_REQUEST, fastcgi.PARAMS, fastcgi.PARAMS,
                                             fastcgi.STDIN, fastcgi.STDIN, fastcgi.STDIN, fastcgi.STDIN,
                                             fastcgi.END_REQUEST]
        assert {r.request_id for r in records} == {7}
        assert fastcgi.parse_begin(records[0].content) == (fastcgi.RESPONDER, fastcgi.KEEP_CONN)
        assert b"".join(r.content for r in records if r.type == fastcgi.STDIN) == bytes(range(256)) * 600
        assert fastcgi.parse_end(records[-1].content) == (3, fastcgi.OVERLOADED)


def test_every_record_is_padded_to_eight_bytes() -> None:
    for size in (0, 1, 7, 8, 9, 65535):
        assert len(fastcgi.record(fastcgi.STDOUT, 1, bytes(size))) % 8 == 0
    with pytest.raises(ValueError):
        fastcgi.record(fastcgi.STDOUT, 1, bytes(65536))


def test_name_value_pairs_short_long_and_not_utf8() -> None:
    pairs = {"SHORT": "x", "LONG_" * 40: "v" * 70000, "EMPTY": "", "BYTES": b"\xff\xfe".decode("utf-8",
                                                                                             "surrogateescape")}
    encoded = fastcgi.encode_pairs(pairs)
    assert encoded[:2] == bytes([5, 1])  # one-byte lengths below 128
    assert fastcgi.decode_pairs(encoded) == pairs


@pytest.mark.parametrize("data", [b"\x05", b"\x05\x01SHO", b"\x80\x00\x00", b"\x85\x00\x00\x00\x01xx"])
def test_cut_pairs_are_a_protocol_error(data: bytes) -> None:
    with pytest.raises(fastcgi.ProtocolError):
        fastcgi.decode_pairs(data)


def test_a_wrong_version_is_a_protocol_error() -> None:
    bad = bytearray(fastcgi.record(fastcgi.STDIN, 1, b"x"))
    bad[0] = 2
    with pytest.raises(fastcgi.ProtocolError):
        list(fastcgi.RecordParser().feed(bytes(bad)))
