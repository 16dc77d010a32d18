"""InfoReg, information-acquisition regulation (Huang et al., CVPR 2025; docs/baselines.md §16).

Early training is a *prime learning window* in which the information-sufficient modality
acquires most of its information and starves the others. InfoReg slows that modality down with a
proximal term towards its weights at the start of the epoch, only while the window is open.

* ``on_epoch_start``: snapshot every encoder's weights ``theta_start`` (detached clones) and
  decide each modality's window from the history of its Fisher-information trace.
* per step: ``o_m = W_m z_m + b/M`` (the fused head's own per-modality output);
  ``s_m = mean -log softmax(o_m)_y``; ``Delta_m`` = mean of ``s_j - s_m`` over the modalities
  ``j`` with ``s_j > s_m`` (0 for the weakest). Loss ``task(fused) + w_uni * sum_m CE(o_m)``.
* ``after_backward``: add ``||grad enc_m||²`` (before any proximal term) to the epoch's FIM
  trace estimate; then, if ``m``'s window is open and ``Delta_m > 0``,
  ``grad += coef_m (theta - theta_start)`` with ``coef_m = strength * exp(beta * tanh(Delta_m))``
  -- the gradient of the paper's ``(coef/2)||theta - theta_start||²``.
* ``on_epoch_end``: ``Tr(F_m)`` = mean over the epoch's steps of ``||grad enc_m||²`` is appended to
  the history. Window test (official code): with ``MA_t = sum of the last `window` traces /
  window`` (epochs before the first count as 0, as the official list pre-filled with zeros),
  ``k = (MA_t - MA_{t-1}) / MA_t`` -- the change relative to the *latest* average, as in the
  code and the paper's window test -- and the window is open while ``k > threshold``. With
  fewer than two epochs of history the window is open: the prime window is the start of
  training.

Deviations from the official ``main.py``, on purpose:

* **Symmetric rule (paper).** The code regulates audio with ``0.95 exp(tanh(gap))`` and video with
  ``0.1 exp(tanh(gap))``, and decides the window from the *audio* trace for both; we use one
  ``strength`` for every modality (0.95, the code's value for the dominant audio) and each
  modality's own window, which is the paper's formulation and extends to M modalities.
* **Gap from mean log-likelihoods (paper).** The code's gap is the difference of batch-*summed*
  true-class probabilities (``tanh`` of it saturates at 1 for any real gap with a batch of 64);
  we use the paper's ``Delta_m`` on ``s_m = mean -log p_m(y)`` and ``exp(beta tanh(Delta))``.
* **FIM trace.** The code sums, over the encoder's conv/linear *weights*, the per-element mean of
  squared gradients accumulated over the epoch, after the proximal term was added. We use the
  paper's ``Tr(F_m) = E ||grad_{theta_m} L||²`` over all encoder parameters, from the loss
  gradient alone (the regulariser is not information acquired from the data). Only the
  relative change enters the window test, so the step count cancels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method
from mcr.methods.modulation import encoder_parameters
from mcr.methods.registry import METHODS
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput


@dataclass(frozen=True)
class InfoRegConfig:
    """Defaults: official ``main.py`` (GeWu-Lab/InfoReg_CVPR2025), CREMA-D."""

    strength: float = param(
        0.95,
        "proximal coefficient before exp(beta * tanh(Delta)), the same for every modality",
        source="official main.py, dominant audio modality (0.1 for video)",
        ge=0,
    )
    beta: float = param(
        1.0,
        "beta in the paper's exp(beta * tanh(Delta))",
        source="official main.py exp(tanh(gap))",
        ge=0,
    )
    window: int = param(
        10,
        "epochs in the FIM-trace moving average",
        source="official main.py",
        ge=1,
    )
    threshold: float = param(
        0.05,
        "the prime learning window stays open while k > threshold",
        source="official main.py (an earlier commit: 0.04)",
        ge=0,
    )
    unimodal_weight: float = param(
        1.0,
        "weight of each CE(o_m) next to the fused CE; 0 = fused task loss only",
        source="official main.py backpropagates CE(o_a) + CE(o_v) + CE(o)",
        ge=0,
    )


def window_open(traces: Sequence[float], window: int, threshold: float) -> bool:
    """Is the prime learning window still open after the epochs whose FIM traces are given?

    ``k = (MA_t - MA_{t-1}) / MA_t`` with ``MA_t = sum(traces[-window:]) / window`` (missing
    epochs count as 0, as in the official code). Open with fewer than two traces.
    """
    if len(traces) < 2:
        return True
    latest = sum(traces[-window:]) / window
    previous = sum(traces[-window - 1 : -1]) / window
    if latest <= 0:
        return False  # no gradient at all: nothing is being acquired
    return (latest - previous) / latest > threshold


def score_gaps(scores: torch.Tensor) -> torch.Tensor:
    """``Delta_m`` = mean of ``s_j - s_m`` over ``j`` with ``s_j > s_m``; 0 for the weakest."""
    diff = scores.unsqueeze(0) - scores.unsqueeze(1)  # diff[m, j] = s_j - s_m
    above = diff > 0
    return (diff * above).sum(1) / above.sum(1).clamp_min(1)


@METHODS.register("inforeg")
class InfoRegMethod(Method):
    """Joint training; a proximal pull on the encoders of the stronger modalities in the window."""

    Config = InfoRegConfig
    supported_tasks = ("classification",)
    min_modalities = 2

    def __init__(self, config: InfoRegConfig, info) -> None:
        super().__init__(config, info)
        self.history: dict[str, list[float]] = {}  # modality -> Tr(F_m) per finished epoch
        self.open: dict[str, bool] = {}
        self.start_weights: dict[str, list[torch.Tensor]] = {}
        self.grad_sq: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.coefficients: dict[str, torch.Tensor] = {}

    def on_epoch_start(self, epoch: int, model: MultimodalModel) -> None:
        cfg = self.config
        self.start_weights = {
            m: [p.detach().clone() for p in encoder_parameters(model, m)] for m in model.modalities
        }
        self.open = {
            m: window_open(self.history.get(m, []), cfg.window, cfg.threshold)
            for m in model.modalities
        }
        self.grad_sq = {}
        self.steps = 0
        self.coefficients = {}

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        cfg = self.config
        task = self.task_loss(out.logits, batch.labels)
        modalities = out.modalities
        uni = {
            m: F.cross_entropy(out.in_model_logits(m).float(), batch.labels) for m in modalities
        }
        total = task
        if cfg.unimodal_weight > 0:
            total = total + cfg.unimodal_weight * sum(uni.values())
        scores = torch.stack([uni[m].detach() for m in modalities])
        gaps = score_gaps(scores)
        # No host sync: a closed window or Delta_m = 0 (the weakest) gives coefficient 0.
        is_open = torch.tensor([self.open.get(m, True) for m in modalities], device=gaps.device)
        applies = is_open & (gaps > 0)
        coefficients = cfg.strength * torch.exp(cfg.beta * torch.tanh(gaps)) * applies
        self.coefficients = dict(zip(modalities, coefficients, strict=True))
        terms = {"task": task.detach()}
        for i, m in enumerate(modalities):
            terms[f"score[{m}]"] = scores[i]
            terms[f"coef[{m}]"] = coefficients[i]
            terms[f"window[{m}]"] = is_open[i].float()
        return Losses(total, terms)

    def after_backward(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> None:
        self.steps += 1
        for m in model.modalities:
            params = encoder_parameters(model, m)
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                sq = torch.stack([g.detach().float().pow(2).sum() for g in grads]).sum()
                self.grad_sq[m] = self.grad_sq[m] + sq if m in self.grad_sq else sq
            if (
                not self.open.get(m, True)
                or m not in self.coefficients
                or m not in self.start_weights
            ):
                continue  # closed window: the gradient is left exactly as it is
            coef = self.coefficients[m]
            for p, start in zip(params, self.start_weights[m], strict=True):
                if p.grad is not None:
                    p.grad.add_(coef.to(p.grad.dtype) * (p.detach() - start))

    def on_epoch_end(
        self, epoch: int, model: MultimodalModel, val_metrics: Mapping[str, float]
    ) -> None:
        for m in model.modalities:
            trace = (
                float(self.grad_sq[m]) / self.steps if m in self.grad_sq and self.steps else 0.0
            )
            self.history.setdefault(m, []).append(trace)

    def state_dict(self) -> dict[str, Any]:
        history = {m: list(v) for m, v in self.history.items()}
        return {**super().state_dict(), "history": history}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = {m: [float(x) for x in v] for m, v in state["history"].items()}
