"""MMPareto: Pareto integration of multimodal and unimodal gradients (Wei & Hu, ICML 2024;
docs/baselines.md §10).

A multi-loss model (``L = L_mm + sum_u L_u``, ``L_u`` the task loss of the unimodal head ``h_u``)
gives every encoder ``u`` two gradients that may conflict: ``g_mm = d L_mm / d theta_u`` and
``g_u = d L_u / d theta_u``. Per encoder (all its parameters flattened into one vector):

* ``cos(g_mm, g_u) > 0``: no conflict, ``(w1, w2) = (1/2, 1/2)``;
* otherwise the two-task min-norm (MGDA) weights, the closed form of
  ``min_{w in [0,1]} |w g_mm + (1 - w) g_u|``:
  ``w1 = clip(((g_u - g_mm) . g_u) / |g_mm - g_u|^2, 0, 1)``, ``w2 = 1 - w1``.

Then per parameter tensor ``g_new = 2 (w1 g_mm + w2 g_u)``, ``r = |g_total| / |g_new|`` with
``g_total`` the tensor's gradient of the whole loss (what the loop's ``backward`` left in
``.grad``), and ``.grad <- gamma * r * g_new`` if ``r > 1`` else ``gamma * g_new``: the
conflict-free direction, with at least the magnitude of the plain sum, times ``gamma``. The
fusion head and the unimodal heads keep their ordinary gradients.

How it maps onto the hooks: ``loss`` returns the plain multi-loss sum (so the loop's single
``backward`` gives ``g_total`` and trains the heads normally) and, before returning, takes
``g_mm`` and each ``g_u`` with ``torch.autograd.grad`` on the retained graph (M + 1 extra partial
backward passes, as the reference's per-loss ``backward`` calls); ``after_backward`` rewrites the
encoder gradients. Works for any task (the task loss is CE or L1) and any M >= 2: each encoder
only ever sees its own two losses, so the two-task solution applies per encoder unchanged.

Deliberate deviations from the official code (``code/MMPareto.py``, ``min_norm_solvers.py``):

* The min-norm weight is clipped to ``[0, 1]``; the reference's solver returns 0.001 / 0.999 in
  the clipped cases. With ``cos <= 0`` these arise only when one gradient is exactly zero, where
  the reference then divides by a (near) zero norm.
* Zero gradients: when ``g_new`` is zero (a Pareto-stationary encoder: the two gradients cancel,
  or both are zero) the encoder's gradient is set to zero instead of the reference's
  ``0/0 = NaN``; ``cos`` of a zero vector is taken as 0 (the min-norm branch).
* ``gamma`` is a parameter (the official code hard-codes 1.5; the MCR code base reads it from
  its config as ``alpha``).
* Every encoder parameter is rewritten; the reference selects parameters by name (``audio`` /
  ``visual`` in the name, ``head`` excluded), which is the same set for its models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method, unimodal_losses
from mcr.methods.modulation import encoder_parameters
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class MMParetoConfig:
    """Defaults: official code (gamma hard-coded 1.5) = MCR run.sh, CREMA-D ResNet."""

    gamma: float = param(
        1.5,
        "magnitude boost of the Pareto-integrated encoder gradients",
        source="official code (hard-coded) = MCR run.sh CREMA-D ResNet (MCR: 2.0 CREMA-D"
        " Conformer, 0.5 AVE ResNet, 3.0 AVE Conformer)",
        gt=0,
    )


def min_norm_weights(g1: torch.Tensor, g2: torch.Tensor) -> tuple[float, float]:
    """``(w, 1 - w)`` minimising ``|w g1 + (1 - w) g2|`` over ``w in [0, 1]`` (2-task MGDA).

    Setting the derivative of ``|g2 + w (g1 - g2)|^2`` to zero gives
    ``w = (g2 - g1) . g2 / |g1 - g2|^2``; clipping to ``[0, 1]`` keeps it in the convex hull.
    Equal vectors (zero denominator): every ``w`` is optimal, ``1/2`` is returned.
    """
    g1, g2 = g1.double().flatten(), g2.double().flatten()
    diff = g1 - g2
    denominator = float(diff.dot(diff))
    if denominator == 0.0:
        return 0.5, 0.5
    w = min(1.0, max(0.0, float((g2 - g1).dot(g2)) / denominator))
    return w, 1.0 - w


def cosine(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """Cosine similarity of two flattened gradients; 0 when either is the zero vector."""
    g1, g2 = g1.double().flatten(), g2.double().flatten()
    norms = float(g1.norm() * g2.norm())
    return float(g1.dot(g2)) / norms if norms > 0 else 0.0


def pareto_weights(g_mm: torch.Tensor, g_u: torch.Tensor) -> tuple[float, float, float]:
    """``(w_mm, w_u, cos)``: equal weights without conflict, the min-norm weights with one."""
    cos = cosine(g_mm, g_u)
    if cos > 0:
        return 0.5, 0.5, cos
    return (*min_norm_weights(g_mm, g_u), cos)


def pareto_gradient(
    g_mm: torch.Tensor,
    g_u: torch.Tensor,
    g_total: torch.Tensor,
    weights: tuple[float, float],
    gamma: float,
) -> torch.Tensor:
    """One parameter tensor's new gradient: ``gamma * max(1, r) * 2 (w1 g_mm + w2 g_u)``.

    ``r = |g_total| / |g_new|``: the Pareto direction never has a smaller magnitude than the
    plain sum of the losses' gradients. A zero ``g_new`` stays zero (no ``0/0``).
    """
    w1, w2 = weights
    g_new = 2 * (w1 * g_mm + w2 * g_u)
    new_norm = g_new.norm()
    if new_norm > 0:
        ratio = g_total.norm() / new_norm
        if ratio > 1:
            return gamma * ratio * g_new
    return gamma * g_new


@METHODS.register("mmpareto")
class MMParetoMethod(Method):
    """Multi-loss training whose encoder gradients are the Pareto-integrated, enlarged ones."""

    Config = MMParetoConfig
    trains_unimodal_heads = True
    min_modalities = 2

    def __init__(self, config: MMParetoConfig, info) -> None:
        super().__init__(config, info)
        # modality -> (weights, g_mm per encoder tensor, g_u per encoder tensor); set by
        # ``loss``, consumed by ``after_backward`` of the same step (never across steps).
        self._pending: dict[str, tuple[tuple[float, float], list, list]] = {}

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        task = self.task_loss(out.logits, batch.labels)
        uni = unimodal_losses(self, batch, out)
        total = task + sum(uni.values())
        terms = {"task": task.detach(), **{k: v.detach() for k, v in uni.items()}}
        self._pending = {}
        if not (torch.is_grad_enabled() and total.requires_grad):
            return Losses(total, terms)
        params = {m: encoder_parameters(model, m) for m in model.modalities}
        flat = [p for m in model.modalities for p in params[m]]
        g_mm_all = _grads(task, flat)
        start = 0
        for m in model.modalities:
            g_mm = g_mm_all[start : start + len(params[m])]
            start += len(params[m])
            g_u = _grads(uni[f"uni[{m}]"], params[m])
            w1, w2, cos = pareto_weights(_concat(g_mm), _concat(g_u))
            self._pending[m] = ((w1, w2), g_mm, g_u)
            terms[f"w_mm[{m}]"] = torch.tensor(w1)
            terms[f"cos[{m}]"] = torch.tensor(cos)
        return Losses(total, terms)

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        for m, (weights, g_mm, g_u) in self._pending.items():
            for p, a, b in zip(encoder_parameters(model, m), g_mm, g_u, strict=True):
                if p.grad is None:  # not used by any loss: nothing to integrate
                    continue
                p.grad = pareto_gradient(a, b, p.grad, weights, self.config.gamma).to(p.grad)
        self._pending = {}


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    """``d loss / d p`` for every ``p`` (zeros where ``p`` is unused); the graph is kept."""
    if not params:
        return []
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _concat(grads: list[torch.Tensor]) -> torch.Tensor:
    if not grads:
        return torch.zeros(0)
    return torch.cat([g.flatten() for g in grads])
