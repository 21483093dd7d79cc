"""Losses: the displacement loss (per-sample, fp32), the prior-art legacy form and its sign bug, accuracy."""

import pytest
import torch

from spliter.losses import cosine_accuracy, displacement_loss, legacy_loss, make_loss, safe_cosine


def _frames(b: int = 6, d: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    start_true = torch.randn(b, d, generator=g)
    displacement = 0.3 * torch.randn(b, d, generator=g)
    start_state = start_true + 0.05 * torch.randn(
        b, d, generator=g
    )  # e.g. the prior's embedding, not the frame
    return start_state, start_true, start_true + displacement, displacement


def test_perfect_displacement_gives_zero_loss():
    start_state, start_true, target_true, displacement = _frames()
    pred = start_state + displacement
    assert displacement_loss(pred, start_state, start_true, target_true).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_loss_value_matches_the_formula():
    start_state, start_true, target_true, displacement = _frames()
    pred = start_state + 0.5 * displacement + 0.1
    d_pred, d_true = pred - start_state, displacement
    mse = ((d_pred - d_true) ** 2).sum(-1) / d_true.shape[-1]
    cos = torch.nn.functional.cosine_similarity(d_pred, d_true, dim=-1)
    expected = (mse + 0.7 * (1 - cos)).mean()
    assert displacement_loss(
        pred, start_state, start_true, target_true, cos_weight=0.7
    ).item() == pytest.approx(expected.item(), rel=1e-5)


def test_aligned_displacement_beats_anti_aligned_but_legacy_loss_prefers_anti_aligned():
    start_state, start_true, target_true, displacement = _frames()
    small = 1e-3  # keeps the MSE parts negligible, so the cosine terms decide
    target_true = start_true + small * displacement
    aligned = start_state + 0.5 * small * displacement
    anti = start_state - 0.5 * small * displacement
    assert displacement_loss(aligned, start_state, start_true, target_true) < displacement_loss(
        anti, start_state, start_true, target_true
    )
    # B2, documented: the prior art's per-feature max(0, cos) penalises the aligned prediction.
    assert legacy_loss(aligned, start_state, start_true, target_true) > legacy_loss(
        anti, start_state, start_true, target_true
    )


def test_legacy_loss_matches_the_prior_art_per_feature_form():
    start_state, start_true, target_true, _ = _frames(b=5, d=8)
    pred = start_state + torch.randn(5, 8)
    d_img = start_true - target_true
    d_un = start_state - pred
    n_img = d_img / d_img.norm(dim=1, keepdim=True)
    n_un = d_un / d_un.norm(dim=1, keepdim=True)
    # nn.CosineEmbeddingLoss on the transposed (D, B) inputs with target -1, margin 0, per feature.
    rot = nn_cosine_embedding(n_img.T, n_un.T)
    mse = ((d_img - d_un) ** 2).mean(0)
    expected = (0.5 * rot + 0.5 * mse).sum()
    assert legacy_loss(pred, start_state, start_true, target_true).item() == pytest.approx(
        expected.item(), rel=1e-5
    )


def nn_cosine_embedding(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    criterion = torch.nn.CosineEmbeddingLoss(margin=0.0, reduction="none")
    return criterion(a, b, -torch.ones(a.shape[0]))


def test_half_precision_inputs_give_a_float32_loss():
    start_state, start_true, target_true, displacement = _frames()
    halves = [t.half() for t in (start_state + 0.9 * displacement, start_state, start_true, target_true)]
    for fn in (displacement_loss, legacy_loss):
        loss = fn(*halves)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert cosine_accuracy(halves[0], halves[3]).dtype == torch.float32


def test_zero_true_displacement_is_safe():
    start_state, start_true, _, _ = _frames()
    pred = (start_state + 0.1).requires_grad_(True)
    loss = displacement_loss(pred, start_state, start_true, start_true)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    # The cosine term is the constant cos_weight; the MSE term still pulls the prediction back to the start.
    assert loss.item() == pytest.approx(0.01 + 1.0, rel=1e-4)
    assert safe_cosine(torch.zeros(3), torch.ones(3)).item() == 0.0


def test_cosine_accuracy_is_higher_for_better_predictions():
    _, _, target, _ = _frames()
    assert cosine_accuracy(target, target).item() == pytest.approx(1.0, abs=1e-6)
    assert cosine_accuracy(-target, target).item() == pytest.approx(-1.0, abs=1e-6)
    assert cosine_accuracy(target + 0.1 * torch.randn_like(target), target) > cosine_accuracy(
        target + torch.randn_like(target), target
    )


def test_make_loss():
    start_state, start_true, target_true, displacement = _frames()
    pred = start_state - displacement
    args = (pred, start_state, start_true, target_true)
    assert make_loss("displacement", cos_weight=0.0)(*args) == displacement_loss(*args, cos_weight=0.0)
    assert make_loss("displacement", cos_weight=2.0)(*args) == displacement_loss(*args, cos_weight=2.0)
    assert make_loss("legacy")(*args) == legacy_loss(*args)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("mse")


def test_shape_mismatch_raises():
    start_state, start_true, target_true, _ = _frames()
    with pytest.raises(ValueError, match="share one shape"):
        displacement_loss(start_state[:3], start_state, start_true, target_true)
