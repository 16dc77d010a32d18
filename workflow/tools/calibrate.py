"""Measure a real dataset's difficulty: unimodal and joint test accuracy for given knobs.

    python workflow/tools/calibrate.py avdigits --set audio_noise=2.0 --set image_pca_components=4
    python workflow/tools/calibrate.py avdigits --train model.datasets.avdigits.encoders.image.name=mlp

Builds the dataset ``data.real.<name>`` from params/data.yaml (with ``--set`` overrides, YAML
values; ``--train`` overrides a dotted key of the ``train`` params), trains each unimodal model
and joint training once (seed 0, the encoders of params/train.yaml, ``--epochs``), and prints
one line per run plus the joint model's in-model accuracy per modality. Record the results next to the defaults in params/data.yaml.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import torch

from mcr.config import load_params, set_dotted
from mcr.evaluation import evaluate_run
from mcr.features import load_dataset
from mcr.training import RunConfig, train_run
from mcr.workflow.layout import pipeline_datasets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a key of data.real in params/data.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--train", action="append", default=[], metavar="DOTTED.KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = load_params("params/data.yaml", "params/train.yaml")
    real = params["data"].setdefault("real", {})
    if args.dataset not in real:
        parser.error(f"data.real has no {args.dataset!r} (have: {', '.join(real)})")
    for item in args.set:
        set_dotted(real[args.dataset], item)
    source = pipeline_datasets(params["data"])[args.dataset]
    dataset = load_dataset(source.generator, {source.generator: source.params})
    dataset = replace(dataset, info=replace(dataset.info, name=args.dataset))
    train = params["train"]
    for item in args.train:
        set_dotted(train, item)
    train["common"].update(epochs=args.epochs, progress=False, device="cpu")
    config = RunConfig.from_params({"train": {**train, "methods": {}}})
    names = [f"unimodal_{m}" for m in dataset.info.modalities] + ["joint"]
    print(f"{args.dataset} {source.params} {args.train}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            tic = time.perf_counter()
            train_run(dataset, name, config, 0, f"{tmp}/{name}", resume=False)
            test = evaluate_run(f"{tmp}/{name}", dataset)["test"]
            line = f"  {name:24s} test accuracy {test['accuracy']:.3f}"
            if name == "joint":
                parts = test["modalities"]
                line += "  in-model " + ", ".join(
                    f"{m} {v['in_model_accuracy']:.3f}" for m, v in parts.items()
                )
            print(f"{line}  ({time.perf_counter() - tic:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
