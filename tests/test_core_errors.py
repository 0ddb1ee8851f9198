"""The one error vocabulary: codes, statuses and C numbers are stable and distinct."""

from __future__ import annotations

import pytest

from ocr_core.errors import ErrorCode, OcrError

# The documented contract (README, ARCHITECTURE.md, crnnocr.h). Changing a row breaks clients.
CONTRACT = {
    "bad_request": (1, 400),
    "method_not_allowed": (2, 405),
    "length_required": (3, 411),
    "payload_too_large": (4, 413),
    "image_too_large": (5, 413),
    "unsupported_media_type": (6, 415),
    "decode_failed": (7, 422),
    "model_unavailable": (8, 503),
    "timeout": (9, 503),
    "internal": (10, 500),
    "busy": (11, 503),
    "too_many_regions": (12, 422),
    "too_many_pages": (13, 413),
    "document_encrypted": (14, 422),
    "not_found": (15, 404),
    "jobs_unavailable": (16, 503),
}


def test_codes_match_the_documented_contract() -> None:
    assert {c.value: (c.number, c.http_status) for c in ErrorCode} == CONTRACT


def test_numbers_are_distinct_and_round_trip() -> None:
    assert len({c.number for c in ErrorCode}) == len(ErrorCode)
    for code in ErrorCode:
        assert ErrorCode.from_number(code.number) is code
        assert code.summary
    with pytest.raises(ValueError):
        ErrorCode.from_number(0)


def test_error_serialises_as_the_cgi_error_object() -> None:
    error = OcrError(ErrorCode.DECODE_FAILED, "truncated")
    assert error.to_dict() == {"ok": False, "error": {"code": "decode_failed", "message": "truncated"}}
    assert str(error) == "decode_failed: truncated"
    assert error.code == "decode_failed"
