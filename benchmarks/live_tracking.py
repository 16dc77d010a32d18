"""What live tracking (``tracking.live``) costs a training job, against a real tracking server.

Starts ``mcr tracking-server`` on a free local port (its own sqlite store in a temporary
folder), then trains the same runs -- ``joint`` on the synthetic task, the default model, batch
64 -- once without and once with :class:`mcr.tracking.LiveRun` (params at start, one
``log_batch`` per epoch), alternating the two ways over ``--repeats`` rounds so machine drift
hits both alike. Prints the median wall time of a run each way, the difference per run and per
epoch, and what a job pays once: importing mlflow and creating the run. The pipeline's default
(``auto``: live only with a tracking server) follows from these figures.

Usage: ``python benchmarks/live_tracking.py [--epochs 30] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcr import tracking_server
from mcr.config import load_params
from mcr.features import load_dataset
from mcr.tracking_server import free_port
from mcr.training import RunConfig, train_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_params(ROOT / "params/data.yaml", ROOT / "params/train.yaml")
    params["train"]["common"].update(epochs=args.epochs, patience=0, progress=False)
    config = RunConfig.from_params(params)
    dataset = load_dataset("synthetic", params["data"])
    probe = "import time; t = time.perf_counter(); import mlflow; print(time.perf_counter() - t)"
    import_s = float(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                    text=True, check=True).stdout)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state = tracking_server.start(port=free_port(), root=root)
        try:
            from mcr.tracking import LiveRun

            times: dict[str, list[float]] = {"off": [], "live": []}
            starts = []
            for round_ in range(args.repeats):
                for way in ("off", "live") if round_ % 2 == 0 else ("live", "off"):
                    out = root / f"{way}{round_}"
                    live = LiveRun(state.uri, "bench", out) if way == "live" else None
                    tic = time.perf_counter()
                    train_run(
                        dataset, "joint", config, 0, out,
                        callbacks=[live.log_epoch] if live else (),
                        on_start=live.start if live else None,
                    )  # fmt: skip
                    times[way].append(time.perf_counter() - tic)
                    if live is not None:
                        assert live.logged_through == args.epochs - 1, "epochs missing"
                        tic = time.perf_counter()
                        LiveRun(state.uri, "bench", root / f"start{round_}").start(
                            {"method": "joint", "seed": round_, "method_config": {},
                             "train_config": {}}
                        )  # fmt: skip
                        starts.append(time.perf_counter() - tic)
        finally:
            tracking_server.stop(root=root)
    off, on = statistics.median(times["off"]), statistics.median(times["live"])
    print(f"run of {args.epochs} epochs, median of {args.repeats}: "
          f"without {off:.3f} s, live {on:.3f} s")  # fmt: skip
    print(f"live logging per run: {on - off:+.3f} s ({(on - off) / off:+.1%}), "
          f"per epoch: {(on - off) / args.epochs * 1000:+.1f} ms")  # fmt: skip
    print(f"once per job: import mlflow {import_s:.2f} s, "
          f"create a run + log params {statistics.median(starts) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
