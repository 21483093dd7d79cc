"""InceptionI3d: the public state-dict layout, TF "SAME" padding, the head, and the two export formats."""

import math

import pytest
import torch
import torch.nn.functional as F

from metrics.i3d import (
    INCEPTION_BLOCKS,
    InceptionI3d,
    StyleGANVDetector,
    public_state_dict,
    random_i3d,
    save_state_dict,
    save_styleganv_torchscript,
    tf_same_pad,
)

# Keys and shapes as they appear in the public i3d_pretrained_400.pt (VideoGPT/TATS, piergiaj layout).
PUBLIC_KEYS = {
    "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
    "Conv3d_1a_7x7.bn.weight": (64,),
    "Conv3d_1a_7x7.bn.bias": (64,),
    "Conv3d_1a_7x7.bn.running_mean": (64,),
    "Conv3d_1a_7x7.bn.running_var": (64,),
    "Conv3d_2b_1x1.conv3d.weight": (64, 64, 1, 1, 1),
    "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
    "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
    "Mixed_3b.b1b.conv3d.weight": (128, 96, 3, 3, 3),
    "Mixed_4b.b2a.conv3d.weight": (16, 480, 1, 1, 1),
    "Mixed_4f.b3b.bn.running_var": (128,),
    "Mixed_5b.b2b.conv3d.weight": (128, 32, 3, 3, 3),
    "Mixed_5c.b3b.conv3d.weight": (128, 832, 1, 1, 1),
    "logits.conv3d.weight": (400, 1024, 1, 1, 1),
    "logits.conv3d.bias": (400,),
}
ENDPOINTS = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3", *(name for name, _, _ in INCEPTION_BLOCKS), "logits")


def small_video(seed: int, batch: int = 1, frames: int = 8, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def model() -> InceptionI3d:
    return random_i3d(seed=3)


def test_state_dict_has_the_public_names_and_shapes(model):
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in PUBLIC_KEYS.items():
        assert shapes.get(key) == shape, key
    public = public_state_dict(model)
    assert not [k for k in public if k.endswith("num_batches_tracked")]
    assert {k.split(".")[0] for k in public} == set(ENDPOINTS)
    # conv weights + BN (weight, bias, mean, var) per unit: 3 stem + 9 blocks x 6 units, plus logits w/b
    assert len(public) == (3 + 9 * 6) * 5 + 2


def test_parameter_count_follows_the_inception_table(model):
    def unit(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k**3 + 2 * c_out  # bias-free conv + BN affine

    expected = unit(3, 64, 7) + unit(64, 64, 1) + unit(64, 192, 3)
    for _, c_in, (w0, w1a, w1b, w2a, w2b, w3b) in INCEPTION_BLOCKS:
        expected += unit(c_in, w0, 1) + unit(c_in, w1a, 1) + unit(w1a, w1b, 3)
        expected += unit(c_in, w2a, 1) + unit(w2a, w2b, 3) + unit(c_in, w3b, 1)
        assert c_in in (192, 256, 480, 512, 528, 832)
    expected += 1024 * 400 + 400
    assert sum(p.numel() for p in model.parameters()) == expected
    assert 12.6e6 < expected < 12.8e6


def test_block_inputs_chain():
    widths = {name: w for name, _, w in INCEPTION_BLOCKS}
    inputs = [c_in for _, c_in, _ in INCEPTION_BLOCKS]
    outputs = [w[0] + w[2] + w[4] + w[5] for w in widths.values()]
    assert inputs[1:] == outputs[:-1] and outputs[-1] == 1024


def test_tf_same_padding_puts_the_extra_row_at_the_end():
    x = torch.ones(1, 1, 3, 3, 3)
    padded = tf_same_pad(x, [2, 2, 2], [2, 2, 2])
    assert padded.shape == (1, 1, 4, 4, 4)
    assert padded[0, 0, :3, :3, :3].eq(1).all() and padded[0, 0, 3].eq(0).all()
    even = tf_same_pad(torch.ones(1, 1, 1, 16, 16), [1, 7, 7], [1, 2, 2])
    assert even.shape[-2:] == (21, 21)  # 5 extra rows: 2 before, 3 after
    assert even[0, 0, 0, 1, 5] == 0 and even[0, 0, 0, 2, 5] == 1 and even[0, 0, 0, 17, 5] == 1
    assert even[0, 0, 0, 18, 5] == 0


@pytest.mark.parametrize("shape, maps", [((16, 224), (2, 7, 7)), ((32, 224), (4, 7, 7)), ((10, 100), (2, 4, 4))])
def test_feature_map_sizes_are_ceil_divisions(shape, maps):
    frames, size = shape
    with torch.device("meta"):
        out = InceptionI3d().feature_maps(torch.empty(1, 3, frames, size, size))
        assert tuple(out.shape) == (1, 1024, *maps)
    assert maps == (math.ceil(frames / 8), math.ceil(size / 32), math.ceil(size / 32))


@pytest.mark.parametrize("time", [2, 4])
def test_head_matches_the_reference_pooling_at_224(model, time):
    maps = torch.randn(2, 1024, time, 7, 7)
    conv = model.logits.conv3d
    reference = F.conv3d(F.avg_pool3d(maps, [2, 7, 7], stride=1), conv.weight, conv.bias)
    reference = reference.squeeze(3).squeeze(3).mean(dim=2)  # (B, 400, T'-1) -> time mean
    with torch.no_grad():
        assert torch.allclose(model.head(maps), reference, atol=1e-5)


def test_forward_gives_finite_input_dependent_logits(model):
    with torch.no_grad():
        a, b = model(small_video(0)), model(small_video(1))
        again = model(small_video(0))
    assert a.shape == (1, 400) and torch.isfinite(a).all()
    assert 0.1 < a.std() < 100  # random_i3d keeps activations O(1)
    assert torch.equal(a, again)
    assert (a - b).abs().max() > 1e-3


def test_random_i3d_is_seeded(model):
    again, other = random_i3d(3).state_dict(), random_i3d(4).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(again[key], value), key
    w = "Mixed_4c.b1b.conv3d.weight"
    assert not torch.equal(other[w], again[w])
    assert not model.training and torch.isfinite(again[w]).all()


def test_public_state_dict_loads_strictly_and_reproduces_outputs(model, tmp_path):
    path = save_state_dict(model, tmp_path / "i3d_pretrained_400.pt")
    state = torch.load(path, weights_only=True)
    assert "Conv3d_1a_7x7.bn.num_batches_tracked" not in state
    loaded = InceptionI3d()
    loaded.load_state_dict(state, strict=True)
    x = small_video(2)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))


def test_styleganv_torchscript_signature(model, tmp_path):
    path = save_styleganv_torchscript(model, tmp_path / "i3d_torchscript.pt", size=32)
    scripted = torch.jit.load(str(path), map_location="cpu")
    x = small_video(4)
    with torch.no_grad():
        expected = model(x)
        features = scripted(x, rescale=False, resize=False, return_features=True)
        assert torch.allclose(features, expected, atol=1e-5)
        from_uint8 = scripted((x + 1) * 127.5, rescale=True, resize=False, return_features=True)
        assert torch.allclose(from_uint8, expected, atol=1e-4)
        probs = scripted(x, rescale=False, resize=False, return_features=False)
        assert torch.allclose(probs.sum(dim=1), torch.ones(1), atol=1e-5)
        assert torch.allclose(probs, torch.softmax(expected, dim=1), atol=1e-6)
        resized = scripted(small_video(4, size=24), rescale=False, resize=True, return_features=True)
        assert resized.shape == (1, 400) and not torch.allclose(resized, expected, atol=1e-3)


def test_detector_wrapper_keeps_the_model_unchanged(model):
    detector = StyleGANVDetector(model)
    assert detector.model is model and detector.size == 224


# ------------------------------------------------------- an independent functional reference (conformance)
# Written from the public architecture (Carreira & Zisserman 2017, Fig. 3; the piergiaj/VideoGPT module
# names), not from metrics.i3d: a plain function over a state dict. Branch widths per Inception block:
# (b0 1x1, b1a 1x1, b1b 3x3, b2a 1x1, b2b 3x3, b3b 1x1 after a 3x3x3 max pool).
REFERENCE_BLOCKS = [
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)), ("Mixed_3c", (128, 128, 192, 32, 96, 64)), "pool_4a",
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)), ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)), ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)), "pool_5a",
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)), ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


def same_pad(x, kernel, stride):
    # TF "SAME": total padding max(k - s, 0) when the size divides by s, else max(k - size % s, 0); the odd
    # unit goes after.
    pads = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def reference_unit(state, name, x, kernel=(1, 1, 1), stride=(1, 1, 1), bn=True, relu=True):
    w = state[f"{name}.conv3d.weight"]
    assert tuple(w.shape[2:]) == kernel
    x = F.conv3d(same_pad(x, kernel, stride), w, state.get(f"{name}.conv3d.bias"), stride)
    if bn:
        x = F.batch_norm(x, state[f"{name}.bn.running_mean"], state[f"{name}.bn.running_var"],
                         state[f"{name}.bn.weight"], state[f"{name}.bn.bias"], training=False, eps=1e-5)
    return F.relu(x) if relu else x


def reference_pool(x, kernel, stride):
    return F.max_pool3d(same_pad(x, kernel, stride), kernel, stride)


def reference_block(state, name, x):
    def unit(branch, y, k=(1, 1, 1)):
        return reference_unit(state, f"{name}.{branch}", y, k)

    return torch.cat([unit("b0", x), unit("b1b", unit("b1a", x), (3, 3, 3)), unit("b2b", unit("b2a", x), (3, 3, 3)),
                      unit("b3b", reference_pool(x, (3, 3, 3), (1, 1, 1)))], dim=1)


def reference_i3d(state, x):
    x = reference_unit(state, "Conv3d_1a_7x7", x, (7, 7, 7), (2, 2, 2))
    x = reference_pool(x, (1, 3, 3), (1, 2, 2))
    x = reference_unit(state, "Conv3d_2c_3x3", reference_unit(state, "Conv3d_2b_1x1", x), (3, 3, 3))
    x = reference_pool(x, (1, 3, 3), (1, 2, 2))
    for block in REFERENCE_BLOCKS:
        if block == "pool_4a":
            x = reference_pool(x, (3, 3, 3), (2, 2, 2))
        elif block == "pool_5a":
            x = reference_pool(x, (2, 2, 2), (2, 2, 2))
        else:
            x = reference_block(state, block[0], x)
    x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # the (2, 7, 7) map of 16 frames at 224 px -> one position
    logits = reference_unit(state, "logits", x, bn=False, relu=False)
    return logits.squeeze(4).squeeze(3).mean(2)


def reference_parameter_names():
    units = ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]
    units += [f"{b[0]}.{branch}" for b in REFERENCE_BLOCKS if b not in ("pool_4a", "pool_5a")
              for branch in ("b0", "b1a", "b1b", "b2a", "b2b", "b3b")]
    bn = ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")
    return {f"{u}.conv3d.weight" for u in units} | {f"{u}.{p}" for u in units for p in bn} | {
        "logits.conv3d.weight", "logits.conv3d.bias"}


def test_names_and_logits_equal_an_independent_reference_with_the_same_weights(model):
    state = model.state_dict()
    names = reference_parameter_names()
    assert set(state) == names and len(names) == 344
    clip = small_video(9, frames=16, size=224)
    with torch.no_grad():
        expected = reference_i3d(state, clip)
        got = model(clip)
    assert got.shape == expected.shape == (1, 400)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))
