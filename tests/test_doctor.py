"""doctor reads the weight folders (each broken folder stops doctor and run before encode), estimates generate
memory against a card, and takes the open_clip tag form of an encoder."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ablations.cli import main
from ablations.doctor import memory_checks, metric_checks, problems, study_checks
from ablations.study import load_study
from spliter.backends.memory import GIB


def write_study(tmp: Path, prior: Path, decoder: Path, **options) -> Path:
    study = {
        "study": "k22check",
        "data": {"source": "shapes", "n_videos": 4, "frames": 4, "size": 32},
        "backend": {"name": "kandinsky22", "options": {"prior": str(prior), "decoder": str(decoder), **options}},
        "generate": {"prompts": "motion-v1", "max_prompts": 1, "frames": 4, "size": 512},
        "metrics": {"select": ["embedding"]},
        "baselines": [],
    }
    path = tmp / "k22check.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _no_movq(root: Path) -> None:
    shutil.rmtree(root / "decoder" / "movq")


def _no_weights(root: Path) -> None:
    (root / "decoder" / "unet" / "diffusion_pytorch_model.safetensors").unlink()


def _no_tokenizer(root: Path) -> None:
    shutil.rmtree(root / "prior" / "tokenizer")


def _swapped(root: Path) -> None:
    (root / "prior").rename(root / "tmp")
    (root / "decoder").rename(root / "prior")
    (root / "tmp").rename(root / "decoder")


def _sizes_disagree(root: Path) -> None:
    path = root / "decoder" / "unet" / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "encoder_hid_dim": 64}))


BROKEN: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # how the folder is broken -> (break it, the folder named, words of the problem)
    "no movq": (_no_movq, "decoder", "component 'movq' is missing"),
    "no weights": (_no_weights, "decoder", "component 'unet': no weight file"),
    "no tokenizer": (_no_tokenizer, "prior", "component 'tokenizer'"),
    "prior and decoder swapped": (_swapped, "prior", "swap backend.prior and backend.decoder"),
    "embedding sizes disagree": (_sizes_disagree, "decoder", "do not fit together"),
}


@pytest.mark.parametrize("broken", list(BROKEN))
def test_each_broken_folder_fails_doctor_and_stops_run_before_encode(kandinsky_hub: Path, tmp_path: Path, broken: str) -> None:
    root = tmp_path / "k22"
    shutil.copytree(kandinsky_hub, root)
    breaks, folder, words = BROKEN[broken]
    breaks(root)
    path = write_study(tmp_path, root / "prior", root / "decoder")
    bad = problems(study_checks(load_study(path)))
    assert bad and all(c.name == "backend" for c in bad)
    assert any(str(root / folder) in c.detail and words in c.detail for c in bad), [c.detail for c in bad]
    out = tmp_path / "runs"
    assert main(["doctor", str(path), "--out", str(out)]) == 1
    assert main(["run", str(path), "--out", str(out), "--device", "cpu", "--no-report"]) == 1
    assert not (out / "k22check" / "encode").exists()  # stopped before any work


def test_complete_folders_pass_the_backend_check(kandinsky_hub: Path, tmp_path: Path) -> None:
    checks = study_checks(load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder")))
    assert [c.ok for c in checks if c.name == "backend"] == [True]


def test_memory_estimate_fits_a_16gb_card_at_the_defaults_and_the_knobs_move_it(kandinsky_hub: Path, tmp_path: Path) -> None:
    study = load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder"))
    (default,) = memory_checks(study, gpu=None)
    assert default.ok and not default.required and "16 GB card" in default.detail and ": fits" in default.detail
    (small,) = memory_checks(study, gpu=("an 8 GB card", 8 * GIB))
    assert not small.ok and "does not fit" in small.detail and "decode_batch_size" in small.detail
    big = load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", decode_batch_size=64, movq_batch_size=64))
    (heavy,) = memory_checks(big, gpu=None)
    assert not heavy.ok
    fp32 = load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", dtype="float32"))
    assert not memory_checks(fp32, gpu=None)[0].ok  # 18 GiB of fp32 weights alone


def test_backend_knobs_are_validated_through_the_options_dataclass(kandinsky_hub: Path, tmp_path: Path) -> None:
    from ablations.schema import StudyError

    with pytest.raises(StudyError, match=r"backend.options.*dtype.*float64"):
        load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", dtype="float64"))
    with pytest.raises(StudyError, match=r"movq_batch_size: must be >= 1"):
        load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", movq_batch_size=0))
    with pytest.raises(StudyError, match=r"unknown key"):
        load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", decode_batchsize=2))
    study = load_study(write_study(tmp_path, kandinsky_hub / "prior", kandinsky_hub / "decoder", prior_guidance=7.0))
    assert study.trials[0].config["backend"]["options"]["prior_guidance"] == 7.0


def test_open_clip_encoders_take_the_tag_form(tmp_path: Path) -> None:
    weights = tmp_path / "open_clip_pytorch_model.bin"
    weights.write_bytes(b"")
    spec = {"study": "clipcheck", "generate": {"enabled": False}, "metrics": {"select": ["embedding"], "clip_encoders": [
        f"openclip:ViT-L-14/laion2b_s32b_b82k@{weights}", f"openclip:ViT-L-14@{weights}", "openclip:ViT-L-14"]}}
    path = tmp_path / "clipcheck.yaml"
    path.write_text(yaml.safe_dump(spec))
    tagged, untagged, malformed = metric_checks(load_study(path))
    assert tagged.ok and str(weights) in tagged.detail
    assert not untagged.ok and re.search(r"e\.g\. openclip:ViT-L-14/\w+@", untagged.detail)  # names the form to use
    assert not malformed.ok and "expected openclip:<model>[/<pretrained tag>]@" in malformed.detail
