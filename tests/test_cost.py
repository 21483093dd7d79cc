"""plan --cost: generate FLOPs and GPU-hours from the per-step figures; frames, and the unique decodes generate runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ablations.cli import main
from ablations.cost import GPU_PEAK_TFLOPS, UTILISATION, decode_flops, generate_cost
from ablations.study import load_study


def test_plan_cost_prints_the_paper_estimate(capsys) -> None:
    assert main(["plan", "--cost", "paper"]) == 0
    out = capsys.readouterr().out
    assert "paper: generate of 65 trials, 10075 videos" in out  # the Kandinsky-decoding trials
    # text2video_zero and animatediff are the 66th and 67th trials: their own models (SD-1.5), counted in videos,
    # not in the Kandinsky figures
    assert "+ text2video_zero: 1 trial, 155 videos with its own model" in out
    assert "+ animatediff: 1 trial, 155 videos with its own model" in out
    assert "148,955 unique (embedding, negative, noise) decodes, each decoded once, of 161,200 frames" in out
    assert "(decoding every frame would be 1.082x)" in out
    assert "12.64 EFLOP decoded, 13.68 EFLOP for every frame" in out
    assert all(name in out for name in GPU_PEAK_TFLOPS)
    assert "measured in" not in out  # no run folder under ./runs/paper


def test_paper_counts_every_frame_and_decodes_baselines_static_and_frame0_once() -> None:
    study = load_study("paper")
    cost = generate_cost(study)
    videos, frames = 31 * 5, 16  # prompts x samples per trial, frames per video
    assert len(study.trials) == 67 and cost.trials == 65
    assert cost.other_models == {"text2video_zero": videos, "animatediff": videos}
    assert cost.frames == 65 * videos * frames  # 2 deterministic baselines once + (20 variants + text_blind) x 3 seeds
    # frame 0 once for everyone, mean_motion once (not per seed), static nothing more, each Spliter its other frames
    assert cost.decodes == videos + videos * (frames - 1) + 63 * videos * (frames - 1)
    assert cost.ratio == pytest.approx(161_200 / 148_955)
    assert cost.frame_flops == pytest.approx(cost.frames * (50 * 1.66 + 1.86) * 1e12)
    assert cost.flops == pytest.approx(cost.decodes * (50 * 1.66 + 1.86) * 1e12)
    assert cost.gpu_hours(GPU_PEAK_TFLOPS["H100 SXM"], dedup=False) == pytest.approx(
        cost.frame_flops / (989e12 * UTILISATION) / 3600)
    assert 12 < cost.gpu_hours(GPU_PEAK_TFLOPS["H100 SXM"], dedup=False) < 14  # issue 13: ~13 h on one H100
    assert cost.gpu_hours(GPU_PEAK_TFLOPS["H100 SXM"]) < cost.gpu_hours(GPU_PEAK_TFLOPS["H100 SXM"], dedup=False)


def test_flops_scale_with_the_pixel_count_and_the_steps() -> None:
    base = {"size": 512, "decoder_steps": 50}
    assert decode_flops({**base, "size": 256}) == pytest.approx(decode_flops(base) / 4)
    assert decode_flops({**base, "decoder_steps": 0}) == pytest.approx(1.86e12)


def test_per_frame_noise_keeps_static_frames_apart_and_chain_mode_shares_frame0(tmp_path: Path) -> None:
    def cost_of(**generate):
        spec = {"study": "c", "seeds": [0, 1], "generate": {"max_prompts": 2, "frames": 4, **generate},
                "variants": {"a": {}}, "controls": []}
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(spec))
        return generate_cost(load_study(path))

    same = cost_of(noise="same", mode="step")
    assert same.frames == 4 * 2 * 4  # static and mean_motion once, a for 2 seeds; 2 videos of 4 frames
    assert same.decodes == 2 + 2 * 3 + 2 * 2 * 3  # frame 0 shared; mean_motion once; a per seed
    per_frame = cost_of(noise="per_frame", mode="step")
    assert per_frame.decodes == same.decodes + 2 * 3  # static's frames now differ in noise
    chain = cost_of(noise="same", mode="chain")
    assert chain.decodes == same.decodes  # frame 0 is the start in chain mode too


def test_a_store_prompt_set_counts_max_prompts_from_every_start_in_every_mode(capsys) -> None:
    """The quickstart renders 32 test videos x 2 starts x 2 modes per trial; frame 0 is shared per start."""
    study = load_study("quickstart")
    cost = generate_cost(study)
    videos, frames = 32 * 2 * 2, 12
    assert cost.upper_bound and cost.uncounted == [] and cost.trials == len(study.trials)
    assert cost.videos == cost.trials * videos and cost.frames == cost.videos * frames
    # frame 0 once per (video, start) for the whole study; static (same noise) adds nothing after it
    assert cost.decodes == 32 * 2 + (cost.trials - 1) * videos * (frames - 1)
    assert main(["plan", "--cost", "quickstart"]) == 0
    assert f"at most {cost.videos} videos" in capsys.readouterr().out


def test_a_store_prompt_set_without_max_prompts_is_named_not_counted(tmp_path: Path, capsys) -> None:
    spec = yaml.safe_load((Path(__file__).parents[1] / "ablations" / "studies" / "quickstart.yaml").read_text())
    del spec["generate"]["max_prompts"]
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # the factors' order names the variants
    study = load_study(path)
    cost = generate_cost(study)
    assert (cost.videos, cost.decodes, cost.ratio, cost.upper_bound) == (0, 0, 1.0, False)
    assert cost.uncounted == [trial.trial_id for trial in study.trials]
    assert main(["plan", "--cost", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(study.trials)} trial(s) render a store prompt set without generate.max_prompts" in out
