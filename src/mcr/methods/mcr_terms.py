"""The mathematical pieces of MCR (docs/mcr.md §3 and §4), as pure tensor functions.

Kept apart from the strategy class so each piece is testable by hand: the divergences, the
permutation draw, the M-player game over modality subsets, the supervised contrastive loss and
the conditional-entropy-bottleneck head.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Game = Literal["greedy", "independent", "collaborative"]
Subset = tuple[str, ...]


def jensen_shannon(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """JSD between ``softmax(logits)`` and ``softmax(reference)``, natural log, in ``[0, ln 2]``.

    Summed over classes and averaged over rows (the code's "batchmean"); leading axes beyond the
    last two are kept, so ``(T, R, C)`` against ``(R, C)`` gives ``T`` divergences in one call.
    Computed from log-probabilities (``log m = logaddexp(log p, log q) - ln 2``), which is exact
    where the released code clamps probabilities to ``[1e-20, 1]``.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_q = F.log_softmax(reference.float(), dim=-1).expand_as(log_p)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)
    kl_pm = (log_p.exp() * (log_p - log_m)).sum(-1)
    kl_qm = (log_q.exp() * (log_q - log_m)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).mean(-1)


def squared_error(outputs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The regression divergence: mean squared difference over rows (and outputs)."""
    return (outputs.float() - reference.float()).pow(2).mean(dim=(-2, -1))


def proper_subsets(modalities: Sequence[str]) -> list[Subset]:
    """Every non-empty proper subset, by size then order: ``{1}, {2}, ..., {1,2}, ...``."""
    return [s for r in range(1, len(modalities)) for s in itertools.combinations(modalities, r)]


def permutation_indices(
    batch_size: int,
    num_permutations: int,
    num_modalities: int,
    generator: torch.Generator,
    shared: bool,
) -> torch.Tensor:
    """``(M, K*B)`` gather indices: ``K`` independent random permutations per modality.

    Fixed points are allowed (``torch.randperm`` semantics, as in the released code). With
    ``shared`` every modality uses the same ``K`` permutations (the code's ``_agree`` variant).
    """
    rows = 1 if shared else num_modalities
    noise = torch.rand(rows, num_permutations, batch_size, generator=generator)
    perms = noise.argsort(dim=-1).reshape(rows, -1)
    return perms.expand(num_modalities, -1) if shared else perms


def game_terms(game: Game, modalities: Sequence[str]) -> list[tuple[Subset, str | None, float]]:
    """The ``(subset S, player i, coefficient)`` terms of the regulariser ``R``.

    ``R = sum coefficient * D[S, i]``, where ``D[S, i]`` is the divergence caused by perturbing
    the modalities in ``S`` with gradient flowing only through player ``i`` (``None`` = all
    players, the collaborative game). Player ``i`` maximises the influence of every subset that
    contains it (coefficient -1); in the greedy game it also minimises that of every subset
    without it (+1). For two modalities this is exactly eq. 12-13 with ``k = -1 / 0 / +1``.
    """
    subsets = proper_subsets(modalities)
    if game == "collaborative":
        return [(s, None, -1.0) for s in subsets]
    terms = []
    for s in subsets:
        for player in modalities:
            if player in s:
                terms.append((s, player, -1.0))
            elif game == "greedy":
                terms.append((s, player, 1.0))
    return terms


def perturbed_logits(
    combine: Callable[[Mapping[str, torch.Tensor]], torch.Tensor],
    clean: Mapping[str, torch.Tensor],
    perturbed: Mapping[str, torch.Tensor],
    terms: Sequence[tuple[Subset, str | None, float]],
) -> torch.Tensor:
    """``(T, R, C)`` fused logits for every term, with the stop-gradients that route each term.

    ``clean[m]`` and ``perturbed[m]`` are modality ``m``'s head contributions on the same ``R``
    rows (clean copies and perturbed versions). For term ``(S, i)`` modality ``m`` uses its
    perturbed contribution iff ``m in S``, and is detached unless ``m == i`` (or ``i is None``).
    Each modality's ``T`` parts are stacked first, so the fusion head runs once on ``T * R`` rows.
    """
    stacks = {}
    for m in clean:
        parts = []
        for subset, player, _ in terms:
            part = perturbed[m] if m in subset else clean[m]
            parts.append(part if player in (None, m) else part.detach())
        stacks[m] = torch.stack(parts)
    return combine(stacks)


def supervised_contrastive(
    latents: Sequence[torch.Tensor], labels: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Supervised NT-Xent over the stacked modality embeddings (docs/mcr.md §3.4).

    Rows are the ``M * B`` L2-normalised latents, each labelled with its sample's label. Every
    ordered pair ``(a, p)``, ``a != p``, with equal labels is a positive; the negatives of ``a``
    are all rows with a different label. Per positive pair the loss is
    ``-log(e^{s_ap/t} / (e^{s_ap/t} + sum_n e^{s_an/t}))``, averaged over positive pairs
    (pytorch-metric-learning's ``NTXentLoss`` semantics, which the released code uses). Returns
    0 when the batch has no positive pair.
    """
    u = F.normalize(torch.cat([z.float() for z in latents]), dim=-1)
    y = labels.repeat(len(latents))
    sim = u @ u.T / temperature
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
    positive = same & ~eye
    if not bool(positive.any()):
        return sim.sum() * 0.0
    negatives_lse = sim.masked_fill(same, float("-inf")).logsumexp(dim=1, keepdim=True)
    pair_loss = torch.logaddexp(sim, negatives_lse) - sim
    return pair_loss[positive].mean()


class CEBHead(nn.Module):
    """``h``: reconstructs the concatenated latents from the label (or the prediction).

    ``Linear(C -> hidden, no bias) -> ReLU -> Linear(hidden -> sum d_m, no bias)``, as the code's
    ``fc_yz``. L_CEB = MSE(concat z, h(.)), a variational upper bound on the task-irrelevant
    shared information I(Z1; Z2 | Y) (docs/mcr.md §3.5).
    """

    def __init__(self, num_inputs: int, hidden: int, num_outputs: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(num_inputs, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, num_outputs, bias=False),
        )

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        return self.net(condition)
