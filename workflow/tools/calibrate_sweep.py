"""Calibrate a synthetic regime on joint training vs the ensemble only, never on MCR.

    python workflow/tools/calibrate_sweep.py                       # the authors' regime
    python workflow/tools/calibrate_sweep.py --train 'datasets.synthetic_paper_r*.common.lr=1e-3'
    python workflow/tools/calibrate_sweep.py --data signal=2.5 --levels 0 4 --seeds 0

For every U1/S level and seed this trains the two unimodal runs, joint training and the ensemble
of the unimodal runs, and prints per level (mean ± std over seeds, test accuracy in %): joint,
ensemble, the best unimodal run, the Bayes optimum of the generator on the same test rows, and
joint's and the ensemble's accuracy on each information group (S, U1, U2). Competition shows as
joint clearly below the ensemble (or the best unimodal run) at high imbalance. The regime is
chosen on those columns alone; MCR is run only afterwards, by the pipeline.

The regime is the pipeline's own: the generator block ``data.synthetic_paper`` (the authors'
settings where known, FactorCL's construction where not; ``ours`` marks our choices) and the
training regime ``train.datasets."synthetic_paper_r*"`` of params/train.yaml, found through the
dataset names ``synthetic_paper_r<level>`` exactly as the pipeline finds them. ``--block
synthetic`` calibrates our converged regime instead.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from mcr.config import from_mapping, load_params, set_dotted
from mcr.data.synthetic import SyntheticConfig, bayes_optimal_predictions, generate
from mcr.evaluation import evaluate_run
from mcr.training import RunConfig, train_run
from mcr.workflow.layout import SWEEPS

#: Levels used when ``data.sweep.paper_regime`` is empty (ours: >= 6 levels of U1/S).
LEVELS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


def level_runs(
    data_params: dict[str, Any], dataset_name: str, config: RunConfig, seed: int, tmp: str
) -> dict:
    """Test accuracy (overall and per group) of the unimodal runs, joint and the ensemble."""
    generator = from_mapping(SyntheticConfig, data_params, "data")
    dataset = generate(generator)
    dataset = replace(dataset, info=replace(dataset.info, name=dataset_name))  # the regime
    groups = dataset.test.annotations["info_group"]
    labels = dataset.test.labels.numpy()
    bayes = bayes_optimal_predictions(generator, dataset.test.inputs) == labels
    out: dict[str, Any] = {"bayes": {"all": bayes.mean()}}
    unimodal = {}
    for name in ("unimodal_m1", "unimodal_m2", "joint", "ensemble"):
        folder = f"{tmp}/{name}-{seed}"
        train_run(dataset, name, config, seed, folder, resume=False,
                  unimodal_runs=unimodal if name == "ensemble" else None)  # fmt: skip
        if name.startswith("unimodal_"):
            unimodal[name.removeprefix("unimodal_")] = folder
        test = evaluate_run(folder, dataset)["test"]
        out[name] = {"all": test["accuracy"]}
        out[name].update(
            {
                g: test["annotations"]["info_group"].get(g, {}).get("accuracy", np.nan)
                for g in ("S", "U1", "U2")
            }  # U1 is empty at U1/S = 0
        )
    for g in ("S", "U1", "U2"):
        out["bayes"][g] = bayes[groups == g].mean() if (groups == g).any() else np.nan
    return out


def cell(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="generator override, e.g. signal=2.5")  # fmt: skip
    parser.add_argument("--train", action="append", default=[], metavar="DOTTED.KEY=VALUE",
                        help="train override, e.g. 'datasets.synthetic_paper_r*.common.lr=1e-3' "
                             "(the regime's keys win over train.common)")  # fmt: skip
    parser.add_argument(
        "--block", default="synthetic_paper", choices=["synthetic_paper", "synthetic"]
    )
    parser.add_argument("--levels", type=float, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params("params/data.yaml", "params/train.yaml")
    data, train = params["data"][args.block], params["train"]
    train["common"].update(progress=False, device="cpu")
    for item in args.data:
        set_dotted(data, item)
    for item in args.train:
        set_dotted(train, item)
    sweep_key = {"synthetic_paper": "paper_regime", "synthetic": "u1_to_s_ratio"}[args.block]
    levels = args.levels or params["data"]["sweep"].get(sweep_key) or LEVELS
    seeds = args.seeds or train["seeds"]
    prefix = SWEEPS[sweep_key][0]
    config = RunConfig.from_params({"train": train})
    print(f"data.{args.block} {data}\ntrain overrides {args.train}\nseeds {seeds}\n")
    print("| U1/S | Joint | Ensemble | best unimodal | Bayes | Joint S / U1 / U2 "
          "| Ensemble S / U1 / U2 | Joint − Ensemble |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for level in levels:
            name = f"{prefix}{level:g}"
            runs = [level_runs({**data, "u1_to_s_ratio": level}, name, config, s, tmp)
                    for s in seeds]  # fmt: skip

            def values(name: str, group: str = "all", runs: list = runs) -> list[float]:
                return [r[name][group] for r in runs]

            best_uni = max(("unimodal_m1", "unimodal_m2"), key=lambda n: np.mean(values(n)))
            gap = [j - e for j, e in zip(values("joint"), values("ensemble"), strict=True)]

            def groups(name: str) -> str:
                means = [np.mean(values(name, g)) for g in ("S", "U1", "U2")]
                return " / ".join("–" if np.isnan(v) else f"{100 * v:.1f}" for v in means)

            print(f"| {level:g} | {cell(values('joint'))} | {cell(values('ensemble'))} | "
                  f"{cell(values(best_uni))} ({best_uni[-2:]}) | {cell(values('bayes'))} | "
                  f"{groups('joint')} | {groups('ensemble')} | {cell(gap)} |", flush=True)  # fmt: skip
    print(f"\n{time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
