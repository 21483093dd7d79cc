"""check_kandinsky_folders: hub-layout weight folders are read (configs, weight files, tokenizer, sizes)."""

import json
import shutil
from pathlib import Path

import pytest

from spliter.backends.kandinsky22 import check_kandinsky_folders


@pytest.fixture
def copy(kandinsky_hub: Path, tmp_path: Path) -> Path:
    shutil.copytree(kandinsky_hub, tmp_path / "k22")
    return tmp_path / "k22"


def check(root: Path, prior: str = "prior", decoder: str = "decoder") -> list[str]:
    return check_kandinsky_folders(str(root / prior), str(root / decoder))


def test_a_complete_pair_of_folders_has_no_problem(kandinsky_hub: Path) -> None:
    assert check(kandinsky_hub) == []


def test_a_missing_movq_is_named_with_the_fix(copy: Path) -> None:
    shutil.rmtree(copy / "decoder" / "movq")
    (problem,) = check(copy)
    assert f"decoder folder {copy / 'decoder'}: component 'movq' is missing" in problem
    assert "hf download kandinsky-community/kandinsky-2-2-decoder --local-dir" in problem and "\n" not in problem


def test_missing_weight_files_are_named(copy: Path) -> None:
    (copy / "prior" / "prior" / "diffusion_pytorch_model.safetensors").unlink()
    (copy / "decoder" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    problems = check(copy)
    assert len(problems) == 2
    assert "component 'prior': no weight file" in problems[0] and "component 'unet': no weight file" in problems[1]


def test_sharded_weights_need_every_listed_shard(copy: Path) -> None:
    movq = copy / "decoder" / "movq"
    (movq / "diffusion_pytorch_model.safetensors").rename(movq / "part-1.safetensors")
    index = {"weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors"}}
    (movq / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    (problem,) = check(copy)
    assert "component 'movq': weight shards missing: part-2.safetensors" in problem
    (movq / "part-2.safetensors").write_bytes(b"")
    assert check(copy) == []


@pytest.mark.parametrize("remove", ["folder", "vocabulary"])
def test_a_tokenizer_that_does_not_load_is_named(copy: Path, remove: str) -> None:
    tokenizer = copy / "prior" / "tokenizer"
    if remove == "folder":
        shutil.rmtree(tokenizer)
    else:  # the config stays, the vocabulary goes: the load that failed as OverflowError in generate
        (tokenizer / "tokenizer.json").unlink()
    (problem,) = check(copy)
    assert f"prior folder {copy / 'prior'}: component 'tokenizer'" in problem
    assert "missing" in problem or "does not load" in problem or "no usable vocabulary" in problem


def test_swapped_prior_and_decoder_say_swap(kandinsky_hub: Path) -> None:
    problems = check(kandinsky_hub, prior="decoder", decoder="prior")
    assert len(problems) == 2
    assert "names 'KandinskyV22Pipeline', expected 'KandinskyV22PriorPipeline'" in problems[0]
    assert all("swap backend.prior and backend.decoder" in p for p in problems)


def test_prior_and_decoder_embedding_sizes_must_agree(copy: Path) -> None:
    config_path = copy / "decoder" / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["encoder_hid_dim"] = 64
    config_path.write_text(json.dumps(config))
    (problem,) = check(copy)
    assert "do not fit together" in problem
    assert "prior/prior embedding_dim=32" in problem and "decoder/unet encoder_hid_dim=64" in problem


def test_missing_folders_keep_the_download_hint_and_either_side_may_be_skipped(kandinsky_hub: Path, tmp_path: Path) -> None:
    (problem,) = check_kandinsky_folders(str(tmp_path / "nowhere"), None)
    assert "prior weights not found" in problem and "hf download" in problem
    assert check_kandinsky_folders(None, str(kandinsky_hub / "decoder")) == []
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    (problem,) = check_kandinsky_folders(None, str(broken))
    assert "model_index.json is not valid JSON" in problem
