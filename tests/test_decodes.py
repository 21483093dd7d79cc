"""ablations.stages.decodes: every unique (embedding, negative, seed) decoded once per study, never a changed pixel."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from fixtures import micro_study

from ablations.cli import main
from ablations.stages.context import RunContext
from ablations.stages.decodes import CACHE_DIR, DecodeSettings, VideoDecoder, study_decodes
from ablations.stages.generate import load_frames
from ablations.stages.runner import run_trial
from ablations.study import STUDIES_DIR, load_study
from spliter.backends.tiny import TinyBackend

SETTINGS = DecodeSettings(steps=1, guidance=4.0, size=32)


@pytest.fixture(scope="module")
def tiny() -> TinyBackend:
    return TinyBackend(seed=0, device="cpu")


@pytest.fixture(scope="module")
def rows(tiny: TinyBackend) -> tuple[torch.Tensor, torch.Tensor]:
    """Four distinct embeddings and the negative of the first caption."""
    embeds, negative = tiny.prior(["a red ball", "a blue cube", "a dog", "a cat"], [0, 1, 2, 3], 2, 4.0)
    return embeds, negative[:1]


def decode(tiny: TinyBackend, embeds: torch.Tensor, negative: torch.Tensor, seeds: list[int], **options) -> tuple:
    decoder = VideoDecoder(tiny, SETTINGS, **({"cache": None} | options))
    pixels = decoder(embeds, negative.expand(len(embeds), -1), seeds)
    return pixels, decoder.counts


def test_a_static_video_is_one_decode_and_the_same_image_in_every_frame(tiny, rows) -> None:
    embeds, negative = rows
    static = embeds[:1].expand(6, -1)
    pixels, counts = decode(tiny, static, negative, [5] * 6)
    assert (counts.requested, counts.decoded, len(counts.keys)) == (6, 1, 1)
    assert all(np.array_equal(frame, pixels[0]) for frame in pixels)
    assert pixels.tobytes() == decode(tiny, static, negative, [5] * 6, dedup=False)[0].tobytes()
    # Decoding the six rows in one call gives the same image up to the backend's batching noise.
    batched = tiny.decode(static, negative.expand(6, -1), [5] * 6, SETTINGS.steps, SETTINGS.guidance, SETTINGS.size)
    assert np.abs(batched.astype(int) - pixels).max() <= 1


def test_rows_equal_to_frame_0_take_its_image_and_the_others_are_decoded_in_one_call(tiny, rows) -> None:
    embeds, negative = rows
    video = embeds[[0, 1, 0, 2, 1, 0]]
    pixels, counts = decode(tiny, video, negative, [5] * 6)
    assert counts.decoded == 1 + 3  # frame 0; rows 1, 3, 4 in one call (merging row 4 into 1 would change it)
    assert pixels.tobytes() == decode(tiny, video, negative, [5] * 6, dedup=False)[0].tobytes()
    assert np.array_equal(pixels[2], pixels[0]) and np.array_equal(pixels[5], pixels[0])
    later = tiny.decode(video[[1, 3, 4]], negative.expand(3, -1), [5] * 3, SETTINGS.steps, SETTINGS.guidance,
                        SETTINGS.size)
    assert pixels[[1, 3, 4]].tobytes() == later.tobytes()


def test_identical_embeddings_with_per_frame_noise_are_not_merged(tiny, rows) -> None:
    embeds, negative = rows
    static = embeds[:1].expand(4, -1)
    pixels, counts = decode(tiny, static, negative, [11, 12, 13, 14])
    reference, _ = decode(tiny, static, negative, [11, 12, 13, 14], dedup=False)
    assert counts.decoded == 4 and len(counts.keys) == 4
    assert pixels.tobytes() == reference.tobytes()
    assert np.abs(pixels[0].astype(int) - pixels[1]).mean() > 1  # other noise, another image


def test_the_same_call_gives_the_same_bytes_so_a_repeated_video_is_not_decoded_again(tiny, rows) -> None:
    embeds, negative = rows
    video = embeds[[0, 1, 2]]
    decoder = VideoDecoder(tiny, SETTINGS, cache=None)
    first = decoder(video, negative.expand(3, -1), [7] * 3)
    second = decoder(video.clone(), negative.expand(3, -1), [7] * 3)
    assert (decoder.counts.decoded, decoder.counts.reused) == (3, 3)
    assert second.tobytes() == first.tobytes()
    again = tiny.decode(video[1:], negative.expand(2, -1), [7] * 2, SETTINGS.steps, SETTINGS.guidance, SETTINGS.size)
    assert again.tobytes() == first[1:].tobytes()


def test_frame_0_is_decoded_once_across_the_trials_that_share_the_cache(tiny, rows, tmp_path: Path) -> None:
    embeds, negative = rows
    trial_a, trial_b = embeds[[0, 1, 2]], embeds[[0, 3, 2]]  # same start, other later frames
    first, a = decode(tiny, trial_a, negative, [7] * 3, cache=tmp_path)
    second, b = decode(tiny, trial_b, negative, [7] * 3, cache=tmp_path)
    assert (a.decoded, a.from_cache) == (3, 0)
    assert (b.decoded, b.from_cache) == (2, 1)
    assert second.tobytes() == decode(tiny, trial_b, negative, [7] * 3, dedup=False)[0].tobytes()
    assert first.tobytes() == decode(tiny, trial_a, negative, [7] * 3, dedup=False)[0].tobytes()
    assert len(list(tmp_path.glob("*.npy"))) == 1  # only frame 0 is cached


def test_a_damaged_cache_entry_is_decoded_again(tiny, rows, tmp_path: Path) -> None:
    embeds, negative = rows
    good, _ = decode(tiny, embeds[:2], negative, [7, 7], cache=tmp_path)
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(b"torn")
    again, counts = decode(tiny, embeds[:2], negative, [7, 7], cache=tmp_path)
    assert (counts.decoded, counts.from_cache) == (2, 0)
    assert again.tobytes() == good.tobytes()
    assert np.load(entry).shape == (1, 32, 32, 3)  # rewritten


def test_the_key_covers_every_input_of_a_decode(tiny, rows) -> None:
    embeds, negative = rows
    decoder = VideoDecoder(tiny, SETTINGS, cache=None)
    key = decoder.key(embeds[0], negative[0], 7)
    assert decoder.key(embeds[0].clone(), negative[0].clone(), 7) == key  # content, not identity
    others = [decoder.key(embeds[1], negative[0], 7), decoder.key(embeds[0], embeds[1], 7),
              decoder.key(embeds[0], negative[0], 8)]
    for settings in (DecodeSettings(2, 4.0, 32), DecodeSettings(1, 1.0, 32), DecodeSettings(1, 4.0, 48)):
        others.append(VideoDecoder(tiny, settings, cache=None).key(embeds[0], negative[0], 7))
    others.append(VideoDecoder(TinyBackend(seed=1, device="cpu"), SETTINGS, cache=None).key(embeds[0], negative[0], 7))
    assert len({key, *others}) == 1 + len(others)


# ------------------------------------------------------------------------------------------ micro studies

JSONL = micro_study(
    study="dedupmicro", seeds=[0, 1], train__epochs=1, train__patience=1, regime__pairs_per_video=2,
    metrics__select=["pixel_motion"], baselines=["static", "mean_motion"], controls=[],
)  # fmt: skip


def run_study(tmp: Path, spec: dict) -> tuple[Path, Path]:
    study = tmp / f"{spec['study']}.yaml"
    study.write_text(yaml.safe_dump(spec))
    assert main(["run", str(study), "--out", str(tmp / "runs"), "--no-report"]) == 0
    return study, tmp / "runs" / spec["study"]


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory) -> tuple[Path, Path]:
    return run_study(tmp_path_factory.mktemp("dedup-jsonl"), JSONL)


def test_a_jsonl_prompt_study_decodes_each_unique_decode_exactly_once(jsonl_run) -> None:
    _, root = jsonl_run
    done = study_decodes(root)
    assert done is not None and done.stages == 4  # static, mean_motion, base x 2 seeds
    assert done.requested == 4 * 2 * 4  # trials x videos x frames
    assert done.decoded == done.unique and done.ratio == 1.0
    assert done.decoded < done.requested  # static decodes nothing of its own, frame 0 once for the study
    assert len(list((root / CACHE_DIR).glob("*.npy"))) == 2  # one start per (prompt, sample)
    metas = [json.loads(p.read_text())["decodes"] for p in root.glob("trials/*/generate/meta.json")]
    assert sum(m["decoded"] for m in metas) == done.decoded
    assert sum(m["from_cache"] for m in metas) == 3 * 2  # the trials after the first read the two starts


def test_dedup_changes_no_pixel_of_any_video(jsonl_run, tmp_path: Path) -> None:
    study, root = jsonl_run
    copy_root = tmp_path / "runs" / root.name
    shutil.copytree(root, copy_root)
    shutil.rmtree(copy_root / CACHE_DIR)
    ctx = RunContext(study_path=study, root=copy_root, device="cpu", force=True, dedup=False)
    compared = 0
    for trial in load_study(study).trials:
        assert run_trial(ctx, trial.trial_id, "generate").status == "ran"
        for npz in sorted((root / "trials" / trial.trial_id / "generate" / "videos").glob("*.npz")):
            undeduped = copy_root / "trials" / trial.trial_id / "generate" / "videos" / npz.name
            assert load_frames(npz).tobytes() == load_frames(undeduped).tobytes(), npz.name
            compared += 1
    assert compared == 4 * 2
    assert not (copy_root / CACHE_DIR).exists()  # nothing was shared: every frame decoded in its own trial
    assert study_decodes(copy_root).ratio > 1.0


def test_plan_cost_prints_what_the_run_decoded(jsonl_run, capsys) -> None:
    study, root = jsonl_run
    assert main(["plan", "--cost", str(study), "--out", str(root.parent)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    done = study_decodes(root)
    assert f"decoded {done.decoded:,} images of {done.unique:,} unique decodes (decoded / unique = 1.000)" in out


def test_a_store_prompt_study_decodes_each_unique_decode_exactly_once(tmp_path: Path) -> None:
    spec = copy.deepcopy(yaml.safe_load((STUDIES_DIR / "quickstart.yaml").read_text()))
    spec.update(study="dedupstore", seeds=[0], matrix={"regime": {"base": {}}}, controls=[], expectations=[])
    spec.pop("text_blind_of")
    spec["data"].update(n_videos=16)
    spec["train"].update(budget_steps=5)
    spec["generate"].update(max_prompts=2)
    spec["metrics"].update(select=["paired"])
    _, root = run_study(tmp_path, spec)
    done = study_decodes(root)
    frames, videos = spec["generate"]["frames"], 2 * 2 * 2  # prompts x starts x modes
    assert done.stages == 3 and done.requested == 3 * videos * frames
    assert done.decoded == done.unique and done.ratio == 1.0
    assert len(list((root / CACHE_DIR).glob("*.npy"))) == 2 * 2  # per prompt: its true start and its prior start
    assert done.decoded < done.requested
