"""A call's deadline: one instant on the monotonic clock, checked between steps of the work.

The engine makes one per call (``EngineConfig.timeout_s``) unless the caller brings its own, as a
gateway does whose clock started when the request arrived. It is passed down to every loop that
can run long (detection's contours, crops, classifier and recogniser batches, a document's pages)
and checked there: a check is one ``time.monotonic()`` call, ~50 ns, so loops check every pass.
A step that cannot be interrupted (one decode, one inference run) ends first; what it may cost is
bounded by the image limits, not by the deadline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .errors import ErrorCode, OcrError


@dataclass(frozen=True)
class Deadline:
    """Expires ``budget_s`` seconds after it was started; ``budget_s`` of 0 never expires."""

    budget_s: float
    expires_at: float  # time.monotonic() instant; inf for no limit

    @classmethod
    def start(cls, budget_s: float, *, started_at: float | None = None) -> Deadline:
        """A deadline ``budget_s`` after ``started_at`` (default: now), on ``time.monotonic``."""
        if not budget_s > 0:
            return NO_DEADLINE
        begin = time.monotonic() if started_at is None else started_at
        return cls(budget_s, begin + budget_s)

    def check(self, stage: str) -> None:
        """Raise OcrError(timeout) once the deadline has passed; ``stage`` says where it stopped."""
        if time.monotonic() >= self.expires_at:
            raise OcrError(
                ErrorCode.TIMEOUT,
                f"the time limit of {self.budget_s:g} s passed during {stage}; the work was stopped",
            )


NO_DEADLINE = Deadline(0.0, math.inf)
