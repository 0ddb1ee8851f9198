"""Does the C library's resident memory level off over many calls? (``make stress``)

Runs ``bench_calls`` for ``--calls`` line-mode calls on one engine after a warm-up, sampling RSS
every ``--every`` calls, and prints the growth per 1,000 calls in each quarter of the run. A
leak grows at the same rate to the end; an allocator or arena settling grows less and less.
Exit status 1 when the last half still grows faster than ``--max-kb-per-1000``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def line_png() -> bytes:
    """One rendered text line, so a fresh clone needs no eval data."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 40)
    image = Image.new("RGB", (620, 70), "white")
    ImageDraw.Draw(image).text((20, 10), "BIZDATE 12/03/2018 total 42.50", fill="black", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def slope_kb_per_1000(samples: list[int], every: int) -> float:
    """Least-squares growth of the samples, in KiB per 1,000 calls."""
    n = len(samples)
    if n < 2:
        return 0.0
    xs = [(i + 1) * every for i in range(n)]
    mx, my = sum(xs) / n, sum(samples) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, samples, strict=True))
    var = sum((x - mx) ** 2 for x in xs)
    return 1000 * cov / var


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-calls", type=Path, default=Path("build/bench_calls"))
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--every", type=int, help="calls between samples (default: 1/40 of the run)")
    parser.add_argument("--max-kb-per-1000", type=float, default=64.0)
    args = parser.parse_args()
    if args.calls < 4000:  # RSS moves in 4 KiB pages and settles over ~2,000 calls: fewer tell nothing
        parser.error("--calls must be 4000 or more")
    args.every = args.every or max(1, args.calls // 40)

    with tempfile.TemporaryDirectory(prefix="crnnocr-stress-") as tmp:
        image = Path(tmp) / "line.png"
        image.write_bytes(line_png())
        env = {**os.environ, "CRNNOCR_BACKEND": os.environ.get("CRNNOCR_BACKEND", "onnxruntime")}
        done = subprocess.run(
            [str(args.bench_calls), "--mode", "line", "--ort-threads", "1", "--warmup", str(args.warmup),
             "--calls", str(args.calls), "--rss-every", str(args.every), str(image)],
            capture_output=True, text=True, env=env, check=False,
        )
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    report = json.loads(done.stdout)
    samples: list[int] = report["rss_kb_samples"]
    quarter = max(2, len(samples) // 4)
    print(f"C library, {args.calls} line calls after {args.warmup} of warm-up "
          f"({report['per_call_ms']['p50']:.1f} ms median; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}), backend {env['CRNNOCR_BACKEND']}")
    print(f"RSS before {report['rss_kb_before']} KiB, after {report['rss_kb_after']} KiB "
          f"(+{report['rss_kb_after'] - report['rss_kb_before']} KiB)")
    for start in range(0, len(samples) - 1, quarter):
        part = samples[start:start + quarter]
        first, last = (start + 1) * args.every, (start + len(part)) * args.every
        print(f"  calls {first:>6}-{last:<6} {slope_kb_per_1000(part, args.every):7.1f} KiB per 1000 calls")
    late = slope_kb_per_1000(samples[len(samples) // 2:], args.every)
    verdict = "levels off" if late <= args.max_kb_per_1000 else "still growing: a leak?"
    print(f"last half: {late:.1f} KiB per 1000 calls -> {verdict} (bound {args.max_kb_per_1000:g})")
    return 0 if late <= args.max_kb_per_1000 else 1


if __name__ == "__main__":
    sys.exit(main())
