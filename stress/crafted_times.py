"""The hostile set of tests/crafted.py, one request each: the code it gets and how long it takes.

Run against a warm engine in this process (what the core spends) and, by ``bounds``, through each
real server (what a client waits for, a cold CGI process included). Every case has the code the
README documents for it; the time bound is the request deadline (``CRNNOCR_TIMEOUT_S``), and a
refusal should come long before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deploy.servers import Server, call
from ocr_core.errors import ErrorCode, OcrError
from tests import crafted
from tests.test_core_bounds import dense_page


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    expected: str  # "ok" or an ErrorCode value


@dataclass(frozen=True)
class Answer:
    outcome: str  # "ok" or the error code
    status: int | None  # HTTP status, through a server
    seconds: float


def cases(side: int) -> list[Case]:
    """Issue 11's refused classes, a page of ~9,600 tiny characters, and the most scans a JPEG of
    ``side``² may have (allowed: it must finish, not be refused)."""
    found = [Case(name, data, code.value) for name, (data, code) in crafted.refused().items()]
    found.append(Case("dense_page_9600_characters", dense_page(), ErrorCode.TOO_MANY_REGIONS.value))
    found.append(Case(f"jpeg_100_scans_{side}px", crafted.progressive_jpeg(side, side, 100), "ok"))
    return found


def in_process(all_cases: list[Case]) -> dict[str, Answer]:
    """Each case through one warm engine (one inference thread), after a warm-up call."""
    from ocr_core import Engine, EngineConfig

    engine = Engine.load(EngineConfig.from_env(threads=1))
    engine.recognize(crafted.text_page(1200))
    answers = {}
    for case in all_cases:
        started = time.monotonic()
        try:
            engine.recognize(case.data)
            outcome = "ok"
        except OcrError as exc:
            outcome = exc.code.value
        answers[case.name] = Answer(outcome, None, time.monotonic() - started)
    return answers


def through(server: Server, all_cases: list[Case]) -> dict[str, Answer]:
    """Each case POSTed to ``server`` as a raw body, one after another."""
    answers = {}
    for case in all_cases:
        started = time.monotonic()
        reply = call(
            server, "POST", body=case.data, headers={"Content-Type": "application/octet-stream"}, timeout=120
        )
        seconds = time.monotonic() - started
        outcome = "ok" if reply.status == 200 else reply.json()["error"]["code"]
        answers[case.name] = Answer(outcome, reply.status, seconds)
    return answers
