"""MCR's pieces against hand computations and autograd (docs/mcr.md §3 and §4)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from mcr.data.dataset import DatasetInfo
from mcr.methods import Batch, SetupContext, create_method
from mcr.methods.mcr_terms import (
    game_terms,
    jensen_shannon,
    permutation_indices,
    proper_subsets,
    supervised_contrastive,
)
from mcr.models import ModelConfig, ModelSpec, MultimodalModel

K_OF_GAME = {"greedy": -1.0, "independent": 0.0, "collaborative": 1.0}


def test_jensen_shannon_matches_hand_computation() -> None:
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.1, 0.3, 0.6])
    m = (p + q) / 2
    expected = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    got = jensen_shannon(p.log()[None], q.log()[None])
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_jensen_shannon_bounds_and_vectorisation() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 50, 6, generator=g) * 5, torch.randn(50, 6, generator=g) * 5
    values = jensen_shannon(a, b)
    assert values.shape == (4,)
    assert bool((values >= 0).all()) and bool((values <= math.log(2) + 1e-6).all())
    for t in range(4):  # the stacked call equals one call per term
        assert values[t].item() == pytest.approx(jensen_shannon(a[t], b).item(), abs=1e-6)
    assert jensen_shannon(b, b).item() == pytest.approx(0.0, abs=1e-7)
    disjoint = jensen_shannon(torch.tensor([[60.0, 0.0]]), torch.tensor([[0.0, 60.0]]))
    assert disjoint.item() == pytest.approx(math.log(2), abs=1e-6)


def test_permutation_indices_are_permutations_and_shared_option() -> None:
    idx = permutation_indices(7, 5, 3, torch.Generator().manual_seed(1), shared=False)
    assert idx.shape == (3, 35)
    for row in idx:
        for k in range(5):
            assert sorted(row[k * 7 : (k + 1) * 7].tolist()) == list(range(7))
    assert not torch.equal(idx[0], idx[1])
    shared = permutation_indices(7, 5, 3, torch.Generator().manual_seed(1), shared=True)
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])


def test_three_modality_game_uses_every_proper_nonempty_subset() -> None:
    mods = ("a", "b", "c")
    expected = {s for r in (1, 2) for s in itertools.combinations(mods, r)}
    assert set(proper_subsets(mods)) == expected and len(expected) == 6
    greedy = game_terms("greedy", mods)
    assert {s for s, _, _ in greedy} == expected
    assert len(greedy) == 18  # M * (2^M - 2) head evaluations, docs/mcr.md §5.1
    for subset, player, coefficient in greedy:
        assert coefficient == (-1.0 if player in subset else 1.0)
    independent = game_terms("independent", mods)
    assert all(p in s and c == -1.0 for s, p, c in independent) and len(independent) == 9
    assert [(s, p) for s, p, _ in game_terms("collaborative", mods)] == [
        (s, None) for s in proper_subsets(mods)
    ]


def naive_supervised_ntxent(u: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """Loop version of pytorch-metric-learning's NTXentLoss with label positives."""
    u = F.normalize(u, dim=-1)
    losses = []
    for a, p in itertools.permutations(range(len(y)), 2):
        if y[a] != y[p]:
            continue
        pos = torch.exp(u[a] @ u[p] / tau)
        neg = sum(torch.exp(u[a] @ u[n] / tau) for n in range(len(y)) if y[n] != y[a])
        losses.append(-torch.log(pos / (pos + neg)))
    return torch.stack(losses).mean()


def test_supervised_contrastive_matches_loop_definition() -> None:
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 0, 2, 1, 0])
    got = supervised_contrastive([z1, z2], y, 0.5)
    expected = naive_supervised_ntxent(torch.cat([z1, z2]), y.repeat(2), 0.5)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    single = torch.tensor([0, 1, 2])  # two modalities: each sample's pair is its only positive
    assert supervised_contrastive([z1[:3], z2[:3]], single, 0.5).item() > 0


def build(modalities: tuple[str, ...], seed: int = 0):
    torch.manual_seed(seed)
    info = DatasetInfo("toy", "classification", 4, modalities, {m: (5,) for m in modalities})
    config = ModelConfig(
        encoder={"name": "mlp", "hidden_dims": [6], "latent_dim": 3, "dropout": 0}
    )
    model = MultimodalModel(ModelSpec.create(info, config))
    g = torch.Generator().manual_seed(seed + 100)
    inputs = {m: torch.randn(8, 5, generator=g) for m in modalities}
    labels = torch.randint(0, 4, (8,), generator=g)
    return info, model, Batch(inputs, labels)


def player_grads(model: MultimodalModel, loss: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    out = {}
    for m in model.modalities:
        params = list(model.player_parameters(m))
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out[m] = [
            torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=False)
        ]
    return out


@pytest.mark.parametrize("modalities", [("a", "b"), ("a", "b", "c")])
@pytest.mark.parametrize("game", ["greedy", "independent", "collaborative"])
def test_gradient_routing_equals_eq_12_13(game: str, modalities: tuple[str, ...]) -> None:
    """Eq. 12-13: grad_i R = grad_i L_MIPD_i + k grad_i L_MIPD_j, with L_MIPD_S = -D_S computed
    without any stop-gradient; for M modalities every subset S without i enters with k."""
    info, model, batch = build(modalities)
    method = create_method("mcr", {"game": game, "num_permutations": 3}, info)
    method.prepare(model, SetupContext(seed=11, device=torch.device("cpu")))
    out = model(batch.inputs)
    regulariser, _ = method.game_regulariser(model, batch, out)

    # The same permutations, drawn independently, and the terms computed with plain autograd.
    idx = permutation_indices(8, 3, len(modalities), torch.Generator().manual_seed(11), False)
    reference = out.logits.detach().repeat(3, 1)
    clean = {m: c.repeat(3, 1) for m, c in out.contributions.items()}
    shuffled = {m: out.contributions[m][idx[i]] for i, m in enumerate(modalities)}
    divergence = {
        s: jensen_shannon(
            model.fusion.combine({m: shuffled[m] if m in s else clean[m] for m in modalities}),
            reference,
        )
        for s in proper_subsets(modalities)
    }
    got = player_grads(model, regulariser)
    per_subset = {s: player_grads(model, d) for s, d in divergence.items()}
    k = K_OF_GAME[game]
    for i in modalities:
        expected = [torch.zeros_like(p) for p in model.player_parameters(i)]
        for s, grads in per_subset.items():
            c = -1.0 if i in s else -k  # L_MIPD = -D
            expected = [e + c * g for e, g in zip(expected, grads[i], strict=False)]
        for g, e in zip(got[i], expected, strict=False):
            torch.testing.assert_close(g, e, atol=1e-6, rtol=1e-5)
        assert any(float(g.abs().sum()) > 0 for g in got[i])  # the test is not vacuous


def test_two_modality_greedy_value_is_zero_but_divergences_are_logged() -> None:
    info, model, batch = build(("a", "b"))
    method = create_method("mcr", {"num_permutations": 4}, info)
    method.prepare(model, SetupContext(seed=0, device=torch.device("cpu")))
    out = model(batch.inputs)
    regulariser, logged = method.game_regulariser(model, batch, out)
    assert regulariser.item() == pytest.approx(0.0, abs=1e-7)
    assert set(logged) == {"div[a]", "div[b]"} and all(v.item() > 0 for v in logged.values())


def test_identity_permutations_give_zero_mipd() -> None:
    _info, model, batch = build(("a", "b"))
    out = model(batch.inputs)
    clean = {m: c.repeat(2, 1) for m, c in out.contributions.items()}
    from mcr.methods.mcr_terms import perturbed_logits

    for game in K_OF_GAME:
        terms = game_terms(game, ("a", "b"))
        logits = perturbed_logits(model.fusion.combine, clean, clean, terms)
        values = jensen_shannon(logits, out.logits.detach().repeat(2, 1))
        assert torch.allclose(values, torch.zeros_like(values), atol=1e-7)
