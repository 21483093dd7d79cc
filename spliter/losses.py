"""Training losses and the accuracy metric on embedding displacements (method.md §5.6, §5.7; fixes B2, B3, B7).

All functions take (B, D) embeddings (any leading shape works for the per-sample forms), cast them to at least
float32 and return a float32 (or wider) scalar.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

LOSSES = ("displacement", "legacy")

_COS_EPS = 1e-8


def _as_float(*tensors: Tensor) -> tuple[Tensor, ...]:
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(dtype) for t in tensors)


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"loss inputs must share one shape (B, D), got {shapes}")


def safe_cosine(a: Tensor, b: Tensor, eps: float = _COS_EPS) -> Tensor:
    """Cosine along the last axis; 0 (not NaN) where either vector is (near) zero, with finite gradients."""
    norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return (a * b).sum(-1) / norms.clamp_min(eps)


def displacement_loss(
    pred: Tensor, start_state: Tensor, start_true: Tensor, target_true: Tensor, cos_weight: float = 1.0
) -> Tensor:
    """Per-sample ``|d_pred - d_true|² / D + cos_weight · (1 - cos(d_pred, d_true))``, averaged over samples.

    ``d_pred = pred - start_state`` (the step the model took from the state it was given), ``d_true =
    target_true - start_true`` (the real displacement between the two frames). The cosine is per sample along
    the embedding axis (B2); a zero true displacement contributes ``cos_weight`` with no cosine gradient.
    """
    _check_same_shape(pred=pred, start_state=start_state, start_true=start_true, target_true=target_true)
    pred, start_state, start_true, target_true = _as_float(pred, start_state, start_true, target_true)
    d_pred = pred - start_state
    d_true = target_true - start_true
    mse = (d_pred - d_true).pow(2).mean(-1)
    per_sample = mse + cos_weight * (1.0 - safe_cosine(d_pred, d_true))
    return per_sample.mean()


def legacy_loss(
    pred: Tensor,
    start_state: Tensor,
    start_true: Tensor,
    target_true: Tensor,
    w_rot: float = 0.5,
    w_mse: float = 0.5,
) -> Tensor:
    """The prior art's ``CombinedLoss_base`` (cos_way=-1, dim_norm=1), for comparison only (method.md §5.6).

    With ``d_img = start_true - target_true`` and ``d_un = start_state - pred``, both rows L2-normalised:
    ``sum_f [w_rot · max(0, cos_f(n_img, n_un)) + w_mse · mean_b (d_img - d_un)²_{b,f}]``, where ``cos_f`` is the
    cosine of feature column f *across the batch*. Known flaws, kept on purpose:

    * the cosine runs across samples per feature, so it depends on batch composition and, for B = 1, is only
      the product of signs (B2);
    * ``max(0, cos)`` (CosineEmbeddingLoss with target -1) *penalises* aligned displacements and is minimised
      by anti-aligned or orthogonal ones, opposing the MSE term (B2);
    * summing over features makes its scale grow with D.
    """
    _check_same_shape(pred=pred, start_state=start_state, start_true=start_true, target_true=target_true)
    pred, start_state, start_true, target_true = _as_float(pred, start_state, start_true, target_true)
    d_img = start_true - target_true
    d_un = start_state - pred
    n_img = d_img / torch.linalg.vector_norm(d_img, dim=-1, keepdim=True).clamp_min(_COS_EPS)
    n_un = d_un / torch.linalg.vector_norm(d_un, dim=-1, keepdim=True).clamp_min(_COS_EPS)
    cos_per_feature = safe_cosine(n_img.transpose(0, 1), n_un.transpose(0, 1))
    rot = w_rot * cos_per_feature.clamp_min(0.0)
    mse = w_mse * (d_img - d_un).pow(2).mean(0)
    return (rot + mse).sum()


def cosine_accuracy(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-sample cosine similarity between predicted and true embeddings; higher is better (B3)."""
    _check_same_shape(pred=pred, target=target)
    pred, target = _as_float(pred, target)
    return safe_cosine(pred, target).mean()


LossFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def make_loss(name: str, cos_weight: float = 1.0) -> LossFn:
    """``loss(pred, start_state, start_true, target_true) -> scalar`` for ``name`` in ("displacement", "legacy").

    ``cos_weight`` applies to the displacement loss; the legacy loss keeps the prior art's fixed 0.5/0.5 weights.
    """
    if name == "displacement":

        def loss(pred: Tensor, start_state: Tensor, start_true: Tensor, target_true: Tensor) -> Tensor:
            return displacement_loss(pred, start_state, start_true, target_true, cos_weight=cos_weight)

        return loss
    if name == "legacy":
        return legacy_loss
    raise ValueError(f"unknown loss {name!r}: use one of {LOSSES}")
