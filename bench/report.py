"""The markdown report of one benchmark run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from bench.accuracy import EngineRun
from bench.engines.specs import CRNNOCR_BACKENDS, ONNX_THREADS, crnnocr
from bench.losses import diff_snippet, worst_losses
from bench.scoring import Score
from bench.speed import WARM_BLOCK, WARM_ROUNDS, EngineSpeed
from bench.tasks import Task

LINE_TARGET_MS = 25.0
# Warm page time against RapidOCR with the same pack, per crnnocr runtime (issues 2 and 10).
PAGE_RATIO_TARGET = 0.6
PAGE_RATIO_TARGETS = {"onnxruntime": PAGE_RATIO_TARGET, "openvino": 0.45}
# OpenVINO's warm page time against ONNX Runtime's in the same run, by threads per call (issue 10).
BACKEND_RATIO_TARGETS = {1: 0.7, 2: 0.8}
COLD_TARGET_MS = 200.0
RSS_TARGET_MB = 300.0
PASS, FAIL = "✅ pass", "❌ FAIL"


@dataclass(frozen=True)
class Section:
    """A report section from another module (CGI, C library): markdown lines, and why it stopped short."""

    title: str
    lines: list[str] = field(default_factory=list)
    skipped: str | None = None

    def render(self) -> list[str]:
        body = [*self.lines, f"skipped: {self.skipped}"] if self.skipped else self.lines
        return [f"## {self.title}", "", *body, ""]


@dataclass(frozen=True)
class RunResult:
    header: list[str]  # machine, versions, settings: one bullet each
    tasks: list[Task]
    runs: list[EngineRun]
    speed: dict[str, EngineSpeed]  # engine key -> cold/RSS figures
    warm: dict[str, dict[str, float]]  # engine key -> row id -> warm median ms, engines timed side by side
    sections: list[Section]
    work_dir: Path  # where PRED files live, for the loss analysis
    default_key: str  # the engine key of crnnocr with the default pack


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def _best_peer(result: RunResult, task: Task) -> tuple[EngineRun, Score] | None:
    scored = [
        (run, run.scores[task.id]) for run in result.runs if not run.engine.is_ours and task.id in run.scores
    ]
    return min(scored, key=lambda rs: rs[1].cer) if scored else None


def _ours(result: RunResult) -> EngineRun | None:
    return next((r for r in result.runs if r.engine.key == result.default_key and not r.skipped), None)


def _size(task: Task) -> str:
    n = len(task.records)
    return f"{n} of {task.subsampled_from} (sample)" if task.subsampled_from else str(n)


def summary_table(result: RunResult) -> list[str]:
    live = [r for r in result.runs if not r.skipped]
    ours = _ours(result)
    head = [
        "row",
        "mode",
        "images",
        "target CER",
        *(r.engine.title for r in live),
        "best peer here",
        "target",
        "vs best peer",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task in result.tasks:
        cells = [
            task.name,
            task.mode,
            _size(task),
            f"≤ {task.target_cer}" if task.target_cer is not None else "–",
        ]
        cells += [_f(r.scores[task.id].cer, 4) if task.id in r.scores else "–" for r in live]
        best = _best_peer(result, task)
        cells.append(f"{best[1].cer:.4f} ({best[0].engine.title})" if best else "–")
        ours_score = ours.scores.get(task.id) if ours else None
        cells.append(
            _verdict(ours_score.cer <= task.target_cer) if ours_score and task.target_cer is not None else "–"
        )
        cells.append(_verdict(ours_score.cer <= best[1].cer) if ours_score and best else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def detail_tables(result: RunResult) -> list[str]:
    lines: list[str] = []
    for task in result.tasks:
        target = f"; target CER ≤ {task.target_cer}" if task.target_cer is not None else ""
        peer = f"; issue's best-peer CER {task.peer_cer}" if task.peer_cer is not None else ""
        note = f". {task.note}" if task.note else ""
        lines += [
            f"### {task.name} — {task.mode} mode, {_size(task)} images{target}{peer}{note}",
            "",
            "| engine | CER | bagF1 | exact-line | median ms/image | failed images |",
            "|---|---|---|---|---|---|",
        ]
        for run in result.runs:
            if run.skipped or task.id not in run.scores:
                continue
            s = run.scores[task.id]
            lines.append(
                f"| {run.engine.title} | {_f(s.cer, 4)} | {_f(s.bag_f1, 4)} | {_f(s.exact)} | "
                f"{_ms(s.median_ms)} | {run.errors.get(task.id, 0)} |"
            )
        lines.append("")
    return lines


def _median(result: RunResult, key: str, task_id: str) -> float | None:
    return result.warm.get(key, {}).get(task_id)


def speed_table(result: RunResult, line_task: str, page_task: str, same_pack_peer: str) -> list[str]:
    live = [r for r in result.runs if not r.skipped]
    head = ["metric", *(r.engine.title for r in live), "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(metric: str, values: list[str], target: str, verdict: str) -> None:
        lines.append("| " + " | ".join([metric, *values, target, verdict]) + " |")

    line_ms = [_median(result, r.engine.key, line_task) for r in live]
    ours_line = _median(result, result.default_key, line_task)
    row(
        f"warm line, median ms ({line_task.split('@')[0]})",
        [_ms(v) for v in line_ms],
        f"≤ {LINE_TARGET_MS:.0f} ms",
        _verdict(ours_line <= LINE_TARGET_MS) if ours_line is not None else "–",
    )

    page_ms = [_median(result, r.engine.key, page_task) for r in live]
    peer_page = _median(result, same_pack_peer, page_task)
    verdicts = []
    for run in _same_pack_ours(result):
        mine, backend = _median(result, run.engine.key, page_task), run.engine.options["backend"]
        if mine is not None and peer_page:
            ratio = mine / peer_page
            verdicts.append(f"{backend} {ratio:.2f}×: {_verdict(ratio <= PAGE_RATIO_TARGETS[backend])}")
    row(
        f"warm page, median ms ({page_task.split('@')[0]})",
        [_ms(v) for v in page_ms],
        "≤ " + ", ".join(f"{t}× ({b})" for b, t in PAGE_RATIO_TARGETS.items()) + " RapidOCR (same pack)",
        "; ".join(verdicts) or "–",
    )

    cold = [result.speed.get(r.engine.key) for r in live]
    ours_speed = result.speed.get(result.default_key)
    row(
        "cold process (imports + sessions + one line), median ms",
        [f"{_ms(c.cold.median_ms)} (n={c.cold.runs})" if c and c.cold else "–" for c in cold],
        f"≤ {COLD_TARGET_MS:.0f} ms",
        _verdict(ours_speed.cold.median_ms <= COLD_TARGET_MS) if ours_speed and ours_speed.cold else "–",
    )
    rss = [c.peak_rss_mb for r, c in zip(live, cold, strict=True) if r.engine.is_ours and c and c.peak_rss_mb]
    row(
        "peak RSS, one page, MiB",
        [_f(c.peak_rss_mb, 0) if c else "–" for c in cold],
        f"≤ {RSS_TARGET_MB:.0f} MiB (every crnnocr runtime)",
        _verdict(max(rss) <= RSS_TARGET_MB) if rss else "–",
    )
    lines.append("")
    for run, c in zip(live, cold, strict=True):
        if c is not None:
            lines.append(
                f"- {run.engine.title}: cold = {c.cold_what}" + (f"; error: {c.error}" if c.error else "")
            )
    return lines


def _same_pack_ours(result: RunResult) -> list[EngineRun]:
    """crnnocr runs with the default pack (one per runtime), at the bench's thread count."""
    ours = _ours(result)
    pack = ours.engine.options["pack"] if ours else None
    return [r for r in result.runs if r.engine.is_ours and not r.skipped and r.engine.options["pack"] == pack]


def backend_table(result: RunResult, line_task: str, page_task: str) -> list[str]:
    """OpenVINO against ONNX Runtime, warm medians timed side by side, at 1 and 2 threads per call."""
    ours = _ours(result)
    if ours is None:
        return ["crnnocr did not run."]
    pack = ours.engine.options["pack"]
    versions = {r.engine.key: r.version for r in result.runs}
    ort_name, ov_name = CRNNOCR_BACKENDS
    lines = [
        f"| warm median | threads | {ort_name} | {ov_name} | {ov_name} / {ort_name} | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    found = False
    for task, label in ((page_task, "page"), (line_task, "line")):
        for threads in (1, ONNX_THREADS):
            ort_ms, ov_ms = (_median(result, crnnocr(pack, b, threads).key, task) for b in CRNNOCR_BACKENDS)
            if ort_ms is None or ov_ms is None:
                continue
            found = True
            ratio = ov_ms / ort_ms
            target = BACKEND_RATIO_TARGETS.get(threads) if label == "page" else None
            lines.append(
                f"| {label} ({task.split('@')[0]}) | {threads} | {_ms(ort_ms)} ms | {_ms(ov_ms)} ms | "
                f"{ratio:.2f}× | {f'≤ {target}×' if target else '–'} | "
                f"{_verdict(ratio <= target) if target else '–'} |"
            )
    if not found:
        both = ",".join(CRNNOCR_BACKENDS)
        return [f"skipped: run both runtimes (`--backends {both}`) with the speed section"]
    ov_version = versions.get(crnnocr(pack, ov_name).key, "?")
    return [*lines, "", f"- {ov_name} ran as: {ov_version}"]


def loss_lines(result: RunResult, score: ModuleType) -> list[str]:
    ours = _ours(result)
    if ours is None:
        return ["crnnocr did not run."]
    lines: list[str] = []
    for task in result.tasks:
        best = _best_peer(result, task)
        mine = ours.scores.get(task.id)
        if best is None or mine is None or mine.cer <= best[1].cer:
            continue
        peer_run = best[0]
        losses = worst_losses(
            score,
            task.records,
            result.work_dir / "preds" / ours.engine.key / f"{task.id}.jsonl",
            result.work_dir / "preds" / peer_run.engine.key / f"{task.id}.jsonl",
        )
        lines += [
            f"### {task.name}: CER {mine.cer:.4f} vs {best[1].cer:.4f} ({peer_run.engine.title})",
            "",
            f"bagF1 {mine.bag_f1:.4f} vs {best[1].bag_f1:.4f}: "
            + (
                "characters as good or better: the loss is mostly reading order (or lines split differently)."
                if mine.bag_f1 >= best[1].bag_f1
                else "part of the loss is in the characters themselves."
            ),
            "",
            "| image | ref chars | our edits | peer edits | ours: [ref→hyp] | peer: [ref→hyp] |",
            "|---|---|---|---|---|---|",
        ]
        for loss in losses:
            ours_diff = diff_snippet(loss.ref, loss.ours).replace("|", "\\|")
            peer_diff = diff_snippet(loss.ref, loss.peer).replace("|", "\\|")
            lines.append(
                f"| {loss.image} | {loss.ref_len} | {loss.ours_edits} | {loss.peer_edits} | "
                f"{ours_diff} | {peer_diff or '(exact)'} |"
            )
        lines.append("")
    return lines or ["crnnocr is at least as accurate as the best peer on every row."]


def render(result: RunResult, score: ModuleType, line_task: str, page_task: str, same_pack_peer: str) -> str:
    skipped = [f"- {r.engine.title}: skipped: {r.skipped}" for r in result.runs if r.skipped]
    versions = [
        f"- {r.engine.title}: {r.version} ({r.wall_s:.0f} s for all rows)"
        for r in result.runs
        if not r.skipped
    ]
    out = [
        "# crnnocr benchmark",
        "",
        *result.header,
        "",
        "Engines:",
        *versions,
        *skipped,
        "",
        "## 1. Accuracy",
        "",
        (
            "CER (lower is better) by the eval folder's `score.py`; `target` = issue 2's acceptance target "
            "for the default pack; `vs best peer` = default pack CER ≤ the best peer measured in this run."
        ),
        "",
        *summary_table(result),
        "",
        *detail_tables(result),
        "## 2. Speed",
        "",
        (
            f"Warm medians ({line_task}, {page_task}): all engines loaded at once; images in blocks "
            f"({WARM_BLOCK['line']} lines, {WARM_BLOCK['page']} pages), each engine reading a block back "
            f"to back after one untimed call, the engine order rotated per block, {WARM_ROUNDS} rounds."
        ),
        "",
        *speed_table(result, line_task, page_task, same_pack_peer),
        "",
        "### crnnocr's runtimes side by side",
        "",
        (
            f"The same warm rotation with crnnocr ({CRNNOCR_BACKENDS[0]} and {CRNNOCR_BACKENDS[1]}) alone "
            f"at 1 thread per call (a pool worker's setting), and the {ONNX_THREADS}-thread figures of the "
            "table above; targets from issue 10."
        ),
        "",
        *backend_table(result, line_task, page_task),
        "",
    ]
    for section in result.sections:
        out += section.render()
    out += [
        "## Where crnnocr loses to a peer",
        "",
        "Per image, normalised as score.py does; the images where crnnocr needs the most extra edits.",
        "",
        *loss_lines(result, score),
    ]
    return "\n".join(out) + "\n"
