"""Jobs over the OCR endpoint: ``POST …?async=1`` submits, ``GET …?job=ID`` polls, ``DELETE …?job=ID``
cancels or removes. The store is ``ocr_http.jobs``; the pool's job runners do the work.

A poll answers ``{"ok": true, "job", "status", "pages_done", "pages_total"}`` and, once the job is
done, its ``result``: the document the synchronous call answers. ``format=`` other than JSON
answers a done job with that format's body alone, byte for byte the synchronous answer, and a
failed one with its error (its own status), so that a client that wants text can poll until it
is no longer ``202`` and use the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from ocr_core.errors import ErrorCode, OcrError
from ocr_core.formats import MEDIA_TYPES

from .jobs import JobStore, not_found
from .request import Query
from .response import Response, json_response, text_response


def unavailable(in_pool: bool) -> OcrError:
    """Why no job can be run here: no pool (the CGI alone), or a pool told to run none."""
    if in_pool:
        return OcrError(ErrorCode.JOBS_UNAVAILABLE,
                        "this worker pool runs no asynchronous jobs (CRNNOCR_JOB_RUNNERS=0); send the "
                        "request without async=1")
    return OcrError(ErrorCode.JOBS_UNAVAILABLE,
                    "asynchronous jobs (async=1, job=) are run by the worker pool, and none is running "
                    "here: start crnnocr-pool (see the README, \"The worker pool\"), or send the request "
                    "without async=1")


def job_url(environ: Mapping[str, str], job_id: str) -> str:
    """Where the job is polled: this endpoint's path with ``?job=ID``."""
    path = environ.get("REQUEST_URI", "").partition("?")[0]
    path = path or environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return f"{path}?job={job_id}"


def submit(environ: Mapping[str, str], store: JobStore, data: bytes) -> Response:
    """Queue ``data`` with the request's options: ``202 Accepted`` with the job's ID and URL.

    What can be told from the first bytes is refused now, as the synchronous call would refuse it;
    anything found while reading (a damaged page, too many pages) fails the job with that code.
    """
    from ocr_core.image import sniff_format
    from ocr_core.pages import is_pdf

    if not data:
        raise OcrError(ErrorCode.BAD_REQUEST, "the image is empty (0 bytes)")
    if sniff_format(data) is None and not is_pdf(data):
        raise OcrError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the data is not a JPEG, PNG, BMP, TIFF or WebP "
                                                         "image or a PDF (checked by its first bytes)")
    job_id = store.submit(data, environ.get("QUERY_STRING", ""))
    url = job_url(environ, job_id)
    doc = {"ok": True, "job": job_id, "status": "queued", "status_url": url}
    return json_response(HTTPStatus.ACCEPTED, doc, ("Location", url))


def _without_words(doc: Any) -> Any:
    """The JSON document as ``to_dict(words=False)`` gives it, from the one stored with words."""
    if isinstance(doc, dict):
        return {k: _without_words(v) for k, v in doc.items() if k != "words"}
    if isinstance(doc, list):
        return [_without_words(v) for v in doc]
    return doc


def status(store: JobStore, query: Query) -> Response:
    assert query.job is not None
    state = store.state(query.job)
    doc: dict[str, Any] = {"ok": True, "job": query.job, "status": state.status,
                           "pages_done": state.pages_done, "pages_total": state.pages_total}
    if state.error is not None:
        if query.format != "json":
            raise state.error
        doc["error"] = state.error.to_dict()["error"]
    elif state.result_path is not None:
        try:
            stored = json.loads(state.result_path.read_bytes())
        except FileNotFoundError:  # deleted or expired since the state was read
            raise not_found() from None
        if query.format == "text":
            return text_response(stored["json"]["text"])
        if query.format != "json":
            return Response(HTTPStatus.OK, stored[query.format].encode("utf-8"),
                            (("Content-Type", MEDIA_TYPES[query.format]),))
        doc["result"] = stored["json"] if query.words else _without_words(stored["json"])
    elif query.format != "json":
        return json_response(HTTPStatus.ACCEPTED, doc)
    return json_response(HTTPStatus.OK, doc)


def delete(store: JobStore, query: Query) -> Response:
    assert query.job is not None
    was = store.delete(query.job)
    return json_response(HTTPStatus.OK, {"ok": True, "job": query.job, "deleted": True, "was": was})
