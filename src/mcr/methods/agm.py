"""AGM, adaptive gradient modulation (Li et al., ICCV 2023; docs/baselines.md §6).

Each modality's *mono-modal response* ``m_i`` is read off the fused head with a Shapley
decomposition over zero-masked inputs, and the gradient flowing back into each response is
rescaled so that a modality whose relative loss is worse than its running average catches up.

Per step, with ``z0_m = enc_m(0)`` (one all-zero input row, eval mode, no grad) standing in for an
absent modality and the value function ``v(S) = combine({m: W_m z_m if m in S else W_m z0_m})``:

* ``phi_i = sum_{S ⊆ N\\{i}} |S|!(M-|S|-1)!/M! [v(S ∪ {i}) - v(S)]`` (Shapley value);
* ``m_i = phi_i + v(∅)/M``, so ``sum_i m_i = v(N)`` = the fused logits, exactly. For two
  modalities this is the official ``m_a = ½[f(a,v) - f(0,v) + f(a,0)]``.
* ``s_i = mean_b -log softmax(m_i)_y`` (per-sample ``p < 1e-8`` floored like the official code);
  ``r_i = exp(mean_{j≠i} s_j - s_i)``; ``r̄_i`` the same from ``s̄``, the cumulative mean of
  ``s`` over all earlier steps (0 before the first step, so ``r̄ = 1`` there);
* ``kappa_i = exp(alpha * min(r̄_i - r_i, 10))``; loss ``task(sum_i g(m_i; kappa_i))`` where ``g``
  is the identity whose backward multiplies the gradient by ``kappa_i`` (the official backward
  hooks). The running means are updated with the step's scores *after* ``kappa`` is computed,
  as in the official ``CREMAD_main.py``.
* Official clip, kept: when any entry of the fusion weights' gradient exceeds ``±c`` all
  gradients are clipped to total norm ``c`` (``fusion_grad_clip``, 1.0).

Deviations from the reference code, on purpose:

* **Present modalities are not re-encoded.** The official ``GradMod`` re-runs the whole network in
  eval mode for ``f(a,0)``, ``f(0,v)`` (grad enabled), so the present modality's term there is an
  eval-mode encoding. We use the training-mode ``W_m z_m`` of the main forward pass for every
  present modality and encode only the zero row (eval mode, no grad; the fusion weights still get
  its gradient). With linear fusion every modality's encoder therefore receives exactly
  ``kappa_i`` times its joint-training gradient, and the cost is one extra one-row encoder pass
  per modality instead of two (M=2) full forwards.
* **M modalities:** the ratio uses the mean of the other modalities' scores; for M=2 this is the
  official ``r_a = exp(s_v - s_a)``. The Shapley sum has ``2^M`` head evaluations (cheap: head
  only).
* **Regression:** ``s_i`` is the L1 task loss of ``m_i`` (the official code is classification
  only; an L1 loss plays the role of the negative log-likelihood).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method
from mcr.methods.modulation import eval_mode, scale_gradient
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

#: The official score floors each sample's true-class probability at 1e-8.
_MAX_SAMPLE_SCORE = -math.log(1e-8)
#: The official cap on ``r̄ - r`` inside the exponent.
_MAX_RATIO_GAP = 10.0


@dataclass(frozen=True)
class AGMConfig:
    """Defaults: MCR code base run.sh, CREMA-D / AVE ResNet."""

    # alpha elsewhere: author 1.5 CREMA-D (lihongcs/AGM issue #3); MCR AVE Conformer 0.5;
    # BalanceMM 0.1
    alpha: float = param(
        3.0,
        "modulation strength: kappa_i = exp(alpha * min(rbar_i - r_i, 10))",
        source="MCR run.sh CREMA-D & AVE ResNet",
        ge=0,
    )
    fusion_grad_clip: float = param(
        1.0,
        "c: when any fusion-weight gradient entry has |g| > c, clip all gradients to total norm c;"
        " 0 = off",
        source="official CREMAD_main.py (kept by MCR)",
        ge=0,
    )


Combine = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def shapley_responses(
    combine: Combine, present: Mapping[str, torch.Tensor], absent: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``m_i = phi_i + v(∅)/M`` for ``v(S) = combine(present on S, absent elsewhere)``.

    Written over subsets, so it holds for any head ``combine`` (additive or not); the efficiency
    of the Shapley value makes ``sum_i m_i == v(all present)``. ``absent[m]`` may have one row;
    it is broadcast to the batch.
    """
    modalities = list(present)
    n = len(modalities)
    absent = {m: absent[m].expand_as(present[m]) for m in modalities}
    value = {
        frozenset(subset): combine(
            {m: (present if m in subset else absent)[m] for m in modalities}
        )
        for size in range(n + 1)
        for subset in itertools.combinations(modalities, size)
    }
    empty = value[frozenset()]
    responses = {}
    for i in modalities:
        others = [m for m in modalities if m != i]
        phi = torch.zeros_like(empty)
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi = phi + weight * (value[s | {i}] - value[s])
        responses[i] = phi + empty / n
    return responses


def relative_ratios(scores: torch.Tensor) -> torch.Tensor:
    """``r_i = exp(mean_{j≠i} s_j - s_i)``: above 1 when modality ``i`` has the lower loss."""
    others = (scores.sum() - scores) / (scores.numel() - 1)
    return torch.exp(others - scores)


def agm_coefficients(
    scores: torch.Tensor, mean_scores: torch.Tensor, alpha: float
) -> torch.Tensor:
    """``kappa_i = exp(alpha * min(r̄_i - r_i, 10))``; exactly 1 when ``r == r̄``."""
    gap = relative_ratios(mean_scores) - relative_ratios(scores)
    return torch.exp(alpha * gap.clamp(max=_MAX_RATIO_GAP))


@METHODS.register("agm")
class AGMMethod(Method):
    """Joint training on the sum of Shapley responses, each response's gradient rescaled."""

    Config = AGMConfig
    min_modalities = 2

    def __init__(self, config: AGMConfig, info) -> None:
        super().__init__(config, info)
        self.mean_scores: torch.Tensor | None = None  # s̄ in model.modalities order
        self.steps = 0  # steps folded into s̄ (the official `iteration`)
        self.last_coefficients: dict[str, torch.Tensor] = {}

    def zero_contributions(
        self, model: MultimodalModel, batch: Batch, modalities: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        """``W_m enc_m(0)`` from one all-zero row: encoder in eval mode without grad (as MCR's
        zero-input passes), the fusion weights with grad (as in the official code)."""
        latents = {}
        with torch.no_grad():
            for m in modalities:
                with eval_mode(model.encoders[m]):
                    latents[m] = model.encoders[m](torch.zeros_like(batch.inputs[m][:1]))
        return {m: model.fusion.contribution(m, z) for m, z in latents.items()}

    def response_score(self, response: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``s_i``: mean -log p(y) of the response (floored like the official code), or its L1."""
        response = response.detach().float()
        if self.info.task == "regression":
            return self.task_loss(response, labels)
        nll = F.cross_entropy(response, labels, reduction="none")
        return nll.clamp(max=_MAX_SAMPLE_SCORE).mean()

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        modalities = out.modalities
        zero = self.zero_contributions(model, batch, modalities)
        responses = shapley_responses(model.fusion.combine, out.contributions, zero)
        scores = torch.stack([self.response_score(responses[m], batch.labels) for m in modalities])
        if self.mean_scores is None:
            self.mean_scores = torch.zeros_like(scores)
        means = self.mean_scores.to(scores.device)
        kappa = agm_coefficients(scores, means, self.config.alpha)
        # Official order: kappa from the means of the *previous* steps, then fold this step in.
        self.steps += 1
        self.mean_scores = means + (scores - means) / self.steps
        self.last_coefficients = dict(zip(modalities, kappa, strict=True))
        fused = torch.stack(
            [scale_gradient(responses[m], k) for m, k in self.last_coefficients.items()]
        ).sum(0)
        task = self.task_loss(fused, batch.labels)
        terms = {"task": task.detach()}
        terms.update({f"kappa[{m}]": k for m, k in self.last_coefficients.items()})
        terms.update({f"score[{m}]": s for m, s in zip(modalities, scores, strict=True)})
        return Losses(task, terms)

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        limit = self.config.fusion_grad_clip
        if limit <= 0:
            return
        fusion = [
            p.grad
            for m in model.modalities
            for p in model.fusion.modality_parameters(m)
            if p.grad is not None
        ]
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not fusion or not grads:
            return
        # Branch-free (no host sync): factor 1 unless a fusion entry leaves [-limit, limit].
        largest = torch.stack([g.detach().abs().max() for g in fusion]).max()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        clip = (limit / (norm + 1e-6)).clamp(max=1.0)  # as torch.nn.utils.clip_grad_norm_
        factor = torch.where(largest > limit, clip, torch.ones_like(clip))
        for g in grads:
            g.mul_(factor.to(g.dtype))

    def state_dict(self) -> dict[str, Any]:
        means = None if self.mean_scores is None else self.mean_scores.detach().cpu().clone()
        return {**super().state_dict(), "mean_scores": means, "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.mean_scores = state["mean_scores"]
        self.steps = int(state["steps"])
