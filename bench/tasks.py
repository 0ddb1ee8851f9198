"""The benchmark's rows: which images of which eval set, in which mode, against which target.

A row may take part of a set (``synth_zh_dev`` lines and pages are scored apart) or run a line set
in page mode (tight crops with no margin, the case where detectors lose edge characters).
Sets found in the eval folder that have no row here still get one, by their majority ``kind``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Task:
    """One row of the accuracy table."""

    set_name: str
    mode: str  # "line" | "page": how the engine is asked to read the images
    kind: str | None = None  # keep only labels of this kind; None = all
    label: str = ""  # row name when it differs from the set name
    target_cer: float | None = None  # issue 2's acceptance target, None where the issue sets none
    peer_cer: float | None = None  # issue 2's best-peer figure, for reference
    note: str = ""
    records: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    subsampled_from: int | None = None  # set size before subsampling, None when the whole set is used
    cap: int = 0  # default sample size for rows too slow to run whole on every `make bench` (0 = whole set)

    @property
    def id(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "_", self.name).strip("_") + "@" + self.mode

    @property
    def name(self) -> str:
        return self.label or self.set_name


# Issue 2's acceptance table (targets) in its order, then the other sets.
KNOWN_TASKS: tuple[Task, ...] = (
    Task("sroie_lines_en", "line", target_cer=0.015, peer_cer=0.015),
    # RapidOCR upscales each crop to a 736 px short side before detection: 4-12 s per 25 px crop here.
    Task(
        "sroie_lines_en",
        "page",
        label="sroie_lines_en (page, tight crops)",
        target_cer=0.03,
        peer_cer=0.307,
        note="line crops cut to the box with no margin, read in page mode",
        cap=40,
    ),
    Task("synth_zh_dev", "line", kind="line", label="synth_zh_dev lines", target_cer=0.027, peer_cer=0.027),
    Task("synth_zh_dev", "page", kind="page", label="synth_zh_dev pages", target_cer=0.147, peer_cer=0.147),
    Task(
        "zh_screenshots",
        "page",
        target_cer=0.10,
        peer_cer=0.213,
        note="all images in page mode, including the one single-line image",
    ),
    Task("sroie_receipts_en", "page", target_cer=0.074, peer_cer=0.074),
    Task("funsd_forms_en", "page", target_cer=0.157, peer_cer=0.157),
    Task("en_screenshots", "page", target_cer=0.016, peer_cer=0.005),
    Task("ic15_scene_en", "page"),
    Task("ic15_words_en", "line"),
    Task("scene_words_en_toy", "line"),
)


def read_labels(set_dir: Path) -> list[dict[str, Any]]:
    with open(set_dir / "labels.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def discover(eval_dir: Path, max_images: int = 0, seed: int = 0, caps: bool = True) -> list[Task]:
    """The rows for every set under ``eval_dir``, with their records loaded.

    ``max_images`` > 0 keeps a fixed-seed random sample of that many images per row (in label order);
    otherwise rows with a ``cap`` are sampled to it unless ``caps`` is false.
    """
    sets = sorted(p.name for p in eval_dir.iterdir() if (p / "labels.jsonl").is_file())
    tasks = [t for t in KNOWN_TASKS if t.set_name in sets]
    for name in sets:
        if not any(t.set_name == name for t in tasks):
            kinds = Counter(r["kind"] for r in read_labels(eval_dir / name))
            tasks.append(Task(name, kinds.most_common(1)[0][0], note="not in issue 2's table"))
    return [_load(t, eval_dir, max_images or (t.cap if caps else 0), seed) for t in tasks]


def _load(task: Task, eval_dir: Path, max_images: int, seed: int) -> Task:
    records = [
        r for r in read_labels(eval_dir / task.set_name) if task.kind is None or r["kind"] == task.kind
    ]
    subsampled_from = None
    if 0 < max_images < len(records):
        keep = set(random.Random(f"{seed}:{task.id}").sample(range(len(records)), max_images))
        subsampled_from = len(records)
        records = [r for i, r in enumerate(records) if i in keep]
    return replace(task, records=tuple(records), subsampled_from=subsampled_from)
