"""`plan --cost`: the generate compute of a study (FLOPs and GPU-hours per GPU type) before anything runs.

Per decoded image at 512 px (issue 13, measured on the real Kandinsky 2.2 architectures): 1.66 TFLOP per UNet
step with classifier-free guidance and 1.86 TFLOP for the MoVQ decode, both scaled by (size / 512)^2. The prior
(a few TFLOP per video) and the I3D/CLIP scoring are left out (under 1 % of the paper study). Decodes are counted
as the generate stage runs them today: every frame of every video of every trial, baselines once per seed. The
floor counts unique (embedding, noise) pairs, what an exact deduplication would decode: a deterministic baseline
once (its videos do not depend on the training seed), `static` once per video when the noise is shared, and
frame 0 (the start embedding in step mode) once per prompt and sample across all trials with equal generation
settings.
A baseline that renders frames with its own model (text2video_zero: Stable Diffusion 1.5) is another model whose
per-step cost is not measured here: its videos are counted, its images are left out of the decode and FLOP
figures, and `plan --cost` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ablations.study import FRAME_BASELINES, Study, Trial, load_prompts, stable_hash

UNET_CFG_STEP_TFLOP_512 = 1.66  # one UNet step over the conditional + unconditional pair
MOVQ_DECODE_TFLOP_512 = 1.86  # one MoVQ decode of the latent to pixels
#: Sustained fraction of the dense fp16/bf16 tensor peak a diffusion UNet reaches; 0.30 makes the paper study's
#: 13.9 EFLOP about 13 h on one H100, the figure measured in issue 13.
UTILISATION = 0.30
#: Dense fp16/bf16 tensor-core peak, TFLOP/s (vendor data sheets, without sparsity).
GPU_PEAK_TFLOPS: dict[str, float] = {
    "H100 SXM": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "RTX 4090": 165.0,
    "A10G": 125.0,
    "V100": 125.0,
    "L4": 121.0,
    "T4": 65.0,
}


@dataclass(frozen=True)
class GenerateCost:
    """Decoded images and FLOPs of a study's generate stages, as run and at the deduplicated floor."""

    trials: int  # trials that render videos with the study's backend
    videos: int  # videos those trials generate
    decodes: int  # images the generate stage decodes
    floor_decodes: int  # unique (embedding, noise) pairs among them
    flops: float  # FLOPs of those decodes
    floor_flops: float  # FLOPs of the floor
    # frame-rendering baselines (own model, not in the figures above): name -> videos they generate
    other_models: dict[str, int] = field(default_factory=dict)

    def gpu_hours(self, peak_tflops: float, floor: bool = False) -> float:
        """Hours on one GPU of that peak at UTILISATION."""
        return (self.floor_flops if floor else self.flops) / (peak_tflops * 1e12 * UTILISATION) / 3600


def decode_flops(generate: dict) -> float:
    """FLOPs of decoding one image with the generate section's steps and size."""
    scale = (generate["size"] / 512) ** 2
    return (generate["decoder_steps"] * UNET_CFG_STEP_TFLOP_512 + MOVQ_DECODE_TFLOP_512) * 1e12 * scale


def generate_cost(study: Study) -> GenerateCost:
    """Count every trial's decodes and the floor (see the module docstring)."""
    rendering = [t for t in study.trials if t.config["generate"]["enabled"]]
    trials = [t for t in rendering if t.config.get("baseline") not in FRAME_BASELINES]
    other = {t.variant: _n_videos(t) for t in rendering if t.config.get("baseline") in FRAME_BASELINES}
    videos = decodes = floor = 0
    flops = floor_flops = 0.0
    seen_baselines: set[str] = set()
    shared_first: set[str] = set()
    for trial in trials:
        gen = trial.config["generate"]
        n_videos = _n_videos(trial)
        per = decode_flops(gen)
        videos += n_videos
        decodes += n_videos * gen["frames"]
        flops += n_videos * gen["frames"] * per
        unique = _floor_decodes(trial, n_videos, seen_baselines, shared_first)
        floor += unique
        floor_flops += unique * per
    return GenerateCost(len(trials), videos, decodes, floor, flops, floor_flops, other)


def _n_videos(trial: Trial) -> int:
    gen = trial.config["generate"]
    return len(load_prompts(gen)[0]) * gen["samples_per_prompt"]


def _floor_decodes(trial: Trial, n_videos: int, seen_baselines: set[str], shared_first: set[str]) -> int:
    gen = trial.config["generate"]
    if trial.kind == "baseline":
        key = stable_hash([trial.config["baseline"], gen, trial.config["rollout"]])
        if key in seen_baselines:
            return 0
        seen_baselines.add(key)
    first = n_videos
    if gen["mode"] == "step":
        key = stable_hash([trial.config["backend"], trial.config["study_seed"], gen])
        first = 0 if key in shared_first else n_videos
        shared_first.add(key)
    static_same = trial.kind == "baseline" and trial.config["baseline"] == "static" and gen["noise"] == "same"
    return first + (0 if static_same else n_videos * (gen["frames"] - 1))


def format_cost(study: Study) -> str:
    """The text `plan --cost` prints."""
    cost = generate_cost(study)
    if not cost.trials:
        return f"{study.name}: generate is disabled, nothing is decoded"
    lines = [f"{study.name}: generate of {cost.trials} trials, {cost.videos} videos"]
    for name, n_videos in cost.other_models.items():
        lines.append(f"  + {name}: 1 trial, {n_videos} videos with its own model (not in the figures below: "
                     "its per-step cost is not measured here)")
    if not study.spec.backend.name.startswith("kandinsky22"):
        lines.append(f"  (the figures are Kandinsky 2.2's at this size; backend {study.spec.backend.name!r} is another "
                     "model, so only the decode counts apply to it)")
    lines += [
        f"  decoded images: {cost.decodes:,} as run; {cost.floor_decodes:,} unique (embedding, noise) pairs "
        f"(ratio {cost.decodes / cost.floor_decodes:.3f})",
        f"  FLOPs: {cost.flops / 1e18:.4g} EFLOP as run, {cost.floor_flops / 1e18:.4g} EFLOP at the floor "
        f"({UNET_CFG_STEP_TFLOP_512} TFLOP per UNet CFG step + {MOVQ_DECODE_TFLOP_512} TFLOP per MoVQ decode at "
        "512 px, x (size/512)^2; prior and scoring not counted)",
        f"  GPU-hours on one GPU at {UTILISATION:.0%} of the fp16 tensor peak (as run / floor):",
    ]
    for name, peak in GPU_PEAK_TFLOPS.items():
        lines.append(f"    {name:<9} {peak:>6.0f} TFLOP/s  {cost.gpu_hours(peak):8.1f} h / {cost.gpu_hours(peak, True):8.1f} h")
    return "\n".join(lines)
