"""Plane rotations between embedding directions, applied matrix-free (method.md §4; fixes B4 and B23).

The rotation that takes the direction of ``a`` to the direction of ``b`` turns by their angle ``t`` in the
plane span{a, b} and is the identity on the orthogonal complement (method.md §4.1):

    R = I + sin t (n2 n1ᵀ - n1 n2ᵀ) + (cos t - 1)(n1 n1ᵀ + n2 n2ᵀ),

with ``n1 = a/|a|`` and ``n2`` the unit Gram-Schmidt component of ``b`` orthogonal to ``n1``. Written as
``R = I + N K Nᵀ`` with ``N = [n1 n2]`` (D x 2) and the 2 x 2 block ``K = [[cos t - 1, -sin t], [sin t, cos t - 1]]``,
applying it needs only the two projections ``Nᵀ x``: O(D) per vector and O(B·D) extra memory, never the
(B, D, D) matrix (B23).

Conventions (method.md §4.2, B4):
  * ``"column"``: ``R`` acts on column vectors, so ``R n1 = b̂``; the rotation goes *towards* ``b``.
  * ``"legacy_row"``: the prior art's ``x @ R`` on row vectors, which is ``Rᵀ x = R(-t) x``: it turns *away*
    from ``b`` (by the same angle). Kept only as an ablation switch.

Degenerate planes:
  * parallel ``a``, ``b``: the identity (angle 0);
  * anti-parallel: angle π in the plane of ``n1`` and a fixed axis: the standard basis vector ``e_k`` with
    ``k = argmin_k |n1_k|`` (lowest index on ties), Gram-Schmidt-orthogonalised against ``n1``. Since
    ``|n1_k| <= 1/sqrt(D)``, that axis is never parallel to ``n1`` when D >= 2.
A pair counts as degenerate when the component of ``b`` orthogonal to ``a`` is below ``64 eps |b|``; the
angle comes from ``atan2(|w|, n1·b)``, which stays accurate near 0 and π where ``arccos`` does not.

Blend (method.md §4.3): ``out = (1 - c^p) x + c^p R x`` with weight ``c`` and power ``p``. ``p = 0`` is the full
rotation (``c^0 = 1``, also for ``c = 0``); ``c`` outside [0, 1] extrapolates (negative ``c`` moves against the
rotation, ``c > 1`` beyond it), and the result is then a linear blend, not a rotation: norms are not preserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Convention = Literal["column", "legacy_row"]
CONVENTIONS: tuple[str, ...] = ("column", "legacy_row")

# Relative size (in units of the dtype's eps) below which b's component orthogonal to a is rounding noise.
_DEGENERATE_EPS_FACTOR = 64.0


@dataclass(frozen=True)
class Plane:
    """An oriented rotation plane per batch row: orthonormal ``n1``, ``n2`` (B, D) and the angle (B,) from a to b."""

    n1: Tensor
    n2: Tensor
    angle: Tensor

    @property
    def basis(self) -> Tensor:
        """``N = [n1 n2]`` as a (B, D, 2) tensor."""
        return torch.stack((self.n1, self.n2), dim=-1)


def _working_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown rotation convention {convention!r}: use one of {CONVENTIONS}")


def _check_vectors(name: str, v: Tensor) -> None:
    if v.ndim != 2:
        raise ValueError(f"{name} must have shape (B, D), got {tuple(v.shape)}")
    if v.shape[-1] < 2:
        raise ValueError(f"{name} has D={v.shape[-1]}: a plane rotation needs D >= 2")
    norms = torch.linalg.vector_norm(v, dim=-1)
    bad = ~torch.isfinite(norms) | (norms == 0)
    if bool(bad.any()):
        rows = bad.nonzero().flatten().tolist()[:8]
        raise ValueError(
            f"{name} has zero-norm or non-finite rows {rows}: a rotation needs a direction per row"
        )


def _fallback_axis(n1: Tensor) -> Tensor:
    """Unit vector orthogonal to ``n1``: e_k with k = argmin |n1_k|, Gram-Schmidt against n1."""
    k = n1.abs().argmin(dim=-1, keepdim=True)
    axis = torch.zeros_like(n1).scatter(-1, k, 1.0)
    axis = axis - n1.gather(-1, k) * n1
    return axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)


def plane_between(a: Tensor, b: Tensor, check: bool = True) -> Plane:
    """The oriented plane from ``a`` towards ``b`` (both (B, D)) and the angle between them, in [0, π].

    ``check=False`` skips the zero/non-finite row check (a host synchronisation), for use inside layers; a zero
    ``b`` then gives the identity.
    """
    if check:
        _check_vectors("a (v_from)", a)
        _check_vectors("b (v_to)", b)
    if a.shape != b.shape:
        raise ValueError(
            f"v_from and v_to must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    dtype = _working_dtype(a, b)
    a, b = a.to(dtype), b.to(dtype)
    a_norm = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    n1 = a / torch.where(a_norm > 0, a_norm, torch.ones_like(a_norm))
    dot = (n1 * b).sum(-1, keepdim=True)
    w = b - dot * n1
    # A second Gram-Schmidt pass keeps n2 orthogonal to n1 to working precision when b is nearly parallel to a.
    w = w - (n1 * w).sum(-1, keepdim=True) * n1
    w_norm = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    b_norm = torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    degenerate = w_norm <= _DEGENERATE_EPS_FACTOR * torch.finfo(dtype).eps * b_norm
    # Dividing by 1 on degenerate rows keeps the unused branch (and its gradient) finite.
    n2 = torch.where(
        degenerate, _fallback_axis(n1), w / torch.where(degenerate, torch.ones_like(w_norm), w_norm)
    )
    snapped = torch.where(dot < 0, torch.full_like(dot, math.pi), torch.zeros_like(dot))
    angle = torch.where(degenerate, snapped, torch.atan2(w_norm, dot))
    return Plane(n1=n1, n2=n2, angle=angle.squeeze(-1))


def _block(angle: Tensor, convention: str) -> Tensor:
    """The 2 x 2 block K (B, 2, 2) of ``R - I = N K Nᵀ`` in the plane basis, for the given convention."""
    cos_m1 = torch.cos(angle) - 1.0
    sin = torch.sin(angle) if convention == "column" else -torch.sin(angle)
    return torch.stack((torch.stack((cos_m1, -sin), -1), torch.stack((sin, cos_m1), -1)), -2)


def _blend_scale(weight: float | Tensor, power: float, batch: int, like: Tensor) -> Tensor:
    """``c^p`` as a (B,) tensor; rejects weights that make it undefined (e.g. negative c, fractional p)."""
    c = torch.as_tensor(weight, dtype=like.dtype, device=like.device)
    if c.ndim == 0:
        c = c.expand(batch)
    if c.shape != (batch,):
        raise ValueError(f"weight must be a float or a (B,)=({batch},) tensor, got shape {tuple(c.shape)}")
    scale = c**power
    if not bool(torch.isfinite(scale).all()):
        raise ValueError(
            f"weight**power is not finite for power={power}: negative weights need an integer power"
        )
    return scale


def _apply(x: Tensor, plane: Plane, block: Tensor, scale: Tensor | None) -> Tensor:
    """``x + scale · N K Nᵀ x`` for x (B, D) or (B, T, D), as two small batched matmuls (O(B·T·D))."""
    squeeze = x.ndim == 2
    xs = x.unsqueeze(1) if squeeze else x
    if xs.ndim != 3 or xs.shape[0] != plane.n1.shape[0] or xs.shape[-1] != plane.n1.shape[-1]:
        raise ValueError(
            f"x must have shape (B, D) or (B, T, D) matching the vectors' (B, D)={tuple(plane.n1.shape)}, "
            f"got {tuple(x.shape)}"
        )
    out_dtype = x.dtype
    xs = xs.to(plane.n1.dtype)
    if scale is not None:
        block = block * scale.to(block.dtype)[:, None, None]
    basis = plane.basis  # (B, D, 2)
    coeff = torch.bmm(torch.bmm(xs, basis), block.transpose(1, 2))  # (B, T, 2): row form of K Nᵀ x
    out = torch.baddbmm(xs, coeff, basis.transpose(1, 2))
    out = out.to(out_dtype)
    return out.squeeze(1) if squeeze else out


def rotate(
    x: Tensor,
    v_from: Tensor,
    v_to: Tensor,
    weight: float | Tensor = 1.0,
    power: float = 1.0,
    convention: Convention = "column",
) -> Tensor:
    """Blend of x with the rotation taking v_from's direction to v_to's: ``(1 - c^p) x + c^p R x``.

    x is (B, D) or (B, T, D); v_from, v_to are (B, D); weight c is a float or a (B,) tensor. Matrix-free,
    O(B·T·D). The result has x's dtype; the work is done in at least float32.
    """
    _check_convention(convention)
    plane = plane_between(v_from, v_to)
    scale = _blend_scale(weight, power, plane.n1.shape[0], plane.n1)
    return _apply(x, plane, _block(plane.angle, convention), scale)


def rotate_in_plane(
    x: Tensor,
    a: Tensor,
    b: Tensor,
    angle: Tensor,
    convention: Convention = "column",
    check: bool = True,
) -> Tensor:
    """Rotate x ((B, D) or (B, T, D)) by a given angle (B,) in the plane of a and b (B, D), from a towards b.

    Used by the learnable rotation layer; ``check=False`` skips the host-synchronising zero-row check.
    """
    _check_convention(convention)
    plane = plane_between(a, b, check=check)
    angle = torch.as_tensor(angle, dtype=plane.n1.dtype, device=plane.n1.device)
    angle = angle.expand(plane.n1.shape[0]) if angle.ndim == 0 else angle
    if angle.shape != plane.angle.shape:
        raise ValueError(
            f"angle must be a scalar or a (B,)={tuple(plane.angle.shape)} tensor, got {tuple(angle.shape)}"
        )
    return _apply(x, plane, _block(angle, convention), None)


def rotation_matrix(v_from: Tensor, v_to: Tensor, convention: Convention = "column") -> Tensor:
    """Dense (B, D, D) reference operator M with ``rotate(x, v_from, v_to, convention=...) == M @ x``.

    For ``"column"`` this is R of method.md §4.1; for ``"legacy_row"`` it is Rᵀ, i.e. what the prior art's
    ``x @ R`` applies. O(B·D²) memory: for tests and benchmarks only.
    """
    _check_convention(convention)
    plane = plane_between(v_from, v_to)
    basis = plane.basis
    eye = torch.eye(basis.shape[1], dtype=basis.dtype, device=basis.device)
    return eye + basis @ _block(plane.angle, convention) @ basis.transpose(1, 2)
