"""How fast the benchmark extractors decode media: files per second per decoding process.

Builds a fixture tree per benchmark in its real layout (``tests/fixtures/media.py``: real codecs,
but small frames, so decoding costs less than on the real 480x360 / 320x240 videos), extracts it
with 1 and with every core, and prints clips/s, files/s and files/s per process. The real
datasets' clips are larger: read these figures as the pipeline's own overhead plus decoding of
small files, an upper bound on throughput.

Usage: ``python benchmarks/extraction_speed.py [--clips N]``. The last line is
``extraction: <files/s per process> files/s per process (cremad, <cores> processes)``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.media import ave_tree, cremad_tree, ucf_tree

from mcr.data.benchmarks import ave, cremad, ucf101


def timed(extract, config, out: Path) -> tuple[float, int]:
    start = time.perf_counter()
    report = extract(config, out, progress=False)
    return time.perf_counter() - start, sum(report.rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=6, help="CREMA-D actors (6 clips each)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cremad_tree(tmp / "cremad", actors=args.actors, sentences=("DFA",))
        ave_tree(tmp / "ave", per_split={"train": 12, "val": 4, "test": 4})
        ucf_tree(tmp / "ucf")
        cases = [
            ("cremad", cremad.extract, lambda w: cremad.CremadConfig(
                root=str(tmp / "cremad"), workers=w), 2),
            ("ave", ave.extract, lambda w: ave.AveConfig(root=str(tmp / "ave"), workers=w), 1),
            ("ucf101", ucf101.extract, lambda w: ucf101.Ucf101Config(
                root=str(tmp / "ucf"), workers=w), 1),
        ]  # fmt: skip
        print(f"{'dataset':8} {'procs':>5} {'clips':>5} {'s':>7} {'clips/s':>8} {'files/s':>8} "
              f"{'files/s/proc':>12}")  # fmt: skip
        last = 0.0
        for name, extract, config, files_per_clip in cases:
            for workers in sorted({1, cores}):
                seconds, clips = timed(extract, config(workers), tmp / f"out-{name}-{workers}")
                rate = clips * files_per_clip / seconds
                print(f"{name:8} {workers:>5} {clips:>5} {seconds:>7.2f} {clips / seconds:>8.2f} "
                      f"{rate:>8.2f} {rate / workers:>12.2f}")  # fmt: skip
                if name == "cremad" and workers == cores:
                    last = rate / workers
        print(f"extraction: {last:.2f} files/s per process (cremad, {cores} processes)")


if __name__ == "__main__":
    main()
