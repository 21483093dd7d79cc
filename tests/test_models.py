"""Spliter models: every head x rotation_layer x cross_attention builds, learns, round-trips; config checks."""

import itertools
from dataclasses import replace

import pytest
import torch
from torch import nn

from spliter.models import (
    CROSS_ATTENTION,
    HEADS,
    ROTATION_LAYERS,
    CheckpointError,
    Spliter,
    SpliterConfig,
    load_spliter,
    read_checkpoint,
    save_spliter,
)

VARIANTS = list(itertools.product(HEADS, ROTATION_LAYERS, CROSS_ATTENTION))
TINY = dict(dim=16, text_tokens=5, width=8, depth=2, heads=4)


def _tiny(head="increment", rotation_layer="off", cross_attention="off", **overrides) -> SpliterConfig:
    return SpliterConfig(
        head=head, rotation_layer=rotation_layer, cross_attention=cross_attention, **{**TINY, **overrides}
    )


def _inputs(config: SpliterConfig, batch: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, config.text_tokens, config.dim, generator=g)
    start = torch.randn(batch, config.dim, generator=g)
    step = torch.linspace(-1.0, 1.5, batch)
    return text, start, step


def _nontrivial(model: Spliter) -> Spliter:
    """Give the zero-initialised output projection weights, as a few training steps would."""
    with torch.no_grad():
        nn.init.normal_(model.out_proj.weight, std=0.2)
        nn.init.normal_(model.out_proj.bias, std=0.2)
    return model


def _check_forward_backward(config: SpliterConfig, batch: int) -> None:
    model = _nontrivial(Spliter(config)).train()
    text, start, step = _inputs(config, batch)
    copies = [t.clone() for t in (text, start, step)]
    out = model(text, start, step)
    assert out.shape == (batch, config.dim)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} receives no gradient"
    for before, after in zip(copies, (text, start, step), strict=True):
        assert torch.equal(before, after)  # inputs untouched (B8)


@pytest.mark.parametrize("head, rotation_layer, cross_attention", VARIANTS)
def test_tiny_variant_forward_backward(head, rotation_layer, cross_attention):
    _check_forward_backward(_tiny(head, rotation_layer, cross_attention), batch=3)


@pytest.mark.parametrize("head, rotation_layer, cross_attention", VARIANTS)
def test_full_size_variant_forward_backward(head, rotation_layer, cross_attention):
    config = SpliterConfig(head=head, rotation_layer=rotation_layer, cross_attention=cross_attention)
    assert (config.dim, config.text_tokens, config.width) == (1280, 77, 256)
    _check_forward_backward(config, batch=2)


@pytest.mark.parametrize("head, rotation_layer, cross_attention", VARIANTS)
def test_fresh_model_predicts_no_change(head, rotation_layer, cross_attention):
    config = _tiny(head, rotation_layer, cross_attention)
    text, start, step = _inputs(config)
    assert torch.equal(Spliter(config)(text, start, step), start)


@pytest.mark.parametrize("head, rotation_layer, cross_attention", VARIANTS)
def test_step_sign_and_text_matter(head, rotation_layer, cross_attention):
    config = _tiny(head, rotation_layer, cross_attention)
    model = _nontrivial(Spliter(config)).eval()
    text, start, step = _inputs(config)
    step = step.abs() + 0.5
    forward = model(text, start, step)
    assert not torch.allclose(forward, model(text, start, -step), atol=1e-4)
    changed = text.clone()
    changed[:, 2] = torch.randn(changed.shape[0], config.dim)
    assert not torch.allclose(forward, model(changed, start, step), atol=1e-4)


def test_token_counts_follow_the_config():
    for cross_attention, expected in (("off", 0), ("additive", 4), ("attention", 2)):
        assert _tiny(cross_attention=cross_attention, text_tokens=3).conditioning_tokens == expected
    config = _tiny(cross_attention="additive", text_tokens=3)
    model = Spliter(config)
    assert model.head.trunk.blocks[0].fc1.weight.shape == (config.width, 3 + 2 + 4)
    assert model(*_inputs(config)).shape == (3, 16)


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout():
    config = _tiny(dropout=0.5)
    model = _nontrivial(Spliter(config))
    inputs = _inputs(config)
    model.eval()
    assert torch.equal(model(*inputs), model(*inputs))
    model.train()
    assert not torch.equal(model(*inputs), model(*inputs))


def test_all_constants_are_registered_and_in_the_state_dict():
    model = Spliter(_tiny("dual", "plane", "attention"))
    for name, module in model.named_modules():
        loose = [k for k, v in vars(module).items() if isinstance(v, torch.Tensor)]
        assert not loose, f"{name or 'model'} holds unregistered tensors {loose}"
    expected = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    assert set(model.state_dict()) == expected


@pytest.mark.parametrize("head", HEADS)
def test_state_dict_round_trip_is_exact(head):
    config = _tiny(head, "plane", "additive")
    model = _nontrivial(Spliter(config)).eval()
    clone = Spliter(config).eval()
    clone.load_state_dict(model.state_dict())
    inputs = _inputs(config)
    assert torch.equal(clone(*inputs), model(*inputs))


def test_save_and_load_give_identical_outputs(tmp_path):
    config = _tiny("dual", "plane", "attention", time_scale=0.5)
    model = _nontrivial(Spliter(config)).eval()
    path = tmp_path / "ckpt" / "best.pt"
    save_spliter(model, path, extra={"epoch": 3, "val_cosine": 0.9})
    loaded = load_spliter(path)
    assert not loaded.training
    assert loaded.config == config
    inputs = _inputs(config)
    assert torch.equal(loaded(*inputs), model(*inputs))
    assert read_checkpoint(path)["extra"] == {"epoch": 3, "val_cosine": 0.9}
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary left behind


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_spliter(missing)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_spliter(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt"):
        load_spliter(foreign)
    mismatched = tmp_path / "mismatched.pt"
    save_spliter(Spliter(_tiny()), mismatched)
    payload = torch.load(mismatched, weights_only=True)
    payload["config"]["dim"] = 32
    torch.save(payload, mismatched)
    with pytest.raises(CheckpointError, match="mismatched.pt"):
        load_spliter(mismatched)


def test_save_rejects_non_json_extra(tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_spliter(Spliter(_tiny()), tmp_path / "x.pt", extra={"tensor": torch.zeros(1)})


def test_config_dict_round_trip_and_unknown_fields():
    config = _tiny("simple", "plane", "attention", dropout=0.2, normalize_start=False)
    assert SpliterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown fields"):
        SpliterConfig.from_dict({**config.to_dict(), "colour": "red"})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"head": "triple"}, "head"),
        ({"rotation_layer": "rope"}, "rotation_layer"),
        ({"cross_attention": "full"}, "cross_attention"),
        ({"dim": 1}, "dim"),
        ({"text_tokens": 0}, "text_tokens"),
        ({"width": 2.5}, "width"),
        ({"width": 4, "depth": 4}, "too small for depth"),
        ({"cross_attention": "attention", "heads": 3}, "divisible"),
        ({"dropout": 1.0}, "dropout"),
        ({"time_scale": 0.0}, "time_scale"),
        ({"time_scale": float("nan")}, "time_scale"),
        ({"normalize_start": "yes"}, "normalize_start"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**overrides)


def test_forward_rejects_wrong_shapes():
    config = _tiny()
    model = Spliter(config)
    text, start, step = _inputs(config)
    with pytest.raises(ValueError, match="text_hidden"):
        model(text[:, :4], start, step)
    with pytest.raises(ValueError, match="start"):
        model(text, start[:2], step)
    with pytest.raises(ValueError, match="step"):
        model(text, start, step[:, None])


def test_start_normalisation_makes_the_prediction_scale_equivariant_in_the_start_token():
    config = _tiny()
    model = _nontrivial(Spliter(config)).eval()
    text, start, step = _inputs(config)
    # With normalize_start the network sees only the start's direction: the displacement ignores its scale.
    disp = model(text, start, step) - start
    assert torch.allclose(model(text, 3.0 * start, step) - 3.0 * start, disp, atol=1e-5)
    raw = _nontrivial(Spliter(_tiny(normalize_start=False))).eval()
    assert not torch.allclose(
        raw(text, 3.0 * start, step) - 3.0 * start, raw(text, start, step) - start, atol=1e-4
    )


def test_increment_head_learns_a_step_proportional_displacement():
    """Sanity of the whole parameterisation: a few hundred AdamW steps beat the static prediction clearly."""
    from spliter.losses import displacement_loss

    g = torch.Generator().manual_seed(0)
    config = _tiny(width=16, dropout=0.0)
    text = torch.randn(128, config.text_tokens, config.dim, generator=g)
    start = torch.randn(128, config.dim, generator=g)
    step = torch.rand(128, generator=g) * 4 - 2
    velocity = text.mean(1) @ (torch.randn(config.dim, config.dim, generator=g) / config.dim**0.5)
    target = start + 0.3 * step[:, None] * velocity
    model = Spliter(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = displacement_loss(model(text, start, step), start, start, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        fitted = displacement_loss(model(text, start, step), start, start, target)
    static = displacement_loss(start, start, start, target)
    assert fitted < 0.6 * static, (fitted, static)


# ------------------------------------------------------------------------------------------- step-consistent heads


def _train_a_little(model: Spliter, steps: int = 5) -> Spliter:
    """A few optimiser steps towards random targets, so no weight stays at its initial value."""
    text, start, step = _inputs(model.config, batch=4, seed=1)
    target = torch.randn_like(start)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        (model(text, start, step) - target).pow(2).mean().backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("head, rotation_layer, cross_attention", VARIANTS)
def test_a_step_consistent_head_returns_the_start_exactly_at_step_zero(head, rotation_layer, cross_attention):
    config = _tiny(head, rotation_layer, cross_attention, step_consistent=True, dropout=0.0)
    model = _nontrivial(Spliter(config))
    text, start, step = _inputs(config)
    zero = torch.zeros_like(step)
    assert torch.equal(model(text, start, zero), start)
    _train_a_little(model)
    assert torch.equal(model(text, start, zero), start)  # after training too, for any weights
    assert not torch.equal(model(text, start, step), start)  # and it does move at other steps
    plain = _train_a_little(_nontrivial(Spliter(replace(config, step_consistent=False))))
    assert not torch.allclose(plain(text, start, zero), start)  # what the option fixes


def test_the_text_blind_control_has_the_same_parameters_and_ignores_the_text():
    config = _tiny("dual", "plane", "attention")
    text_model = Spliter(config)
    blind = Spliter(replace(config, text_input="constant"))
    shapes = {k: v.shape for k, v in text_model.state_dict().items()}
    assert {k: v.shape for k, v in blind.state_dict().items()} == shapes
    _train_a_little(_nontrivial(blind)).eval()
    text, start, step = _inputs(config)
    other = torch.randn_like(text)
    assert torch.equal(blind(text, start, step), blind(other, start, step))
    _nontrivial(text_model).eval()
    assert not torch.equal(text_model(text, start, step), text_model(other, start, step))


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.bfloat16])
def test_inputs_of_another_precision_are_cast_and_the_start_keeps_its_dtype(dtype):
    model = _nontrivial(Spliter(_tiny(step_consistent=True))).eval()
    text, start, step = _inputs(model.config)
    out = model(text.to(dtype), start.to(dtype), step.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.equal(model(text.to(dtype), start.to(dtype), torch.zeros(3, dtype=dtype)), start.to(dtype))
    torch.testing.assert_close(out.float(), model(text, start, step), atol=0.1, rtol=0.05)
    with pytest.raises(TypeError, match="start must be a floating-point tensor"):
        model(text, start.long(), step)


def test_a_new_head_is_one_class_and_one_registration():
    from spliter.models import Head

    class LastToken(Head):
        def __init__(self, config):
            super().__init__(config)
            self.tokens_out = 1

        def forward(self, base, cond):
            return base[:, -1:]

    HEADS.register("last_token", LastToken)
    try:
        model = _nontrivial(Spliter(_tiny("last_token")))
        text, start, step = _inputs(model.config)
        assert model(text, start, step).shape == start.shape
    finally:
        HEADS.unregister("last_token")
    with pytest.raises(ValueError, match="SpliterConfig.head='last_token' is not one of"):
        _tiny("last_token")


def test_checkpoints_from_before_the_heads_registry_still_load(tmp_path):
    model = _nontrivial(Spliter(_tiny("dual")))
    legacy = {k.removeprefix("head."): v for k, v in model.state_dict().items()}
    torch.save({"config": model.config.to_dict(), "state_dict": legacy, "extra": {}}, tmp_path / "old.pt")
    loaded = load_spliter(tmp_path / "old.pt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("bad", [{"text_input": "none"}, {"step_consistent": 1}])
def test_new_options_are_validated(bad):
    with pytest.raises(ValueError, match=f"SpliterConfig.{next(iter(bad))}"):
        _tiny(**bad)
