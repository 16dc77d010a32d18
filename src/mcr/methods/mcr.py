"""MCR, the Multimodal Competition Regularizer (Kontras et al., NeurIPS 2025; docs/mcr.md).

``L = task(fused) + w_uni * sum_m task(h_m) + lambda_M * R_game + lambda_C * L_Con
      + lambda_CEB * L_CEB``

``R_game`` is built from the divergences between the clean fused prediction and predictions with
the latents of a subset of modalities perturbed (default: permuted within the batch, K times).
The perturbations reuse the latents of the *same* forward pass: with linear late fusion a permuted
latent's contribution is just a gather of the cached ``W_m z_m``, so all ``K * B`` rows of every
term go through the fusion head in one vectorised call and no encoder runs again. Stop-gradients
route each divergence to one player (docs/mcr.md §4.2). Unlike the released two-modality code,
the regulariser *is* added to the loss (docs/mcr.md §8.1, item 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mcr.config import param
from mcr.methods.base import Batch, Losses, Method, SetupContext, unimodal_losses
from mcr.methods.mcr_terms import (
    CEBHead,
    Game,
    game_terms,
    jensen_shannon,
    permutation_indices,
    perturbed_logits,
    squared_error,
    supervised_contrastive,
)
from mcr.methods.modulation import eval_mode
from mcr.methods.registry import METHODS
from mcr.methods.unimodal_init import load_unimodal_weights
from mcr.models.multimodal import MultimodalModel
from mcr.models.outputs import ModelOutput

INIT_HELP = "encoders start from the unimodal runs of the same seed"
Perturbation = Literal["permute", "noise_latent", "zero_latent", "noise_input", "zero_input"]


@dataclass(frozen=True)
class MCRConfig:
    """MCR hyper-parameters; defaults are the CREMA-D ResNet row of docs/mcr.md §7.2."""

    lambda_mipd: float = param(
        0.1,
        "lambda_M, weight of the game regulariser R_game",
        source="MCR code CREMA-D ResNet (--l)",
        ge=0,
    )
    game: Game = param(
        "greedy",
        "the game: greedy (k = -1, all main results) | independent (k = 0) | collaborative"
        " (k = 1)",
        source="paper, all main results",
    )
    num_permutations: int = param(
        32,
        "K, perturbations (permutations or noise draws) per batch",
        source="MCR code CREMA-D ResNet (--num_samples)",
        ge=1,
    )
    perturbation: Perturbation = param(
        "permute",
        "how a modality's information is removed from its latent or input",
        source="paper (permute)",
    )
    shared_permutation: bool = param(
        False,
        "one permutation for all modalities of a subset (the code's _agree variant)",
        source="MCR code CREMA-D ResNet",
    )
    detach_reference: bool = param(
        True,
        "stop-gradient on the clean prediction inside the divergence",
        source="MCR code CREMA-D ResNet",
    )
    unimodal_weight: float = param(
        0.01,
        "w_uni, weight of the task loss of each unimodal head",
        source="MCR code CREMA-D ResNet (--multil)",
        ge=0,
    )
    lambda_con: float = param(
        1.0,
        "lambda_C, weight of the supervised contrastive L_Con",
        source="MCR code CREMA-D ResNet (contr_coeff)",
        ge=0,
    )
    temperature: float = param(
        0.5,
        "tau of L_Con",
        source="MCR code CREMA-D ResNet",
        gt=0,
    )
    lambda_ceb: float = param(
        0.0,
        "lambda_CEB, weight of L_CEB; on for SSL-pretrained backbones only",
        source="MCR code CREMA-D ResNet (--lib)",
        ge=0,
    )
    ceb_condition: Literal["label", "prediction"] = param(
        "label",
        "what the L_CEB head is conditioned on: the label or sg(prediction)",
        source="paper (released code: prediction)",
    )
    ceb_hidden: int = param(
        0,
        "hidden width of the L_CEB head; 0 = latent_dim of the first modality",
        source="ours",
        ge=0,
    )
    released_extra_pass: bool = param(
        False,
        "re-encode in eval mode for the perturbations (the released 2-modality code's cost;"
        " for comparison only -- the paper avoids it)",
        source="paper (off)",
    )
    init_from_unimodal: bool = param(False, INIT_HELP, source="MCR code --pre (off)")


@METHODS.register("mcr")
class MCRMethod(Method):
    Config = MCRConfig
    unimodal_runs = "init_from_unimodal"
    min_modalities = 2

    def __init__(self, config: MCRConfig, info) -> None:
        super().__init__(config, info)
        self.generator = torch.Generator()
        self.ceb_head: CEBHead | None = None
        self.terms = game_terms(config.game, info.modalities)
        self.divergence = squared_error if info.task == "regression" else jensen_shannon

    @property
    def trains_unimodal_heads(self) -> bool:  # type: ignore[override]
        return self.config.unimodal_weight > 0

    def prepare(self, model: MultimodalModel, context: SetupContext) -> None:
        self.generator.manual_seed(context.seed)
        if self.config.init_from_unimodal:
            load_unimodal_weights(model, context)
        dims = [e.latent_dim for e in model.encoders.values()]
        if self.config.lambda_con > 0 and len(set(dims)) > 1:
            raise ValueError(f"lambda_con > 0 needs equal latent dims, got {dims}")
        if self.config.lambda_ceb > 0:
            condition_dim = self.info.num_outputs
            hidden = self.config.ceb_hidden or dims[0]
            self.ceb_head = CEBHead(condition_dim, hidden, sum(dims)).to(context.device)

    def auxiliary(self) -> nn.Module | None:
        return self.ceb_head

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])

    # -- the loss ---------------------------------------------------------------------------

    def loss(self, model: MultimodalModel, batch: Batch, out: ModelOutput) -> Losses:
        cfg = self.config
        task = self.task_loss(out.logits, batch.labels)
        total, terms = task, {"task": task.detach()}
        if cfg.unimodal_weight > 0:
            uni = unimodal_losses(self, batch, out)
            total = total + cfg.unimodal_weight * sum(uni.values())
            terms.update({k: v.detach() for k, v in uni.items()})
        if cfg.lambda_mipd > 0:
            regulariser, divergences = self.game_regulariser(model, batch, out)
            total = total + cfg.lambda_mipd * regulariser
            terms["mipd"] = regulariser.detach()
            terms.update(divergences)
        if cfg.lambda_con > 0:
            con = supervised_contrastive(list(out.latents.values()), batch.labels, cfg.temperature)
            total = total + cfg.lambda_con * con
            terms["con"] = con.detach()
        if cfg.lambda_ceb > 0:
            ceb = self.ceb_loss(batch, out)
            total = total + cfg.lambda_ceb * ceb
            terms["ceb"] = ceb.detach()
        return Losses(total, terms)

    def game_regulariser(
        self, model: MultimodalModel, batch: Batch, out: ModelOutput
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``R_game`` and, for logging, the divergence caused by perturbing each subset.

        The divergences are logged because in the two-modality greedy game the value of ``R``
        is identically zero (each divergence enters once with + and once with -); only its
        gradients, routed by the stop-gradients, differ from zero.
        """
        clean, perturbed = self.perturb(model, batch, out)
        rows = next(iter(clean.values())).shape[0]
        reference = out.logits.repeat(rows // len(batch), 1)
        if self.config.detach_reference:
            reference = reference.detach()
        logits = perturbed_logits(model.fusion.combine, clean, perturbed, self.terms)
        values = self.divergence(logits, reference)
        coefficients = torch.tensor([c for *_, c in self.terms], device=values.device)
        regulariser = (coefficients * values).sum()
        logged = {}
        for (subset, _, _), value in zip(self.terms, values, strict=True):
            logged.setdefault(f"div[{'+'.join(subset)}]", value.detach())
        return regulariser, logged

    def perturb(
        self, model: MultimodalModel, batch: Batch, out: ModelOutput
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Clean and perturbed head contributions of every modality, on the same ``R`` rows."""
        cfg, fusion = self.config, model.fusion
        contributions, latents = out.contributions, out.latents
        if cfg.released_extra_pass:  # the released code's second, eval-mode encoder pass
            with eval_mode(model):
                latents = model.encode(batch.inputs)
            contributions = fusion.contributions(latents)
        modalities = list(contributions)
        batch_size = len(batch)
        k = 1 if cfg.perturbation in ("zero_latent", "zero_input") else cfg.num_permutations
        clean = {m: c.repeat(k, 1) for m, c in contributions.items()}
        if cfg.perturbation == "permute":
            idx = permutation_indices(
                batch_size, k, len(modalities), self.generator, cfg.shared_permutation
            ).to(out.logits.device)
            perturbed = {m: contributions[m][idx[i]] for i, m in enumerate(modalities)}
        elif cfg.perturbation == "noise_latent":
            perturbed = {}
            for m, z in latents.items():
                tiled = z.repeat(k, 1)
                noise = self._noise(tiled.shape, tiled)
                perturbed[m] = fusion.contribution(m, tiled + noise * z.std(0, keepdim=True))
        elif cfg.perturbation == "zero_latent":
            perturbed = {
                m: fusion.contribution(m, torch.zeros_like(z)) for m, z in latents.items()
            }
        else:  # input perturbations re-encode the perturbed inputs (the costly variants)
            perturbed = {}
            for m in modalities:
                x = batch.inputs[m]
                if cfg.perturbation == "zero_input":
                    x_tilde = torch.zeros_like(x)
                else:
                    tiled = x.repeat(k, *([1] * (x.dim() - 1)))
                    x_tilde = tiled + self._noise(tiled.shape, tiled) * x.std(0, keepdim=True)
                perturbed[m] = fusion.contribution(m, model.encoders[m](x_tilde))
        return clean, perturbed

    def _noise(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(like.device, like.dtype)

    def ceb_loss(self, batch: Batch, out: ModelOutput) -> torch.Tensor:
        """``MSE(concat_m z_m, h(condition))``; the condition is one-hot y or sg(prediction)."""
        assert self.ceb_head is not None
        if self.config.ceb_condition == "prediction":
            condition = out.logits.detach().float()
        elif self.info.task == "regression":
            condition = batch.labels.float().reshape(-1, 1)
        else:
            condition = F.one_hot(batch.labels, self.info.num_classes).float()
        target = torch.cat([z.float() for z in out.latents.values()], dim=-1)
        return F.mse_loss(target, self.ceb_head(condition))


@dataclass(frozen=True)
class MCRPreConfig(MCRConfig):
    """``mcr`` as the paper's main results ran it: encoders start from the unimodal runs.

    The regulariser's own contribution is then MCR-pre against Uni-Pre Finetuned (the same
    initialisation, no regulariser), not MCR against joint training.
    """

    init_from_unimodal: bool = param(True, INIT_HELP, source="paper: main results with --pre")


@METHODS.register("mcr_pre")
class MCRPreMethod(MCRMethod):
    """MCR with ``init_from_unimodal: true`` by default; every other setting as ``mcr``."""

    Config = MCRPreConfig
