"""Fixtures shared by the test modules. Data helpers live in tests/support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.servers import installed_tree, missing_models
from ocr_core import Engine, EngineConfig
from ocr_core.errors import OcrError
from tests.support import EVAL_DIR, load_score


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The default pack with default threads, loaded once for the whole run."""
    try:
        return Engine.load(EngineConfig.from_env())
    except OcrError as exc:
        pytest.skip(f"SKIPPED LOUDLY: default model pack not installed ({exc}); run `make models`")


@pytest.fixture(scope="session")
def norm() -> Callable[[str], str]:
    """score.py's own normalisation for English text (case-folded), so CER bounds mean the same."""
    score = load_score()
    if score is None:
        pytest.skip(f"SKIPPED LOUDLY: no score.py in {EVAL_DIR}: eval data missing (set CRNNOCR_EVAL)")
    return lambda text: score.norm(text, "en")


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    """An installed runtime tree for the real servers (deploy/); modules that check more override it."""
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as path:
        yield path
