"""Layers: token mixing along the token axis, additive conditioning == single-key attention, real attention,
the learnable plane rotation."""

import pytest
import torch
from torch import nn
from torch.nn.functional import cosine_similarity

from spliter.layers import (
    AdditiveConditioning,
    CrossAttention,
    MixerBlock,
    PlaneRotation,
    TokenLinear,
    TokenMixer,
    pyramid,
)


def test_token_linear_mixes_tokens_with_weights_shared_across_channels():
    layer = TokenLinear(5, 3)
    x = torch.randn(2, 5, 7)
    reference = nn.functional.linear(x.transpose(1, 2), layer.weight, layer.bias).transpose(1, 2)
    assert torch.allclose(layer(x), reference, atol=1e-6)
    # Each channel is mixed on its own: changing channel 0 leaves the other channels' outputs unchanged.
    x2 = x.clone()
    x2[:, :, 0] += 1.0
    assert torch.equal(layer(x2)[:, :, 1:], layer(x)[:, :, 1:])


@pytest.mark.parametrize("residual", [True, False])
def test_mixer_block_shapes_and_skip(residual):
    block = MixerBlock(dim=8, tokens_in=6, tokens_out=4, dropout=0.0, residual=residual)
    assert block(torch.randn(3, 6, 8)).shape == (3, 4, 8)
    same = MixerBlock(dim=8, tokens_in=4, tokens_out=4, dropout=0.0, residual=True)
    assert same.skip is None
    with torch.no_grad():
        same.fc2.weight.zero_()
        same.fc2.bias.zero_()
    x = torch.randn(3, 4, 8)
    assert torch.equal(same(x), x)  # a residual block with a silent branch is the identity


def test_token_mixer_follows_the_halving_pyramid():
    assert pyramid(256, 4) == [256, 128, 64, 32]
    mixer = TokenMixer(dim=8, tokens_in=11, width=16, depth=3, dropout=0.0, residual=True)
    assert mixer.tokens_out == 4
    assert mixer(torch.randn(2, 11, 8)).shape == (2, 4, 8)


def test_additive_conditioning_equals_single_key_softmax_attention():
    torch.manual_seed(1)
    dim = 12
    additive = AdditiveConditioning(dim)
    queries, cond = torch.randn(3, 5, dim), torch.randn(3, dim)
    # The prior art's CrossAttentionLayer with one key/value token (method.md §3.0) and the same W_v.
    w_q, w_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
    q = w_q(queries)
    k = w_k(cond)[:, None]
    v = additive.value(cond)[:, None]
    weights = torch.softmax(q @ k.transpose(1, 2), dim=-1)
    attention = weights @ v + queries
    assert torch.allclose(additive(queries, cond), attention, atol=1e-6)


def test_cross_attention_attends_over_the_context_tokens():
    torch.manual_seed(2)
    layer = CrossAttention(dim=16, heads=4, dropout=0.0).eval()
    queries, context = torch.randn(2, 2, 16), torch.randn(2, 6, 16)
    out = layer(queries, context)
    assert out.shape == queries.shape
    changed = context.clone()
    changed[:, 3] = torch.randn(2, 16)
    assert not torch.allclose(layer(queries, changed), out, atol=1e-4)
    # Permuting the context tokens does not matter (attention is a set operation over keys).
    assert torch.allclose(layer(queries, context.flip(1)), out, atol=1e-5)


def test_cross_attention_requires_divisible_heads():
    with pytest.raises(ValueError, match="divisible"):
        CrossAttention(dim=10, heads=4, dropout=0.0)


def test_plane_rotation_is_an_isometry_turning_start_towards_the_predicted_direction():
    torch.manual_seed(3)
    layer = PlaneRotation(dim=8, alpha_init=0.2)
    start, cond = torch.randn(4, 8), torch.randn(4, 8)
    tokens = torch.cat((torch.randn(4, 5, 8), start[:, None]), 1)
    step = torch.tensor([1.0, 2.0, -1.0, 0.0])
    out = layer(tokens, start, cond, step)
    assert torch.allclose(out.norm(dim=-1), tokens.norm(dim=-1), rtol=1e-5)
    assert torch.equal(out[3], tokens[3])  # zero step: no rotation
    # The start token turns by alpha * |step| (cosine to itself) and towards d for positive steps.
    turned = cosine_similarity(out[:, -1], start)
    assert torch.allclose(turned[:3], torch.cos(0.2 * step[:3].abs()), atol=1e-5)
    d = layer.direction(cond)
    gain = cosine_similarity(out[:, -1], d) - cosine_similarity(start, d)
    assert (gain[:2] > 0).all() and gain[2] < 0


def test_plane_rotation_learns_its_angle_and_direction():
    layer = PlaneRotation(dim=8)
    tokens = torch.randn(2, 3, 8)
    out = layer(tokens, torch.randn(2, 8), torch.randn(2, 8), torch.tensor([0.5, -1.5]))
    (out * torch.randn_like(out)).sum().backward()
    assert layer.alpha.grad is not None and layer.alpha.grad != 0
    assert layer.direction.weight.grad.abs().sum() > 0
