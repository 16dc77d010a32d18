"""The one training loop, its checkpoints, and the end-to-end run that wires them together."""

from mcr.training.checkpoint import load_model
from mcr.training.inference import predict
from mcr.training.loop import FitResult, TrainConfig, fit
from mcr.training.run import RunConfig, train_run

__all__ = ["FitResult", "RunConfig", "TrainConfig", "fit", "load_model", "predict", "train_run"]
