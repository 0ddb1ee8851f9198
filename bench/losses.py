"""Where crnnocr loses to a peer: per-image edit distances under score.py's own normalisation.

``score.py`` is loaded as a module for its ``norm`` so the per-image figures add up to its totals.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rapidfuzz.distance import Levenshtein


@dataclass(frozen=True)
class Loss:
    image: str
    ref_len: int
    ours_edits: int
    peer_edits: int
    ref: str
    ours: str
    peer: str

    @property
    def extra_edits(self) -> int:
        return self.ours_edits - self.peer_edits


def load_score_module(score_py: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_score", score_py)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {score_py}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texts(pred_path: Path) -> dict[str, str]:
    with open(pred_path, encoding="utf-8") as fh:
        return {p["image"]: p["text"] for p in map(json.loads, fh)}


def worst_losses(
    score: ModuleType, records: tuple[dict[str, Any], ...], ours_pred: Path, peer_pred: Path, limit: int = 5
) -> list[Loss]:
    """The ``limit`` images on which crnnocr makes the most edits more than the peer."""
    ours, peer = _texts(ours_pred), _texts(peer_pred)
    losses = []
    for record in records:
        lang = record.get("lang", "en")
        ref = score.norm(record["text"], lang)
        hyp_ours = score.norm(ours.get(record["image"], ""), lang)
        hyp_peer = score.norm(peer.get(record["image"], ""), lang)
        loss = Loss(
            record["image"],
            len(ref),
            Levenshtein.distance(ref, hyp_ours),
            Levenshtein.distance(ref, hyp_peer),
            ref,
            hyp_ours,
            hyp_peer,
        )
        if loss.extra_edits > 0:
            losses.append(loss)
    return sorted(losses, key=lambda x: -x.extra_edits)[:limit]


def diff_snippet(ref: str, hyp: str, context: int = 6, max_ops: int = 6) -> str:
    """Compact `ref→hyp` notes for the first few edit operations, e.g. ``…TOTA[L→1] 5…``."""
    parts = []
    for op in Levenshtein.opcodes(ref, hyp):
        if op.tag == "equal":
            continue
        before = ref[max(0, op.src_start - context) : op.src_start]
        after = ref[op.src_end : op.src_end + context]
        parts.append(
            f"…{before}[{ref[op.src_start : op.src_end]}→{hyp[op.dest_start : op.dest_end]}]{after}…"
        )
        if len(parts) == max_ops:
            parts.append("…")
            break
    return " ".join(parts)
