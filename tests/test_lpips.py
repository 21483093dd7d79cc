"""metrics.lpips: LPIPS per frame pair with torchmetrics' network, the backbone from a local torchvision file.

The backbones here are torchvision's architectures with seeded random weights, saved as torchvision saves
them (``features.*`` keys). With random weights LPIPS is no perceptual measure, but what is tested holds for
any weights: identical frames score 0 (equal features), the score is symmetric (squared differences), the
numbers equal torchmetrics' own LPIPS given the same backbone, and a light distortion scores below a heavy
one (the network is continuous, so a small perturbation moves the unit-normalised features a little and a
large one by O(1); the shipped linear heads are non-negative, so no layer's difference can lower the sum).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from fixtures import lpips_backbone

from ablations.doctor import lpips_checks
from ablations.schema import StudyError, from_dict
from ablations.study import LPIPSConfig, StudyFile
from metrics.fvd import file_sha256
from metrics.lpips import (
    BACKBONES,
    LPIPS_NETS,
    FrameLPIPS,
    LPIPSWeightsError,
    lpips_network,
    lpips_rows,
    read_backbone,
    to_lpips_input,
)
from metrics.paired import slope


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory) -> Path:
    return lpips_backbone(tmp_path_factory.mktemp("lpips") / "alexnet-random.pth")


@pytest.fixture(scope="module")
def alex(alex_file: Path) -> FrameLPIPS:
    return FrameLPIPS.from_file(alex_file, "alex")


def textured(frames: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (bilinear upsampled noise), one per frame: texture at every scale."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(frames, 3, 6, 6, generator=gen)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (fine * 255).round().byte().permute(0, 2, 3, 1).numpy()


def noisy(video: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, video.shape)
    return np.clip(video.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def test_uint8_frames_map_to_the_minus_one_to_one_range() -> None:
    frames = np.array([0, 255, 51, 204], dtype=np.uint8).reshape(1, 2, 2, 1).repeat(3, axis=3)
    x = to_lpips_input(frames)
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == [-1.0] * 3 and x[0, :, 0, 1].tolist() == [1.0] * 3
    assert x[0, 0, 1].tolist() == pytest.approx([51 / 127.5 - 1, 204 / 127.5 - 1])


def test_identical_videos_score_zero_and_the_score_is_symmetric(alex: FrameLPIPS) -> None:
    a, b = textured(seed=0), textured(seed=1)
    assert np.all(alex.frames(a, a) == 0.0)
    ab, ba = alex.frames(a, b), alex.frames(b, a)
    assert np.all(ab > 0) and ab.shape == (3,)
    np.testing.assert_allclose(ab, ba, rtol=1e-6)


def test_a_heavier_distortion_scores_higher_and_the_heads_are_non_negative(alex: FrameLPIPS) -> None:
    heads = [p for name, p in alex.model.named_parameters() if name.startswith("lin")]
    assert heads and all(float(p.min()) >= 0 for p in heads)
    video = textured(frames=4, seed=3)
    light, heavy = alex.frames(noisy(video, 2.0), video), alex.frames(noisy(video, 40.0), video)
    assert np.all(light > 0) and np.all(light < heavy), (light, heavy)


@pytest.mark.parametrize("net", LPIPS_NETS)
def test_it_agrees_with_torchmetrics_given_the_same_backbone(net: str, tmp_path: Path, monkeypatch) -> None:
    from torchmetrics.functional.image import learned_perceptual_image_patch_similarity
    from torchmetrics.functional.image import lpips as tm_lpips
    from torchmetrics.image import LearnedPerceptualImagePatchSimilarity

    path = lpips_backbone(tmp_path / f"{net}.pth", net, seed=5)
    a, b = textured(frames=3, seed=6), noisy(textured(frames=3, seed=6), 25.0)
    ours = FrameLPIPS.from_file(path, net).frames(a, b)
    # with the backbone left random the numbers differ: the file's weights are what is scored
    assert np.abs(FrameLPIPS(lpips_network(net), net, "random").frames(a, b) - ours).max() > 1e-4
    state = torch.load(path, weights_only=True)

    def local_features(arch: str, pretrained: bool = False) -> torch.nn.Sequential:
        # torchmetrics' "pretrained" backbone (torchvision's ImageNet weights), read offline from the same file
        model = getattr(torchvision.models, arch)(weights=None)
        model.features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
        return model.features

    monkeypatch.setattr(tm_lpips, "_get_tv_model_features", local_features)
    # torchmetrics' normalize=True takes [0, 1] images: the same uint8 frames, mapped by torchmetrics itself
    as_unit = [torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255 for v in (a, b)]
    theirs = learned_perceptual_image_patch_similarity(*as_unit, net_type=net, reduction="none", normalize=True)
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-5, atol=1e-7)
    metric = LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)
    metric.update(*as_unit)
    assert float(metric.compute()) == pytest.approx(float(ours.mean()), rel=1e-5)


def test_a_wrong_file_fails_naming_the_file_and_the_expected_architecture(tmp_path: Path) -> None:
    vgg = lpips_backbone(tmp_path / "vgg16.pth", "vgg")
    with pytest.raises(LPIPSWeightsError) as error:
        FrameLPIPS.from_file(vgg, "alex")
    message = str(error.value)
    assert message.startswith(f"{vgg}: not the alexnet backbone") and "alexnet-owt-7be5be79.pth" in message
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for path, words in ((tmp_path / "absent.pth", "not found"), (junk, "cannot be read"),
                        (tmp_path / "list.pth", "holds a list")):  # fmt: skip
        with pytest.raises(LPIPSWeightsError, match="expected torchvision's alexnet state dict") as error:
            read_backbone(path, "alex")
        assert str(error.value).startswith(str(path)) and words in str(error.value)
    # a tensor of the wrong shape under the right key
    state = torch.load(lpips_backbone(tmp_path / "a.pth"), weights_only=True)
    state["features.0.weight"] = torch.zeros(8, 3, 11, 11)
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(LPIPSWeightsError, match=r"features.0.weight has shape \(8, 3, 11, 11\)"):
        read_backbone(tmp_path / "narrow.pth", "alex")


def test_the_full_torchvision_file_loads_its_classifier_keys_ignored(tmp_path: Path) -> None:
    path = lpips_backbone(tmp_path / "full.pth", "squeeze", **{"classifier.1.weight": torch.zeros(2, 2)})
    loaded = {f"features.{key}" for key in read_backbone(path, "squeeze")}
    assert loaded == set(torch.load(path, weights_only=True)) - {"classifier.1.weight"}


def test_nothing_is_downloaded(alex_file: Path, tmp_path: Path, monkeypatch) -> None:
    from torchmetrics.functional.image import learned_perceptual_image_patch_similarity

    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
    video = textured(frames=2)
    FrameLPIPS.from_file(alex_file, "alex").frames(video, noisy(video, 10.0))
    assert list(home.iterdir()) == []
    # the guard is live: torchmetrics' own LPIPS, which fetches ImageNet weights, is stopped by it
    with pytest.raises(AssertionError, match="a download was attempted"):
        learned_perceptual_image_patch_similarity(*(to_lpips_input(video),) * 2, net_type="alex")


def test_rows_carry_the_net_the_protocol_and_the_weights_sha256(alex: FrameLPIPS, alex_file: Path) -> None:
    truth = textured(frames=5, seed=2)
    drifting = np.stack([noisy(truth[k : k + 1], 10.0 * k, seed=k)[0] for k in range(5)])
    rows = {row["metric"]: row for row in lpips_rows(alex, drifting, truth, protocol=("step", "start=true"),
                                                     prompt_id="p", sample_idx=0, gen_seed=3)}  # fmt: skip
    mean, trend = rows["lpips[alex,32px,frames1+,step,start=true]"], rows["lpips_slope[alex,32px,frames1+,step,start=true]"]
    per_frame = json.loads(mean["extra"])["per_frame"]
    assert per_frame == pytest.approx(alex.frames(drifting, truth)[1:].tolist()) and mean["n"] == 4
    assert mean["value"] == pytest.approx(np.mean(per_frame)) and trend["value"] == pytest.approx(slope(per_frame))
    assert trend["value"] > 0  # more noise each frame: the video drifts away from the truth
    for row in (mean, trend):
        extra = json.loads(row["extra"])
        assert extra["weights"] == file_sha256(alex_file) and extra["net"] == "alex"
        assert row["higher_is_better"] is False and (row["prompt_id"], row["gen_seed"]) == ("p", 3)


def test_frames_below_the_nets_minimum_fail_naming_it(alex: FrameLPIPS) -> None:
    small = textured(size=BACKBONES["alex"].min_size - 1)
    with pytest.raises(LPIPSWeightsError, match="at least 31 px"):
        alex.frames(small, small)


@pytest.mark.parametrize("net", LPIPS_NETS)
def test_each_nets_minimum_size_is_the_networks(net: str) -> None:
    model, least = lpips_network(net), BACKBONES[net].min_size
    with torch.no_grad():
        model(*(torch.zeros(1, 3, least, least),) * 2)
        with pytest.raises(RuntimeError):
            model(*(torch.zeros(1, 3, least - 1, least - 1),) * 2)


def test_the_study_section_is_validated_at_load() -> None:
    def metrics(paired: dict) -> StudyFile:
        return from_dict(StudyFile, {"study": "s", "metrics": {"paired": paired}})

    assert metrics({}).metrics.paired.lpips is None
    assert metrics({"lpips": {"weights": "a.pth", "net": "vgg"}}).metrics.paired.lpips == LPIPSConfig("a.pth", "vgg")
    with pytest.raises(StudyError, match=r"metrics.paired.lpips.net: 'resnet' is not one of \['alex', 'vgg', 'squeeze'\]"):
        metrics({"lpips": {"weights": "a.pth", "net": "resnet"}})
    with pytest.raises(StudyError, match="metrics.paired.lpips: weights: give the local torchvision backbone file"):
        metrics({"lpips": {"net": "alex"}})
    assert typing.get_args(typing.get_type_hints(LPIPSConfig)["net"]) == LPIPS_NETS


def test_the_protocol_says_lpips_is_not_computed_without_a_weights_file() -> None:
    from ablations.protocol import LPIPS_ABSENT, lpips_protocol
    from ablations.study import load_study

    assert LPIPS_ABSENT == "not computed (no weights file given)"
    assert lpips_protocol(load_study("quickstart")) == {"computed": False, "detail": LPIPS_ABSENT}  # paired, no file
    assert lpips_protocol(load_study("smoke")) is None  # no paired metrics at all


def test_doctor_checks_the_file_loads_and_says_when_lpips_is_off(alex_file: Path, tmp_path: Path) -> None:
    from ablations.doctor import metric_checks
    from ablations.study import load_study

    (off,) = lpips_checks(None)
    assert off.ok and off.detail == "LPIPS: not computed (no weights file given)"
    assert off in metric_checks(load_study("quickstart"))  # paired metrics, no LPIPS file: said, not failed
    loads, published = lpips_checks(LPIPSConfig(str(alex_file), "alex"))
    assert loads.ok and loads.required and file_sha256(alex_file)[:12] in loads.detail
    assert not published.ok and not published.required and "alexnet-owt-7be5be79.pth" in published.detail
    (wrong,) = lpips_checks(LPIPSConfig(str(alex_file), "vgg"))
    assert not wrong.ok and wrong.required and "not the vgg16 backbone" in wrong.detail
    (absent,) = lpips_checks(LPIPSConfig(str(tmp_path / "none.pth"), "alex"))
    assert not absent.ok and "not found" in absent.detail
