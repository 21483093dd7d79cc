"""Plane rotations: direction, orthogonality, conventions, blend, degenerate pairs, matrix-free == dense."""

import math

import pytest
import torch
from torch.nn.functional import cosine_similarity

from spliter.rotation import plane_between, rotate, rotate_in_plane, rotation_matrix


def _pair(
    b: int = 4, d: int = 32, dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=dtype), torch.randn(b, d, generator=g, dtype=dtype)


def _dense_apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """M x for x (B, D) or (B, T, D) with the dense (B, D, D) operator."""
    return (m @ x.unsqueeze(-1)).squeeze(-1) if x.ndim == 2 else x @ m.transpose(1, 2)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_column_rotation_maps_from_direction_onto_to_direction():
    v_from, v_to = _pair()
    rotated = rotate(v_from, v_from, v_to)
    assert torch.allclose(cosine_similarity(rotated, v_to), torch.ones(4), atol=1e-6)
    assert torch.allclose(rotated.norm(dim=-1), v_from.norm(dim=-1), rtol=1e-5)


def test_dense_matrix_is_orthogonal_with_unit_determinant():
    v_from, v_to = _pair(d=16)
    m = rotation_matrix(v_from, v_to)
    eye = torch.eye(16).expand(4, 16, 16)
    assert torch.allclose(m @ m.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(m.double()), torch.ones(4, dtype=torch.float64), atol=1e-5)


def test_matrix_free_rotation_preserves_norms_and_pairwise_angles():
    v_from, v_to = _pair()
    x = torch.randn(4, 9, 32)
    rotated = rotate(x, v_from, v_to)
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), rtol=1e-5)
    assert torch.allclose(rotated @ rotated.transpose(1, 2), x @ x.transpose(1, 2), atol=1e-4)


def test_identity_on_the_orthogonal_complement_of_the_plane():
    v_from, v_to = _pair()
    x = torch.randn(4, 32)
    plane = plane_between(v_from, v_to)
    x_perp = (
        x - (x * plane.n1).sum(-1, keepdim=True) * plane.n1 - (x * plane.n2).sum(-1, keepdim=True) * plane.n2
    )
    assert torch.allclose(rotate(x_perp, v_from, v_to), x_perp, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 24), (3, 7, 24)])
@pytest.mark.parametrize("convention", ["column", "legacy_row"])
def test_matrix_free_equals_dense_reference(shape, convention):
    v_from, v_to = _pair(b=shape[0], d=24)
    x = torch.randn(shape)
    dense = _dense_apply(rotation_matrix(v_from, v_to, convention=convention), x)
    assert _relative_error(rotate(x, v_from, v_to, convention=convention), dense) < 1e-5


def test_legacy_row_is_the_inverse_rotation_and_matches_prior_art_x_at_r():
    v_from, v_to = _pair()
    x = torch.randn(4, 6, 32)
    r = rotation_matrix(v_from, v_to)
    legacy = rotate(x, v_from, v_to, convention="legacy_row")
    assert torch.allclose(legacy, x @ r, atol=1e-5)  # the prior art's row-vector product (method.md §4.2)
    assert torch.allclose(rotate(legacy, v_from, v_to), x, atol=1e-5)
    # It turns v_from away from v_to: the angle to v_to grows to twice the original (when that is < π).
    angle = torch.arccos(cosine_similarity(v_from, v_to))
    away = torch.arccos(
        cosine_similarity(rotate(v_from, v_from, v_to, convention="legacy_row"), v_to).clamp(-1, 1)
    )
    assert torch.allclose(away, torch.minimum(2 * angle, 2 * math.pi - 2 * angle), atol=1e-4)


@pytest.mark.parametrize("weight, power", [(0.3, 1.0), (0.5, 2.0), (-0.4, 1.0), (1.7, 1.0)])
def test_blend_formula(weight, power):
    v_from, v_to = _pair()
    x = torch.randn(4, 5, 32)
    full = rotate(x, v_from, v_to)
    c = weight**power
    assert torch.allclose(
        rotate(x, v_from, v_to, weight=weight, power=power), (1 - c) * x + c * full, atol=1e-5
    )


def test_power_zero_is_the_full_rotation_even_for_zero_weight():
    v_from, v_to = _pair()
    x = torch.randn(4, 32)
    assert torch.allclose(rotate(x, v_from, v_to, weight=0.0, power=0.0), rotate(x, v_from, v_to), atol=1e-6)
    assert torch.allclose(rotate(x, v_from, v_to, weight=0.0, power=1.0), x)


def test_tensor_weight_applies_per_row():
    v_from, v_to = _pair()
    x = torch.randn(4, 3, 32)
    weights = torch.tensor([0.0, 0.25, 1.0, -0.5])
    out = rotate(x, v_from, v_to, weight=weights)
    for i, w in enumerate(weights.tolist()):
        row = rotate(x[i : i + 1], v_from[i : i + 1], v_to[i : i + 1], weight=w)
        assert torch.allclose(out[i], row[0], atol=1e-6)


def test_undefined_blend_weight_raises():
    v_from, v_to = _pair()
    with pytest.raises(ValueError, match="integer power"):
        rotate(v_from, v_from, v_to, weight=-0.5, power=0.5)
    with pytest.raises(ValueError, match="weight must be"):
        rotate(v_from, v_from, v_to, weight=torch.ones(3))


def test_parallel_vectors_give_the_identity():
    v_from, _ = _pair()
    x = torch.randn(4, 7, 32)
    assert torch.equal(rotate(x, v_from, 2.5 * v_from), x)
    assert torch.equal(rotation_matrix(v_from, v_from), torch.eye(32).expand(4, 32, 32))


def test_anti_parallel_vectors_turn_by_pi_about_the_documented_axis():
    v_from = torch.tensor([[3.0, -1.0, 0.1, 2.0], [0.0, 1.0, 1.0, 1.0]])
    plane = plane_between(v_from, -v_from)
    assert torch.allclose(plane.angle, torch.full((2,), math.pi))
    # Axis: e_k with k = argmin |n1_k| (index 2 and index 0), orthogonalised against n1.
    n1 = v_from / v_from.norm(dim=-1, keepdim=True)
    for row, k in ((0, 2), (1, 0)):
        expected = torch.eye(4)[k] - n1[row, k] * n1[row]
        assert torch.allclose(plane.n2[row], expected / expected.norm(), atol=1e-6)
    rotated = rotate(v_from, v_from, -v_from)
    assert torch.allclose(rotated, -v_from, atol=1e-5)
    m = rotation_matrix(v_from, -v_from)
    assert torch.allclose(m @ m.transpose(1, 2), torch.eye(4).expand(2, 4, 4), atol=1e-6)


def test_nearly_parallel_vectors_stay_accurate_in_float32():
    v_from, noise = _pair(d=1280)
    v_to = v_from + 1e-4 * noise  # angle ~1e-4 rad, where arccos of the cosine loses all precision in fp32
    rotated = rotate(v_from, v_from, v_to)
    exact = rotate(v_from.double(), v_from.double(), v_to.double())
    assert _relative_error(rotated.double(), exact) < 1e-6
    assert torch.allclose(
        plane_between(v_from, v_to).angle.double(),
        plane_between(v_from.double(), v_to.double()).angle,
        rtol=1e-3,
    )


def test_float64_inputs_are_rotated_in_float64():
    v_from, v_to = _pair(d=64, dtype=torch.float64)
    x = torch.randn(4, 3, 64, dtype=torch.float64)
    out = rotate(x, v_from, v_to)
    assert out.dtype == torch.float64
    assert _relative_error(out, _dense_apply(rotation_matrix(v_from, v_to), x)) < 1e-13
    assert torch.allclose(
        cosine_similarity(rotate(v_from, v_from, v_to), v_to), torch.ones(4, dtype=torch.float64), atol=1e-14
    )


def test_zero_vectors_raise():
    v_from, v_to = _pair()
    v_from[2] = 0.0
    with pytest.raises(ValueError, match=r"zero-norm or non-finite rows \[2\]"):
        rotate(v_to, v_from, v_to)
    with pytest.raises(ValueError, match="zero-norm"):
        rotation_matrix(v_to, torch.zeros_like(v_to))


def test_unknown_convention_and_bad_shapes_raise():
    v_from, v_to = _pair()
    with pytest.raises(ValueError, match="convention"):
        rotate(v_from, v_from, v_to, convention="row")
    with pytest.raises(ValueError, match=r"\(B, D\) or \(B, T, D\)"):
        rotate(torch.randn(3, 32), v_from, v_to)


def test_rotate_in_plane_by_the_pair_angle_equals_rotate():
    v_from, v_to = _pair()
    x = torch.randn(4, 5, 32)
    angle = plane_between(v_from, v_to).angle
    assert torch.allclose(rotate_in_plane(x, v_from, v_to, angle), rotate(x, v_from, v_to), atol=1e-6)
    # Angles compose additively in a fixed plane, and a negative angle undoes a positive one.
    half = rotate_in_plane(rotate_in_plane(x, v_from, v_to, angle / 2), v_from, v_to, angle / 2)
    assert torch.allclose(half, rotate(x, v_from, v_to), atol=1e-5)
    assert torch.allclose(
        rotate_in_plane(rotate_in_plane(x, v_from, v_to, 0.7), v_from, v_to, -0.7), x, atol=1e-5
    )


def test_rotate_in_plane_gradients_are_finite_for_degenerate_planes():
    start = torch.randn(3, 8)
    direction = torch.stack((start[0] * 2.0, -start[1], torch.randn(8))).requires_grad_(True)
    angle = torch.tensor([0.3, 0.2, 0.1], requires_grad=True)
    x = torch.randn(3, 4, 8)
    rotate_in_plane(x, start, direction, angle, check=False).pow(2).sum().backward()
    assert torch.isfinite(direction.grad).all() and torch.isfinite(angle.grad).all()
    assert direction.grad[2].abs().sum() > 0
