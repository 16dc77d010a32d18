"""Small pieces the balancing baselines share: per-modality batch scores and gradient scaling.

Kept here so each method module reads as its paper's formula and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mcr.data.dataset import DatasetInfo
from mcr.models.multimodal import MultimodalModel


def batch_scores(
    info: DatasetInfo, logits: Mapping[str, torch.Tensor], labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """``s_m = sum_i softmax(o_m^i)_{y_i}`` per modality (OGM, MLB, PMR; docs/baselines.md §1.2).

    For regression there is no class probability; ``exp(-|o_m - y|)`` plays its part (1 for a
    perfect prediction, falling towards 0), so the ratios the methods take stay meaningful.
    Scores are detached: they steer the training, they are not trained on.
    """
    scores = {}
    for m, o in logits.items():
        o = o.detach().float()
        if info.task == "regression":
            scores[m] = torch.exp(-(o.reshape(-1) - labels.float()).abs()).sum()
        else:
            scores[m] = F.softmax(o, dim=-1).gather(1, labels.view(-1, 1)).sum()
    return scores


def mean_of_others(scores: Mapping[str, torch.Tensor], modality: str) -> torch.Tensor:
    """``1/(M-1) sum_{j != m} s_j``: the M-modality stand-in for "the other modality"."""
    return torch.stack([s for m, s in scores.items() if m != modality]).mean()


def encoder_parameters(model: MultimodalModel, modality: str) -> list[nn.Parameter]:
    """The trainable parameters of ``modality``'s encoder (what OGM/MMPareto/D&R act on)."""
    return [p for p in model.encoders[modality].parameters() if p.requires_grad]


def scale_gradients(params: Iterable[nn.Parameter], factor: float | torch.Tensor) -> None:
    """``g <- factor * g`` in place for every parameter that received a gradient."""
    for p in params:
        if p.grad is not None:
            p.grad.mul_(factor)


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, ``grad * factor`` backward (AGM's backward hook as a function)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(factor)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (factor,) = ctx.saved_tensors
        return grad * factor.to(grad.dtype), None


def scale_gradient(x: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """``x`` unchanged; the gradient flowing back through it is multiplied by ``factor``."""
    factor = torch.as_tensor(factor, dtype=torch.float32, device=x.device).detach()
    return _ScaleGradient.apply(x, factor)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run a block with ``module`` in eval mode (dropout off, BN frozen), then restore it."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
