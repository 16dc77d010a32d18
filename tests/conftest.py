"""Shared fixtures: tiny datasets built in memory, and a shrunken run config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mcr.data.dataset import DatasetInfo, MultimodalDataset, Split
from mcr.data.synthetic import SyntheticConfig, generate
from mcr.methods import Batch, Method, SetupContext, create_method
from mcr.models import ModelConfig, ModelSpec, MultimodalModel
from mcr.training import RunConfig

#: The repository root (tests run from a checkout).
ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where torch sees a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_synthetic() -> MultimodalDataset:
    """600 samples of the paper's synthetic task, modality 1 dominant (U1/S = 2)."""
    return generate(SyntheticConfig(num_samples=600, u1_to_s_ratio=2.0, seed=3))


@pytest.fixture(scope="session")
def tiny_synthetic3() -> MultimodalDataset:
    """The three-modality version, for the M-player game."""
    return generate(SyntheticConfig(num_samples=450, num_modalities=3, seed=4))


def make_regression_dataset(n: int = 300, seed: int = 0) -> MultimodalDataset:
    """y = x_a . w_a + x_b . w_b + noise, two vector modalities."""
    rng = np.random.default_rng(seed)
    xa, xb = rng.standard_normal((n, 6)), rng.standard_normal((n, 4))
    y = xa @ rng.standard_normal(6) * 0.5 + xb @ rng.standard_normal(4) * 0.3
    y += 0.1 * rng.standard_normal(n)
    info = DatasetInfo("toy_regression", "regression", 1, ("a", "b"), {"a": (6,), "b": (4,)})
    idx = np.array_split(rng.permutation(n), [int(0.6 * n), int(0.8 * n)])
    splits = {
        name: Split(
            name=name,
            inputs={
                "a": torch.tensor(xa[i], dtype=torch.float32),
                "b": torch.tensor(xb[i], dtype=torch.float32),
            },
            labels=torch.tensor(y[i], dtype=torch.float32),
            sample_ids=np.array([f"r{j}" for j in i]),
        )
        for name, i in zip(("train", "val", "test"), idx, strict=True)
    }
    return MultimodalDataset(info=info, **splits)


@pytest.fixture(scope="session")
def tiny_regression() -> MultimodalDataset:
    return make_regression_dataset()


def tiny_run_config(epochs: int = 3, **methods) -> RunConfig:
    """The real config structure, shrunk: small MLPs, few epochs, no progress bar, CPU."""
    return RunConfig.from_params(
        {
            "train": {
                "common": {
                    "epochs": epochs,
                    "batch_size": 32,
                    "lr": 1e-3,
                    "device": "cpu",
                    "progress": False,
                    "checkpoint_every_s": 0,  # every epoch: a crash test resumes mid-run
                },
                "model": {"encoder": {"name": "mlp", "hidden_dims": [16], "latent_dim": 8}},
                "methods": methods,
            }
        }
    )


TINY_ENCODER = {"name": "mlp", "hidden_dims": [16], "latent_dim": 8}


def build_method(
    name: str, params: dict | None, dataset: MultimodalDataset, seed: int = 0
) -> tuple[Method, MultimodalModel]:
    """A configured, prepared method and its fresh tiny model, as ``train_run`` builds them."""
    method = create_method(name, params or {}, dataset.info)
    torch.manual_seed(seed)
    spec = ModelSpec.create(
        dataset.info, ModelConfig(encoder=TINY_ENCODER),
        method.modalities(dataset.info.modalities), fusion=method.fusion(),
    )  # fmt: skip
    model = MultimodalModel(spec)
    context = SetupContext(seed, torch.device("cpu"), val=dataset.val, train=dataset.train)
    method.prepare(model, context)
    return method, model


def first_batch(dataset: MultimodalDataset, n: int = 32) -> Batch:
    """The first ``n`` training rows as a batch."""
    return Batch({m: x[:n] for m, x in dataset.train.inputs.items()}, dataset.train.labels[:n])


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every populated ``.grad``, by parameter name."""
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


class Interrupted(Exception):
    """Raised by a test callback to simulate a crash between epochs."""


def assert_resume_is_identical(dataset, name: str, config, seed: int, root, crash_after: int = 1):
    """Train ``name`` straight, and again with a crash after epoch ``crash_after`` followed by a
    resume; history and final weights must be bit-identical. Returns the straight run."""
    from mcr.training import load_model, train_run

    straight = train_run(dataset, name, config, seed, root / "straight")

    def crash(record):
        if record["epoch"] == crash_after:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_run(dataset, name, config, seed, root / "resumed", callbacks=[crash])
    resumed = train_run(dataset, name, config, seed, root / "resumed")

    def without_time(history):
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in history]

    assert without_time(resumed.history) == without_time(straight.history)
    a, b = load_model(root / "straight"), load_model(root / "resumed")
    for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
    return straight
