"""Frame FID: local-weights-only Inception, custom frame encoders, and agreement with metrics.frechet."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FIDProtocol,
    FrameFID,
    InceptionWeightsNotFound,
)
from metrics.frechet import frechet_distance
from metrics.fvd import VideoSetError


class ToyFrameNet(nn.Module):
    """A fixed random projection of 4x4-pooled frames: uint8 (B, 3, H, W) -> (B, 16)."""

    num_features = 16

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.proj = nn.Linear(48, self.num_features)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(16, 48, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1))


def videos(seed: int, n: int = 3, frames: int = 8, size: int = 16, low: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(low, high, (n, frames, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def toy_fid() -> FrameFID:
    return FrameFID.from_module(ToyFrameNet(), "toy16", batch_size=5)


def test_torchmetrics_value_agrees_with_our_frechet(toy_fid):
    gen, ref = videos(0), videos(1, low=40, high=220)
    row = toy_fid.score(gen, ref)
    ours = frechet_distance(toy_fid.frame_features(gen), toy_fid.frame_features(ref))
    assert row["value"] > 0.1
    assert row["value"] == pytest.approx(ours, rel=1e-6)


def test_row_counts_frames_and_flags_reliability(toy_fid):
    row = toy_fid.score(videos(2, n=3), videos(3, n=4))
    assert row["metric"] == "fid[toy16,native,allf]" and row["level"] == "set" and not row["higher_is_better"]
    assert row["n"] == 3 * 8 and row["reliable"] is True  # 24 and 32 frames > 16 dimensions
    extra = json.loads(row["extra"])
    assert extra == {**extra, "n_videos": 3, "n_reference_frames": 32, "n_reference_videos": 4, "dim": 16}
    small = toy_fid.score(videos(2, n=3), videos(3, n=2))
    assert small["n"] == 24 and small["reliable"] is False  # 16 reference frames cannot fill 16 dimensions


def test_frames_option_uses_the_first_frames_only():
    fid = FrameFID.from_module(ToyFrameNet(), "toy16", FIDProtocol(frames=4))
    gen = videos(4)
    changed = gen.copy()
    changed[:, 4:] = 0
    np.testing.assert_array_equal(fid.frame_features(gen), fid.frame_features(changed))
    assert fid.frame_features(gen).shape == (3 * 4, 16)
    assert fid.name == "fid[toy16,native,4f]"
    with pytest.raises(VideoSetError, match="video 0: has 3 frames"):
        fid.frame_features(videos(5, frames=3), "generated set")


def test_set_of_frames_against_itself_is_zero(toy_fid):
    same = videos(6)
    assert toy_fid.score(same, same)["value"] < 1e-4


def test_custom_module_needs_num_features():
    with pytest.raises(ValueError, match="num_features"):
        FrameFID.from_module(nn.Linear(3, 3), "plain")


def test_mixed_frame_sizes_are_rejected(toy_fid):
    mixed = [videos(7, n=1)[0], videos(8, n=1, size=20)[0]]
    with pytest.raises(VideoSetError, match="generated set: videos must share one frame size"):
        toy_fid.score(mixed, videos(9))


def test_missing_inception_weights_name_file_and_source(tmp_path):
    with pytest.raises(InceptionWeightsNotFound) as info:
        FrameFID.from_weights(tmp_path)
    message = str(info.value)
    assert INCEPTION_WEIGHTS_FILE in message and INCEPTION_WEIGHTS_URL in message and str(tmp_path) in message
    assert isinstance(info.value, FileNotFoundError)


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory):
    """A torch-fidelity Inception-v3 state dict with random weights, built without any download."""
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    path = tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


def test_inception_from_local_weights_runs(random_inception_weights):
    protocol = FIDProtocol(feature=64, frames=2)
    fid = FrameFID.from_weights(random_inception_weights.parent, protocol, batch_size=4)
    assert fid.name == "fid[inception-64,299-tf1,2f]" and fid.dim == 64
    gen, ref = videos(10, n=2), videos(11, n=2, low=60, high=200)
    row = fid.score(gen, ref)
    assert row["n"] == 4 and row["reliable"] is False and row["value"] > 0
    assert fid.frame_features(gen).shape == (4, 64)
    antialiased = FrameFID.from_weights(random_inception_weights, FIDProtocol(feature=64, antialias=True))
    assert antialiased.name == "fid[inception-64,299-antialias,allf]"


def test_protocol_validation():
    with pytest.raises(ValueError, match="feature"):
        FIDProtocol(feature=100)
    with pytest.raises(ValueError, match="frames"):
        FIDProtocol(frames=0)


def test_random_frame_encoder_names_itself_and_is_seeded():
    first, again = FrameFID.random(0), FrameFID.random(0)
    assert first.name.startswith("fid[random0") and first.dim == 16
    gen, ref = videos(1), videos(2)
    assert first.score(gen, ref)["value"] == again.score(gen, ref)["value"]
    assert FrameFID.random(1).score(gen, ref)["value"] != first.score(gen, ref)["value"]
