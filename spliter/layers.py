"""Building blocks of the Spliter heads: token mixing, conditioning (additive / attention), the rotation layer.

Every layer here takes tokens as (B, N, D) and is out-of-place; token counts are constructor arguments (the
model computes them from its config, B8). The token-mixing layers mix along N with weights shared by all D
channels (the token half of MLP-Mixer, method.md §3.0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from spliter.rotation import rotate_in_plane


class TokenLinear(nn.Module):
    """Linear map along the token axis, shared by all channels: (B, N_in, D) -> (B, N_out, D)."""

    def __init__(self, tokens_in: int, tokens_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(tokens_out, tokens_in))
        self.bias = nn.Parameter(torch.empty(tokens_out)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same scheme as nn.Linear (uniform, fan-in scaled).
        bound = 1.0 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        # One batched GEMM (N_out x N_in) @ (N_in x D) per example with the bias fused in: the weight is expanded
        # (a view), never copied, and x is never transposed. torch.matmul(weight, x) folds through a transposed
        # copy of x and ran 2-3x slower on CPU (docs/benchmarks.md, method core).
        batch = x.shape[0]
        weight = self.weight.expand(batch, *self.weight.shape)
        if self.bias is None:
            return torch.bmm(weight, x)
        return torch.baddbmm(self.bias[:, None].expand(batch, -1, x.shape[-1]), weight, x)


class MixerBlock(nn.Module):
    """One token-mixing block, (B, N_in, D) -> (B, N_out, D).

    ``residual=True``: pre-norm residual block, ``skip(x) + W2 drop(gelu(W1 LN(x)))`` with LayerNorm over the
    channels of each token and a linear token skip when the count changes (the skip keeps the magnitude of the
    un-normalised tokens, e.g. of the step, on the main path). ``residual=False``: plain ``drop(gelu(W x))``.
    Dropout drops whole hidden tokens per example (``nn.Dropout1d`` over the token axis): a hidden token is one
    unit shared by all channels, and drawing B x N random numbers instead of B x N x D cut the training step
    by about a third on CPU (docs/benchmarks.md, method core).
    """

    def __init__(self, dim: int, tokens_in: int, tokens_out: int, dropout: float, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.fc1 = TokenLinear(tokens_in, tokens_out)
        self.drop = nn.Dropout1d(dropout)
        if residual:
            self.norm = nn.LayerNorm(dim)
            self.fc2 = TokenLinear(tokens_out, tokens_out)
            self.skip = TokenLinear(tokens_in, tokens_out, bias=False) if tokens_in != tokens_out else None

    def forward(self, x: Tensor) -> Tensor:
        if not self.residual:
            return self.drop(F.gelu(self.fc1(x)))
        h = self.fc2(self.drop(F.gelu(self.fc1(self.norm(x)))))
        return h + (x if self.skip is None else self.skip(x))


def pyramid(width: int, depth: int) -> list[int]:
    """Token counts of a mixer's blocks: width, width/2, ..., width/2^(depth-1)."""
    return [width >> i for i in range(depth)]


class TokenMixer(nn.Module):
    """``depth`` mixer blocks along a halving pyramid of token counts: (B, N, D) -> (B, width >> (depth-1), D)."""

    def __init__(
        self, dim: int, tokens_in: int, width: int, depth: int, dropout: float, residual: bool
    ) -> None:
        super().__init__()
        counts = [tokens_in, *pyramid(width, depth)]
        self.blocks = nn.Sequential(
            *(
                MixerBlock(dim, n_in, n_out, dropout, residual)
                for n_in, n_out in zip(counts, counts[1:], strict=False)
            )
        )
        self.tokens_out = counts[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class AdditiveConditioning(nn.Module):
    """``out = x_q + W_v x_kv + b``: what single-key (softmax over one key) attention computes (method.md §3.9).

    x_q (B, N, D) queries, x_kv (B, D) the one conditioning vector, broadcast-added to every query token. The
    prior art's W_q, W_k never receive a gradient there, so they are omitted; the model builds one instance per
    use (no sharing, B9).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.value = nn.Linear(dim, dim)

    def forward(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        return x_q + self.value(x_kv).unsqueeze(1)


class CrossAttention(nn.Module):
    """Scaled multi-head attention of query tokens over context tokens, with a residual on the queries.

    ``out = q + MHA(LN(q), LN(ctx), LN(ctx))``, batch-first; queries (B, Q, D), context (B, T, D).
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention needs dim divisible by heads, got dim={dim}, heads={heads}")
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        kv = self.norm_kv(context)
        out, _ = self.attn(self.norm_q(queries), kv, kv, need_weights=False)
        return queries + out


class PlaneRotation(nn.Module):
    """Learnable rotation of tokens in the plane of (start, d) by the angle ``alpha · step``.

    ``d = W cond`` is a direction predicted from the conditioning vector (start and step tokens); ``alpha`` is a
    learned angle per unit step (radians), so the sign of the step sets the sense of rotation. Rotation is an
    isometry, so the layer moves the conditioning along a learned great circle without changing token norms.
    Applied matrix-free through :func:`spliter.rotation.rotate_in_plane`.
    """

    def __init__(self, dim: int, alpha_init: float = 0.1) -> None:
        super().__init__()
        self.direction = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def forward(self, tokens: Tensor, start: Tensor, cond: Tensor, step: Tensor) -> Tensor:
        """Rotate tokens (B, N, D) in the plane of start (B, D) and W·cond (B, D) by alpha·step (B,)."""
        return rotate_in_plane(tokens, start, self.direction(cond), self.alpha * step, check=False)
