"""`python -m bench`: run the benchmark and write bench/results/<date>.md (see bench/README.md)."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import batchbench, cbench, cgibench, docbench, jobbench
from bench.accuracy import EngineRun, run_engine
from bench.engines.specs import CRNNOCR_BACKENDS, ONNX_THREADS, ROOT, EngineSpec, crnnocr, peers
from bench.losses import load_score_module
from bench.report import RunResult, render
from bench.speed import COLD_RUNS, EngineSpeed, measure, warm_medians
from bench.tasks import Task, discover, read_labels

DEFAULT_PACK = "ppocr-v6-small"
SAME_PACK_PEER = "rapidocr-v6"  # RapidOCR with the default pack: the page-speed ratio's reference
LINE_SET, PAGE_SET = "sroie_lines_en", "sroie_receipts_en"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--eval", type=Path, default=Path(os.environ.get("CRNNOCR_EVAL", ROOT.parent / "shared/eval"))
    )
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench/results", help="folder for <date>.md and run files"
    )
    p.add_argument(
        "--packs",
        default="default",
        help="crnnocr packs: 'default', 'all' (every installed pack) or a comma list",
    )
    p.add_argument(
        "--backends",
        default=",".join(CRNNOCR_BACKENDS),
        help="crnnocr's inference runtimes to run, comma list (default: both, side by side)",
    )
    p.add_argument("--engines", default="", help="comma list of engine keys to keep (default: all)")
    p.add_argument("--rows", default="", help="comma list of set names or row ids to keep (default: all)")
    p.add_argument("--max-images", type=int, default=0, help="fixed-seed sample per row (0 = whole sets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--full", action="store_true", help="no default sampling of slow rows (adds ~15 min)")
    p.add_argument("--skip", default="",
                   help="comma list of sections to skip: speed,cgi,c,documents,batch,jobs")
    p.add_argument("--pool-pages", type=int, default=cgibench.DEFAULT_POOL_PAGES,
                   help="pages through the worker pool before its memory is read (1000: ~7 min more)")
    return p.parse_args()


def _installed_packs() -> list[str]:
    try:
        from ocr_core.config import DEFAULT_MODEL_DIR
        from ocr_core.packs import installed_packs
    except ImportError:
        return [DEFAULT_PACK]
    return installed_packs(DEFAULT_MODEL_DIR) or [DEFAULT_PACK]


def _engines(args: argparse.Namespace) -> list[EngineSpec]:
    if args.packs == "default":
        packs = [DEFAULT_PACK]
    elif args.packs == "all":
        packs = sorted(_installed_packs(), key=lambda p: p != DEFAULT_PACK)
    else:
        packs = args.packs.split(",")
    backends = args.backends.split(",")
    engines = [*(crnnocr(p, b) for p in packs for b in backends), *peers()]
    keep = set(filter(None, args.engines.split(",")))
    unknown = keep - {e.key for e in engines} - {"none"}
    if unknown:
        known = ", ".join(e.key for e in engines)
        asked = ",".join(sorted(unknown))
        raise SystemExit(f"bench: --engines {asked}: no such engine (known: {known}, none)")
    return [e for e in engines if not keep or e.key in keep]


def _header(eval_dir: Path, tasks: list[Task], args: argparse.Namespace, started: datetime) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    code = "import importlib.metadata as m; print(m.version('onnxruntime'), m.version('openvino'))"
    versions = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    ort, openvino = [*versions.stdout.split(), "?", "?"][:2]
    sampled = [t for t in tasks if t.subsampled_from]
    lines = [
        (
            f"- run: {started:%Y-%m-%d %H:%M} UTC; eval folder `{eval_dir}`, "
            f"{sum(len(t.records) for t in tasks)} images over {len(tasks)} rows"
        ),
        (
            f"- machine: nproc {os.cpu_count()}, {cpu}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, onnxruntime {ort}, openvino {openvino} (project venv)"
        ),
        (
            f"- ONNX engines: {ONNX_THREADS} intra-op threads; Tesseract: OMP_THREAD_LIMIT=1; "
            f"cold-start figures: median of {COLD_RUNS} fresh processes after one untimed round, "
            "the engines taking turns"
        ),
        "- sampling: "
        + (
            ", ".join(f"{t.name} {len(t.records)} of {t.subsampled_from}" for t in sampled)
            + f" (fixed seed {args.seed}; `--full` runs whole sets)"
            if sampled
            else "none, whole sets"
        ),
    ]
    blas = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    if blas:
        lines.append(f"- environment left as found: {', '.join(f'{k}={v}' for k, v in sorted(blas.items()))}")
    return lines


def _task_id(tasks: list[Task], set_name: str, mode: str) -> str:
    return next(
        (t.id for t in tasks if t.set_name == set_name and t.mode == mode and t.kind is None),
        f"{set_name}@{mode}",
    )


def main() -> None:
    args = _args()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    load_at_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    eval_dir = args.eval.resolve()
    score_py = eval_dir / "score.py"
    if not score_py.is_file():
        sys.exit(f"bench: no eval data at {eval_dir} (set EVAL=... or CRNNOCR_EVAL)")
    rows = set(filter(None, args.rows.split(",")))
    tasks = [
        t
        for t in discover(eval_dir, args.max_images, args.seed, caps=not args.full)
        if not rows or t.set_name in rows or t.id in rows
    ]
    skip = set(filter(None, args.skip.split(",")))

    work = args.out / f"{started:%Y-%m-%d}"
    work.mkdir(parents=True, exist_ok=True)
    engines = _engines(args)
    runs: list[EngineRun] = [run_engine(e, tasks, eval_dir, score_py, work) for e in engines]

    speed: dict[str, EngineSpeed] = {}
    warm: dict[str, dict[str, float]] = {}
    line_task, page_task = _task_id(tasks, LINE_SET, "line"), _task_id(tasks, PAGE_SET, "page")
    if "speed" not in skip:
        # One fixed line; the biggest receipt, so the memory figure is the set's worst case.
        line_image = eval_dir / LINE_SET / read_labels(eval_dir / LINE_SET)[0]["image"]
        page_image = max(
            (eval_dir / PAGE_SET / r["image"] for r in read_labels(eval_dir / PAGE_SET)),
            key=lambda p: p.stat().st_size,
        )
        live = [run for run in runs if not run.skipped]
        speed_rows = [t for t in tasks if t.id in (line_task, page_task)]
        warm = warm_medians([run.engine for run in live], speed_rows, eval_dir)
        # crnnocr's runtimes again at 1 thread (a pool worker's setting), side by side the same way.
        ours = [run.engine for run in live if run.engine.is_ours]
        backends = [e.options["backend"] for e in ours if e.options["pack"] == DEFAULT_PACK]
        if len(backends) > 1:
            one_thread = [crnnocr(DEFAULT_PACK, backend, threads=1) for backend in backends]
            warm |= warm_medians(one_thread, speed_rows, eval_dir)
        print("== cold start and memory", file=sys.stderr, flush=True)
        speed = measure([run.engine for run in live], line_image, page_image)

    default_key = crnnocr(DEFAULT_PACK).key
    sections = []
    if "cgi" not in skip:
        sections.append(cgibench.run(eval_dir, args.pool_pages))
    if "c" not in skip:
        sections.append(cbench.run(eval_dir))
    if "documents" not in skip:
        sections.append(docbench.run(eval_dir))
    if "batch" not in skip:
        sections.append(batchbench.run(eval_dir))
    if "jobs" not in skip:
        sections.append(jobbench.run(eval_dir))

    header = _header(eval_dir, tasks, args, started)
    result = RunResult(header, tasks, runs, speed, warm, sections, work, default_key)
    report = render(result, load_score_module(score_py), line_task, page_task, SAME_PACK_PEER)
    # Other work on a 2-core machine skews every timing: show how busy it was.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report += (
        f"\nTotal benchmark time: {(time.perf_counter() - t0) / 60:.1f} min. Load average at start "
        f"{load_at_start}, at end {load} (1, 5, 15 min; above ~2 means the timings were contended).\n"
    )
    out = args.out / f"{started:%Y-%m-%d}.md"
    out.write_text(report, encoding="utf-8")
    print(report)
    print(f"bench: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
