"""Screenshots of the MLflow UI as a user meets it: one experiment's runs table and one run's
metric charts, taken with headless Chromium (Debian: ``apt-get install chromium``).

The README's pictures come from this; rerun it after a change to what tracking logs, and look at
the PNGs. The UI is a JavaScript app: Chromium's virtual time budget lets its requests and
charts finish before the picture is taken.

Usage: ``python workflow/tools/mlflow_screenshots.py --uri http://127.0.0.1:5000
[--experiment synthetic_r4] [--run mcr-seed0] [--out docs/images]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from mcr.tracking_server import rest


def shoot(browser: str, url: str, out: Path, size: str, budget_ms: int) -> None:
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={size}", "--run-all-compositor-stages-before-draw",
         f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    print(f"{out} <- {url}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uri", required=True, help="the tracking server (mcr tracking-server)")
    parser.add_argument("--experiment", default="synthetic_r4")
    parser.add_argument("--run", default="mcr-seed0", help="run name for the metrics page")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("no chromium on PATH (Debian: apt-get install chromium)")
    uri = args.uri.rstrip("/")
    found = rest(uri, "experiments/search", {"max_results": 1000})["experiments"]
    by_name = {e["name"]: e["experiment_id"] for e in found}
    if args.experiment not in by_name:
        known = ", ".join(sorted(by_name))
        sys.exit(f"{uri} has no experiment {args.experiment!r} (it has: {known})")
    experiment = by_name[args.experiment]
    runs = rest(uri, "runs/search", {"experiment_ids": [experiment],
                                     "filter": f"attributes.run_name = '{args.run}'"})  # fmt: skip
    if not runs.get("runs"):
        sys.exit(f"experiment {args.experiment!r} has no run named {args.run!r}")
    run_id = runs["runs"][0]["info"]["run_id"]
    args.out.mkdir(parents=True, exist_ok=True)
    mode = "workflowType=machine_learning"  # MLflow 3 opens on its GenAI pages otherwise
    shoot(browser, f"{uri}/#/experiments/{experiment}?{mode}", args.out / "mlflow_runs.png",
          "1500,900", 20_000)  # fmt: skip
    shoot(browser, f"{uri}/#/experiments/{experiment}/runs/{run_id}/model-metrics?{mode}",
          args.out / "mlflow_run_metrics.png", "1500,1100", 90_000)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
