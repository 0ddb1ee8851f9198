"""Fixtures shared by the core tests. Data helpers live in tests/support.py."""

from __future__ import annotations

import pytest

from ocr_core import Engine, EngineConfig
from ocr_core.errors import OcrError


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The default pack with default threads, loaded once for the whole run."""
    try:
        return Engine.load(EngineConfig.from_env())
    except OcrError as exc:
        pytest.skip(f"SKIPPED LOUDLY: default model pack not installed ({exc}); run `make models`")
