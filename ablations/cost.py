"""`plan --cost`: the generate compute of a study (FLOPs and GPU-hours per GPU type) before anything runs.

Per decoded image at 512 px (issue 13, measured on the real Kandinsky 2.2 architectures): 1.66 TFLOP per UNet
step with classifier-free guidance and 1.86 TFLOP for the MoVQ decode, both scaled by (size / 512)^2. The prior
(a few TFLOP per video) and the I3D/CLIP scoring are left out (under 1 % of the paper study).

Frames are every frame of every video of every trial (deterministic baselines run once): what the generate
stage decoded before deduplication. Decodes are the unique (embedding, negative, noise) decodes among them,
what it decodes now (ablations.stages.decodes): `static` once per video when the noise is shared, and frame 0
(the start embedding, in every rollout mode) once per prompt and sample across all trials with equal
generation settings. A "store:<split>" prompt set renders each of its videos from every start of generate.start
in every mode of generate.modes; its size is known only after encode, so it is counted as generate.max_prompts
videos, an upper bound the figures then say they are ("at most"); without max_prompts it cannot be counted and
`plan --cost` says so (a finished run's own counts are printed from its run folder instead).
A baseline that renders frames with its own model (text2video_zero: Stable Diffusion 1.5) is another model whose
per-step cost is not measured here: its videos are counted, its images are left out of the decode and FLOP
figures, and `plan --cost` says so. animatediff (SD-1.5 with a motion adapter) is counted the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ablations.study import FRAME_BASELINES, Study, Trial, load_prompts, stable_hash, store_prompt_split

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
    """Frames, decoded images and FLOPs of a study's generate stages, with and without deduplication."""

    trials: int  # trials that render videos with the study's backend
    videos: int  # videos those trials generate
    frames: int  # frames of those videos: the decodes without deduplication
    decodes: int  # unique (embedding, negative, noise) decodes among them: what the generate stage decodes
    flops: float  # FLOPs of the decodes
    frame_flops: float  # FLOPs of decoding every frame
    # frame-rendering baselines (own model, not in the figures above): name -> videos they generate
    other_models: dict[str, int] = field(default_factory=dict)
    upper_bound: bool = False  # a store prompt set was counted at generate.max_prompts videos
    uncounted: list[str] = field(default_factory=list)  # trials whose store prompt set has no max_prompts

    @property
    def ratio(self) -> float:
        """frames / decodes: how much deduplication saves (1 when nothing is decoded)."""
        return self.frames / self.decodes if self.decodes else 1.0

    def gpu_hours(self, peak_tflops: float, dedup: bool = True) -> float:
        """Hours on one GPU of that peak at UTILISATION (of every frame when not `dedup`)."""
        return (self.flops if dedup else self.frame_flops) / (peak_tflops * 1e12 * UTILISATION) / 3600


def decode_flops(generate: dict) -> float:
    """FLOPs of decoding one image with the generate section's steps and size."""
    scale = (generate["size"] / 512) ** 2
    return (generate["decoder_steps"] * UNET_CFG_STEP_TFLOP_512 + MOVQ_DECODE_TFLOP_512) * 1e12 * scale


def generate_cost(study: Study) -> GenerateCost:
    """Count every trial's frames and unique decodes (see the module docstring)."""
    rendering = [t for t in study.trials if t.config["generate"]["enabled"]]
    trials = [t for t in rendering if t.config.get("baseline") not in FRAME_BASELINES]
    uncounted = [t.trial_id for t in rendering if _n_starts(t) is None]
    other = {t.variant: _n_videos(t) for t in rendering if t.config.get("baseline") in FRAME_BASELINES}
    videos = frames = decodes = 0
    flops = frame_flops = 0.0
    seen_baselines: set[str] = set()
    shared_first: set[str] = set()
    for trial in trials:
        gen = trial.config["generate"]
        n_videos = _n_videos(trial)
        per = decode_flops(gen)
        videos += n_videos
        frames += n_videos * gen["frames"]
        frame_flops += n_videos * gen["frames"] * per
        unique = _unique_decodes(trial, n_videos, seen_baselines, shared_first)
        decodes += unique
        flops += unique * per
    bound = any(store_prompt_split(t.config["generate"]["prompts"]) is not None and _n_starts(t) for t in rendering)
    return GenerateCost(len(trials), videos, frames, decodes, flops, frame_flops, other, bound, uncounted)


def _n_starts(trial: Trial) -> int | None:
    """The distinct starts (prompt or store video, sample, start) a trial renders; None: not known before encode."""
    gen = trial.config["generate"]
    if store_prompt_split(gen["prompts"]) is None:
        return len(load_prompts(gen)[0]) * gen["samples_per_prompt"]
    if not gen.get("max_prompts"):
        return None
    return gen["max_prompts"] * gen["samples_per_prompt"] * len(gen["start"])


def _modes(trial: Trial) -> int:
    """Rollout modes per start: a store prompt set renders every mode of generate.modes in one trial."""
    gen = trial.config["generate"]
    return len(gen.get("modes") or [gen["mode"]]) if store_prompt_split(gen["prompts"]) is not None else 1


def _n_videos(trial: Trial) -> int:
    return (_n_starts(trial) or 0) * _modes(trial)


def _unique_decodes(trial: Trial, n_videos: int, seen_baselines: set[str], shared_first: set[str]) -> int:
    gen = trial.config["generate"]
    if trial.kind == "baseline":
        key = stable_hash([trial.config["baseline"], gen, trial.config["rollout"]])
        if key in seen_baselines:
            return 0
        seen_baselines.add(key)
    # Frame 0 is the start in every mode; the rollout mode changes only the later frames.
    key = stable_hash([trial.config["backend"], trial.config["study_seed"],
                       {k: v for k, v in gen.items() if k not in ("mode", "modes")}])
    first = 0 if key in shared_first else n_videos // _modes(trial)
    shared_first.add(key)
    static_same = trial.kind == "baseline" and trial.config["baseline"] == "static" and gen["noise"] == "same"
    return first + (0 if static_same else n_videos * (gen["frames"] - 1))


def format_cost(study: Study, root: Path | None = None) -> str:
    """The text `plan --cost` prints; with `root` (ROOT/<study>) also what its finished generate stages decoded."""
    cost = generate_cost(study)
    if not cost.trials:
        return f"{study.name}: generate is disabled, nothing is decoded"
    at_most = "at most " if cost.upper_bound else ""
    lines = [f"{study.name}: generate of {cost.trials} trials, {at_most}{cost.videos} videos"]
    if cost.upper_bound:
        lines.append("  (a store prompt set is counted at generate.max_prompts videos; its test split may hold fewer)")
    if cost.uncounted:
        lines.append(f"  {len(cost.uncounted)} trial(s) render a store prompt set without generate.max_prompts: "
                     "their videos are known only after encode and are not counted")
    for name, n_videos in cost.other_models.items():
        lines.append(f"  + {name}: 1 trial, {n_videos} videos with its own model (not in the figures below: "
                     "its per-step cost is not measured here)")
    if not study.spec.backend.name.startswith("kandinsky22"):
        lines.append(f"  (the figures are Kandinsky 2.2's at this size; backend {study.spec.backend.name!r} is another "
                     "model, so only the decode counts apply to it)")
    lines += [
        f"  decoded images: {at_most}{cost.decodes:,} unique (embedding, negative, noise) decodes, each decoded once, of "
        f"{cost.frames:,} frames (decoding every frame would be {cost.ratio:.3f}x)",
        f"  FLOPs: {cost.flops / 1e18:.4g} EFLOP decoded, {cost.frame_flops / 1e18:.4g} EFLOP for every frame "
        f"({UNET_CFG_STEP_TFLOP_512} TFLOP per UNet CFG step + {MOVQ_DECODE_TFLOP_512} TFLOP per MoVQ decode at "
        "512 px, x (size/512)^2; prior and scoring not counted)",
        f"  GPU-hours on one GPU at {UTILISATION:.0%} of the fp16 tensor peak (decoded / every frame):",
    ]
    for name, peak in GPU_PEAK_TFLOPS.items():
        lines.append(f"    {name:<9} {peak:>6.0f} TFLOP/s  {cost.gpu_hours(peak):8.1f} h / "
                     f"{cost.gpu_hours(peak, dedup=False):8.1f} h")
    if root is not None:
        lines += measured_lines(root)
    return "\n".join(lines)


def measured_lines(root: Path) -> list[str]:
    """What the finished generate stages under `root` decoded, from their own records ([] when none)."""
    from ablations.stages.decodes import study_decodes  # numpy/torch: only when a run folder is read

    done = study_decodes(root)
    if done is None:
        return []
    return [f"  measured in {root}: {done.stages} generate stage(s) asked for {done.requested:,} frames and decoded "
            f"{done.decoded:,} images of {done.unique:,} unique decodes (decoded / unique = {done.ratio:.3f})"]
