"""What a POST asks for: options from the query string, image or document bytes from the body.

Imported for POST only (it pulls in the multipart parser, base64 and JSON). The image's type is
never taken from the request: the core sniffs magic bytes, so a declared type only chooses how
the body is unwrapped, and a client-supplied file name is never read at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from multipart import (
    MultipartError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from ocr_core.config import RecognizeOptions
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.formats import check_format

IMAGE_FIELDS = ("image", "file", "image_file")
RAW_TYPES = ("application/octet-stream", "application/pdf")
QUERY_KEYS = frozenset({"mode", "format", "cls", "pack", "min_score", "pages", "dpi", "words", "preview",
                        "async", "job"})
PACK_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
BOOLS = {"0": False, "false": False, "no": False, "1": True, "true": True, "yes": True}
DATA_URL = re.compile(r"data:[^,]*?;base64,", re.IGNORECASE)
MAX_FORM_PARTS = 16


def bad(message: str) -> OcrError:
    return OcrError(ErrorCode.BAD_REQUEST, message)


@dataclass(frozen=True)
class Query:
    """Options of one call: how to recognise, how to answer (a format of ``ocr_core.formats``,
    with each line's words in JSON or not, with a preview of each page of a document in JSON or
    not), which model pack; and for jobs (``ocr_http.job_api``) whether to run it as one, or which
    one is asked about."""

    options: RecognizeOptions
    format: str = "json"
    words: bool = False
    preview: bool = False
    pack: str | None = None
    run_async: bool = False
    job: str | None = None


def parse_query(query_string: str) -> Query:
    """``mode=page|line``, ``format=json|text|hocr|alto|tsv``, ``cls=0|1``, ``pack=NAME``,
    ``min_score=0..1``, and for documents ``pages=1-3,7`` and ``dpi=30..1200``; ``words=0|1`` adds
    each line's words to the JSON, ``preview=0|1`` each page of a document as a JPEG
    (``ocr_core.previews``; a single image gets none: the client has it); ``async=0|1`` submits a
    job, ``job=ID`` names one.

    Unknown or repeated keys are refused, so that a typo is not silently ignored.
    """
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except ValueError as exc:
        raise bad(f"cannot parse the query string: {exc}") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key not in QUERY_KEYS:
            raise bad(f"unknown query parameter {key!r}; known: {', '.join(sorted(QUERY_KEYS))}")
        if key in params:
            raise bad(f"query parameter {key!r} is given more than once")
        params[key] = value.strip()

    fmt = check_format(params.get("format", "json"))
    changes: dict[str, object] = {}
    if "mode" in params:
        changes["mode"] = params["mode"].lower()
    for flag in ("cls", "words", "preview", "async"):
        if flag in params and params[flag].lower() not in BOOLS:
            raise bad(f"{flag} must be 0 or 1, not {params[flag]!r}")
    if "cls" in params:
        changes["use_cls"] = BOOLS[params["cls"].lower()]
    if "pages" in params:
        changes["pages"] = params["pages"]
    if "dpi" in params:
        if not (params["dpi"].isascii() and params["dpi"].isdigit() and len(params["dpi"]) <= 5):
            raise bad(f"dpi must be a whole number of dots per inch, not {params['dpi']!r}")
        changes["dpi"] = int(params["dpi"])
    if "min_score" in params:
        try:
            changes["min_score"] = float(params["min_score"])
        except ValueError:
            raise bad(f"min_score must be a number within 0..1, not {params['min_score']!r}") from None
    pack = params.get("pack") or None
    if pack is not None and not PACK_NAME.fullmatch(pack):
        raise bad(f"pack {pack!r} is not a valid pack name")
    # replace() re-runs RecognizeOptions' own validation of mode, min_score, pages and dpi.
    words = BOOLS[params.get("words", "0").lower()]
    preview = BOOLS[params.get("preview", "0").lower()]
    return Query(options=replace(RecognizeOptions(), **changes), format=fmt, words=words, preview=preview,
                 pack=pack, run_async=BOOLS[params.get("async", "0").lower()], job=params.get("job"))


def image_from_body(content_type: str, body: bytes, max_image_bytes: int) -> bytes:
    """The image bytes carried by ``body``, unwrapped according to its declared Content-Type.

    No Content-Type at all reads as a raw body: the simplest thing a firmware client can send.
    """
    media_type, params = parse_options_header(content_type) if content_type.strip() else ("", {})
    media_type = media_type.lower() or RAW_TYPES[0]
    if media_type.startswith("image/") or media_type in RAW_TYPES:
        return body
    if media_type == "multipart/form-data":
        return _from_multipart(body, params.get("boundary", ""), max_image_bytes)
    if media_type == "application/json":
        return _from_json(body)
    raise OcrError(
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"Content-Type {media_type!r} is not accepted; send multipart/form-data (field 'image'), "
        "image/*, application/pdf or application/octet-stream (raw bytes), or application/json "
        "{\"image_base64\": ...}",
    )


def _from_multipart(body: bytes, boundary: str, max_image_bytes: int) -> bytes:
    if not boundary:
        raise bad("multipart/form-data without a boundary parameter")
    found: list[bytes] | None = None
    current: list[bytes] | None = None
    try:
        with PushMultipartParser(
            boundary, content_length=len(body), max_segment_count=MAX_FORM_PARTS,
            max_segment_size=max_image_bytes, strict=True,
        ) as parser:
            for event in parser.parse(body):
                if event is None:  # end of a part
                    if current is not None and found is None:
                        found = current
                    current = None
                elif isinstance(event, bytes | bytearray):
                    if current is not None:
                        current.append(bytes(event))
                elif event.name in IMAGE_FIELDS:  # a part's headers
                    current = []
        # Leaving the block closes the parser, which raises if the body stopped mid-stream.
    except ParserLimitReached as exc:
        raise OcrError(ErrorCode.PAYLOAD_TOO_LARGE, f"multipart body over the limits: {exc}") from None
    except MultipartError as exc:
        raise bad(f"malformed multipart/form-data body: {exc}") from None
    if found is None:
        raise bad(f"the multipart body has no part named {' or '.join(map(repr, IMAGE_FIELDS))}")
    return b"".join(found)


def _from_json(body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise bad(f"the JSON body does not parse: {exc}") from None
    encoded = doc.get("image_base64") if isinstance(doc, dict) else None
    if not isinstance(encoded, str):
        raise bad('the JSON body must be an object with a string "image_base64"')
    prefix = DATA_URL.match(encoded)
    if prefix:
        encoded = encoded[prefix.end():]
    elif encoded[:5].lower() == "data:":
        raise bad("only base64 data: URLs are accepted (data:<type>;base64,...)")
    try:
        # validate=True refuses stray characters; line breaks from MIME-style wrapping are fine.
        return base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(f"image_base64 is not valid base64: {exc}") from None
