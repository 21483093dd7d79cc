"""Study files: a YAML of shared settings + named variants (or a matrix of axes) -> validated trials.

The sections `model`, `train`, `regime` and `rollout` are validated against the library's own config
dataclasses (`SpliterConfig`, `TrainConfig`, `RegimeConfig`, `RolloutConfig`), so the schema lives in one
place. Everything else is defined here.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from ablations.prompt_sets import (  # noqa: F401 - the study API
    PROMPTS_DIR,
    STORE_PROMPTS,
    Prompt,
    load_prompts,
    prompt_file,
    store_prompt_split,
)
from ablations.schema import StudyError, from_dict, set_dotted, to_dict
from ablations.validation import validate_study
from spliter.baselines import FRAME_BASELINES

STUDIES_DIR = Path(__file__).parent / "studies"
# Baselines that are rollouts of embeddings (decoded by the study's backend, scored like the variants) and
# baselines that render frames directly from the caption (no embeddings: embedding-space metrics skip them), the
# registry spliter.baselines.FRAME_BASELINES (each with its own top-level study section, named like it).
ROLLOUT_BASELINES = ("static", "mean_motion")
CONTROLS = ("text_blind",)
# The control's overrides on top of the variant it copies.
CONTROL_OVERRIDES: dict[str, dict[str, Any]] = {"text_blind": {"model.text_input": "constant"}}
# Keys set by the harness itself, never by a study (they cannot change results or are derived per trial);
# data_placement is left to its "auto" rule and kept out of the trial config, so trial ids stay what they were.
HARNESS_TRAIN_KEYS = ("seed", "device", "progress", "regime", "caption_sampling", "data_placement")
# Rollout keys the harness decides: the mode per use (generate.mode; scoring uses step and chain), the time grid
# from generate.frames/dt. Kept out of the trial config, so they never change a stage hash without effect.
HARNESS_ROLLOUT_KEYS = ("mode", "frames", "dt")


@dataclass
class DataConfig:
    source: str = "shapes"  # a registered data source (ablations.sources.SOURCES)
    n_videos: int = 120  # shapes / synthetic: how many clips to make
    frames: int = 12  # frames per video in the store
    fps: float | None = 8.0  # sampling rate when encoding videos (None: the video's own rate)
    size: int = 64  # shapes: render size in pixels
    # folder: root; msrvtt: the 1k-A csv; msrvtt-annotation: MSRVTT_data.json; webvid: the csv; tgif: the tsv
    path: str | None = None
    videos: str | None = None  # msrvtt / msrvtt-annotation / webvid / tgif: the folder with the video files
    split: str | None = None  # msrvtt-annotation: keep one official split (train, val, test); None: all
    ids: str | None = None  # msrvtt-annotation / tgif: keep the videos of a split list (csv or one id per line)
    caption_column: str = "caption"
    val_fraction: float = 0.25
    split_seed: int = 0
    seed: int = 0  # shapes / synthetic generation seed
    motions: list[str] | None = None  # shapes: motions cycled over clips (None: all of spliter.data.shapes.MOTIONS)
    backgrounds: list[str] | None = None  # shapes: backgrounds drawn from (None: all)
    start_box: list[float] | None = None  # shapes: (low, high) of where shape centres start (None: the default)
    dim: int = 32  # synthetic only
    text_tokens: int = 8  # synthetic only
    noise: float = 0.02  # synthetic only
    world: str = "legacy"  # synthetic only: "fair" (start independent of the caption) or "legacy"
    test_fraction: float = 0.0  # share of videos held out for the reported scores (0: none, scores fall back to val)
    unseen_fraction: float = 0.0  # share of caption groups held out entirely (the test_unseen split)
    prior_noise: float = 0.1  # synthetic fair world only: noise of the prior start embedding
    # How training uses a video's several captions (MSR-VTT: 20): "one" (the first), "all" (one training record
    # per caption) or "sampled" (one caption per video per epoch, drawn from the training seed). Held-out videos
    # (val, test) always keep their first caption, so scores are comparable across policies. ablations.stages.encode
    captions_per_video: Literal["one", "all", "sampled"] = "one"


@dataclass
class BackendConfig:
    name: str = "tiny"  # a registered backend (spliter.backends.BACKENDS)
    # The backend's own options, checked against its options dataclass (defaults filled in when loaded).
    options: dict[str, Any] = field(default_factory=dict)
    prior_steps: int = 2
    prior_seed: int = 0
    guidance: float = 4.0
    encode_size: int = 224  # frames are centre-cropped and resized to this before the image encoder


@dataclass
class GenerateConfig:
    enabled: bool = True
    prompts: str = "motion-v1"  # a name under ablations/prompts/ or a path to a .jsonl
    prompt_tags: list[str] = field(default_factory=list)  # keep prompts having any of these tags
    max_prompts: int | None = None
    samples_per_prompt: int = 1
    frames: int = 8
    dt: float = 0.25  # seconds between generated frames
    size: int = 64
    decoder_steps: int = 2
    guidance: float = 4.0
    noise: Literal["same", "per_frame"] = "same"
    fps: float = 8.0
    mode: Literal["step", "chain"] = "step"
    # "store:<split>" prompts (test videos) only: rollout modes rendered (empty: [mode]) and the starts, "true"
    # (the video's own first frame) and/or "prior" (the backend's prior for the caption)
    modes: list[Literal["step", "chain"]] = field(default_factory=list)
    start: list[Literal["true", "prior"]] = field(default_factory=lambda: ["prior"])


@dataclass
class FVDConfig:
    # A local weights file (i3d_pretrained_400.pt or i3d_torchscript.pt), or "random" for a random-weight I3D
    # (exercises the protocol; its rows are never a quality number and are flagged unreliable).
    weights: str = "random"
    protocol: Literal["videogpt", "styleganv"] = "videogpt"
    frames: int = 16
    resolution: int = 224  # 224 is the published protocol; other values are named in the metric
    resize: Literal["squash", "short_side_crop"] = "squash"
    # Reference clips take every stride-th frame of the source at its own rate (1: consecutive frames, the
    # standard protocol); named in the metric (fvd[...,16f,stride1,...]).
    stride: int = 1
    # Fewest videos per set for a row to be reliable (2048: StyleGAN-V's fvd2048_16f); rows below it are
    # flagged and say how many a trustworthy number needs. Never changes the number.
    n_min: int = 2048

    def __post_init__(self) -> None:
        if int(self.stride) < 1 or int(self.n_min) < 2:
            raise ValueError(f"stride must be >= 1 and n_min >= 2, got stride={self.stride}, n_min={self.n_min}")


@dataclass
class FIDConfig:
    # A local torch-fidelity Inception file (weights-inception-2015-12-05-6726825d.pth), or "random" for a
    # seeded random frame encoder (exercises the protocol only; never a quality number).
    weights: str = "random"
    frames: int | None = None  # the first frames of each video (None: all)


@dataclass
class LPIPSConfig:
    # A local torchvision backbone file of `net`'s architecture (alex: alexnet-owt-7be5be79.pth, vgg:
    # vgg16-397923af.pth, squeeze: squeezenet1_1-b8a52dc0.pth; metrics.lpips); never downloaded.
    weights: str = ""
    net: Literal["alex", "vgg", "squeeze"] = "alex"  # metrics.lpips.LPIPS_NETS

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("weights: give the local torchvision backbone file LPIPS loads (alex: "
                             "alexnet-owt-7be5be79.pth), or remove metrics.paired.lpips to score no LPIPS")


@dataclass
class PairedConfig:
    # LPIPS rows of the "paired" family; null (the default): LPIPS is not computed, and the protocol says so.
    lpips: LPIPSConfig | None = None


def _default_families() -> list[str]:
    from metrics.families import DEFAULT_FAMILIES  # torch: see _library_configs

    return list(DEFAULT_FAMILIES)


@dataclass
class MetricsConfig:
    # Metric families by name (metrics.families.METRIC_FAMILIES); those scoring videos are skipped when the
    # study renders none.
    select: list[str] = field(default_factory=_default_families)
    # "backend" (the generator's own CLIP image encoder) and/or "openclip:<model>@<weights file>";
    # "openclip:<model>@random" only for smoke studies (random weights: flagged in the metric name).
    clip_encoders: list[str] = field(default_factory=lambda: ["backend"])
    fvd: FVDConfig = field(default_factory=FVDConfig)  # settings of the "fvd" family
    fid: FIDConfig = field(default_factory=FIDConfig)  # settings of the "fid" family (frame FID)
    paired: PairedConfig = field(default_factory=PairedConfig)  # settings of the "paired" family (LPIPS)


@dataclass
class Resources:
    cpu: float = 1.0  # per trial, for the Ray launcher
    gpu: float = 0.0
    threads: int = 1  # torch intra-op threads per trial: fixed so every launcher computes identical numbers
    workers: int | str = 1  # parallel trials when --workers is not given; "auto": one per CPU core

    def worker_count(self) -> int:
        """`workers` as a number: "auto" is the machine's CPU count (numbers do not depend on it: one thread each)."""
        return max(os.cpu_count() or 1, 1) if self.workers == "auto" else int(self.workers)


@dataclass
class Expectation:
    variant: str  # a variant or control of this study
    beats: list[str]  # baselines / controls / variants whose interval it must lie strictly better than
    metric: str  # an exact metric name of scores.parquet; "{mode}" expands to each of `modes`
    modes: list[str] = field(default_factory=list)  # each mode is its own verdict (empty: the metric as given)


@dataclass
class StudyFile:
    study: str
    description: str = ""
    question: str = ""  # what the study asks, one sentence (the report's first screen)
    world: str = ""  # what world the numbers come from and what they can and cannot say (the report's first screen)
    seeds: list[int] = field(default_factory=lambda: [0])
    study_seed: int = 1234
    data: DataConfig = field(default_factory=DataConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    regime: dict[str, Any] = field(default_factory=dict)
    rollout: dict[str, Any] = field(default_factory=dict)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    resources: Resources = field(default_factory=Resources)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # axis -> level -> overrides; the product of all axes becomes variants named by their non-default levels
    matrix: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=lambda: list(ROLLOUT_BASELINES))
    # The evaluation set (same keys as data, a data source with videos): FVD's reference clips, and videos the
    # training corpus must not contain (ablations.leakage). None: the training store's validation split.
    evaluation: DataConfig | None = None
    # Controls added to every study that trains ([] opts out): "text_blind" is `text_blind_of` with
    # model.text_input: constant (same architecture and budget, the text replaced by a constant).
    controls: list[str] = field(default_factory=lambda: list(CONTROLS))
    text_blind_of: str | None = None  # the variant the text_blind control copies (None: the last variant)
    # What a working method must show; checked at collect (ablations.verdicts, results/expectations.json).
    expectations: list[Expectation] = field(default_factory=list)
    # The metric the report leads with; held-out embedding accuracy answers the study's question directly.
    headline_metric: str = "embed_cosine[step,start=true]"
    # Each frame baseline's settings by its name: the study's top-level `<name>:` sections (`text2video_zero:`,
    # `animatediff:`), split off by `study_spec` and validated against the settings dataclass its registration
    # names (spliter.baselines.FRAME_BASELINES); a section is required exactly when `baselines` lists it.
    frame_settings: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)


@dataclass(frozen=True)
class Trial:
    study: str
    variant: str
    seed: int
    kind: str  # "spliter" | "baseline"
    config: dict  # the resolved configuration (plain data)
    factors: dict  # matrix axis -> level name of this trial (empty for baselines and named variants)

    @property
    def config_hash(self) -> str:
        return stable_hash(hashed_view(self.config))

    @property
    def trial_id(self) -> str:
        return f"{self.variant}-s{self.seed}-{self.config_hash[:8]}"


@dataclass
class Study:
    spec: StudyFile
    path: Path
    trials: list[Trial]

    @property
    def name(self) -> str:
        return self.spec.study

    def trial(self, trial_id: str) -> Trial:
        for trial in self.trials:
            if trial.trial_id == trial_id:
                return trial
        raise KeyError(f"study '{self.name}' has no trial '{trial_id}' (see `spliter-bench plan {self.path}`)")

    @property
    def axes(self) -> dict[str, list[str]]:
        """Each `matrix:` axis with its level names in file order; the first level is the axis's reference."""
        return matrix_axes(self.spec)

    def variant_order(self) -> list[str]:
        order: list[str] = []
        for trial in self.trials:
            if trial.variant not in order:
                order.append(trial.variant)
        return order


def baseline_names() -> tuple[str, ...]:
    """Every baseline a study may list; read from the registry on each call, so a run-time registration counts."""
    return ROLLOUT_BASELINES + FRAME_BASELINES.names()


def stable_hash(data: Any) -> str:
    """sha256 of the canonical JSON of `data`."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def hashed_view(config: dict) -> dict:
    """The resolved config without the keys that cannot change results."""
    view = copy.deepcopy(config)
    view.pop("resources", None)
    return view


def find_study(name_or_path: str | Path) -> Path:
    """A shipped study name (quickstart, synthetic, paper) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise StudyError(f"study file not found: {path}")
        return path
    shipped = STUDIES_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    names = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
    raise StudyError(f"unknown study '{name_or_path}': give a .yaml path or one of {names}")


def load_study(name_or_path: str | Path) -> Study:
    """Read, validate and expand a study; every error names the file and the key path."""
    path = find_study(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StudyError(f"{path}: not valid YAML: {err}") from err
    try:
        spec = study_spec(raw)
        _check_components(spec)
        trials = expand_trials(spec)
        validate_study(spec, trials)
    except StudyError as err:
        raise StudyError(f"{path}: {err}") from None
    return Study(spec=spec, path=path.resolve(), trials=trials)


def study_spec(raw: Any) -> StudyFile:
    """The StudyFile of a study's plain data: the frame baselines' sections go to `frame_settings` (unvalidated)."""
    if not isinstance(raw, dict):
        return from_dict(StudyFile, raw)
    known = {f.name for f in fields(StudyFile) if f.init} | set(FRAME_BASELINES)
    unknown = sorted(set(raw) - known)
    if unknown:  # before from_dict, so the allowed keys include the frame baselines' sections
        raise StudyError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(known))})")
    settings = {name: raw[name] for name in FRAME_BASELINES if name in raw}
    spec = from_dict(StudyFile, {key: value for key, value in raw.items() if key not in settings})
    spec.frame_settings = settings
    return spec


def _check_components(spec: StudyFile) -> None:
    """Names resolve in their registries; the backend's options are validated and completed in place."""
    # Imported here for the same reason as _library_configs (the registries' modules import torch).
    from ablations.sources import SOURCES
    from metrics.families import METRIC_FAMILIES
    from spliter.backends import BACKENDS

    if spec.data.source not in SOURCES:
        raise StudyError(f"data.source: {spec.data.source!r} is not a registered data source "
                         f"(choose one of {list(SOURCES.names())}; docs/extending.md adds one)")
    if spec.backend.name not in BACKENDS:
        raise StudyError(f"backend.name: {spec.backend.name!r} is not a registered backend "
                         f"(choose one of {list(BACKENDS.names())}; docs/extending.md adds one)")
    for i, name in enumerate(spec.metrics.select):
        if name not in METRIC_FAMILIES:
            raise StudyError(f"metrics.select[{i}]: {name!r} is not a registered metric family "
                             f"(choose from {list(METRIC_FAMILIES.names())}; docs/extending.md adds one)")
    options = BACKENDS.get(spec.backend.name).options_class()
    spec.backend.options = to_dict(from_dict(options, spec.backend.options, "backend.options"))
    _check_frame_baselines(spec)
    if spec.data.captions_per_video != "one" and SOURCES.get(spec.data.source).store is not None:
        raise StudyError(f"data.captions_per_video: {spec.data.captions_per_video!r} needs captioned videos; the "
                         f"{spec.data.source!r} source writes its store itself (use 'one')")
    if spec.evaluation is not None and spec.evaluation.captions_per_video != "one":
        raise StudyError("evaluation.captions_per_video: the evaluation set is never trained on; remove the key")


def _check_frame_baselines(spec: StudyFile) -> None:
    """Each frame baseline's section is validated and completed in place; it renders, so the study must score videos.

    Its folders are not looked at here (`plan` works without the weights): `doctor` and the preflight of `run`
    refuse a missing folder before any work, naming it and the fix (ablations.doctor.frame_baseline_checks).
    What its model cannot render (frames, size) is refused here, under the generate key.
    """
    from metrics.families import METRIC_FAMILIES

    for name, entry in FRAME_BASELINES.items():
        section = spec.frame_settings.get(name)
        if name not in spec.baselines:
            if section is not None:
                raise StudyError(f"{name}: settings given but `baselines` does not list {name}; "
                                 "add it to baselines or remove the section")
            continue
        if section is None:
            folders = ", ".join(f"{key}: <local {what}>" for key, what in entry.folders)
            raise StudyError(f"{name}: the baseline needs its section, at least `{name}: {{{folders}}}`")
        settings = from_dict(entry.settings_class(), section, name)
        spec.frame_settings[name] = to_dict(settings)
        gen = spec.generate
        if not gen.enabled:
            raise StudyError(f"baselines: {name} only renders videos; set generate.enabled: true or drop it")
        limits = entry.generate_limits(settings, gen.frames, gen.size)
        if limits:
            raise StudyError(f"generate.{limits[0]}")
        if not any(METRIC_FAMILIES.get(family).needs_videos for family in spec.metrics.select):
            raise StudyError(f"metrics.select: {spec.metrics.select} scores no videos, and {name} has only "
                             "videos (no embeddings); add pixel_motion, clip, fvd, fid or paired")


def matrix_axes(spec: StudyFile) -> dict[str, list[str]]:
    """`matrix:` axis -> its level names in file order (the first level is the axis's reference)."""
    return {axis: list(levels) for axis, levels in spec.matrix.items()}


@dataclass(frozen=True)
class VariantSpec:
    overrides: dict[str, Any]  # dotted key -> value, merged over the shared sections
    factors: dict[str, str]  # matrix axis -> level name (empty for a named variant)


def _variants(spec: StudyFile) -> dict[str, VariantSpec]:
    """Named variants, then the matrix product named by its first axis's level and the non-reference levels."""
    variants = {name: VariantSpec(overrides or {}, {}) for name, overrides in spec.variants.items()}
    axes = list(spec.matrix.items())
    for axis, levels in axes:
        if not levels:
            raise StudyError(f"matrix.{axis}: give at least one level")
    for combo in itertools.product(*[list(levels.items()) for _, levels in axes]) if axes else ():
        factors = {axis: level for (axis, _), (level, _) in zip(axes, combo, strict=True)}
        names = [combo[0][0]] + [
            level for (_, levels), (level, _) in zip(axes[1:], combo[1:], strict=True) if level != next(iter(levels))
        ]
        overrides: dict[str, Any] = {}
        for _, level_overrides in combo:
            overrides.update(level_overrides or {})
        name = "-".join(names)
        if name in variants:
            raise StudyError(f"matrix: the combination {factors} is named {name!r}, which is already a variant")
        variants[name] = VariantSpec(overrides, factors)
    if not variants:
        variants["base"] = VariantSpec({}, {})
    clash = set(variants) & set(baseline_names())
    if clash:
        raise StudyError(f"variants.{sorted(clash)[0]}: this name is reserved for a baseline")
    return {**variants, **_controls(spec, variants)}


def _controls(spec: StudyFile, variants: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
    """The study's controls, each a copy of `text_blind_of` (default: the last variant) with its overrides."""
    for i, name in enumerate(spec.controls):
        if name not in CONTROL_OVERRIDES:
            raise StudyError(f"controls[{i}]: {name!r} is not one of {list(CONTROLS)} (controls: [] opts out)")
        if name in variants:
            raise StudyError(f"variants.{name}: this name is reserved for a control; rename it or set controls: []")
    of = spec.text_blind_of or list(variants)[-1]
    if of not in variants:
        raise StudyError(f"text_blind_of: {of!r} is not a variant of this study (choose one of {list(variants)})")
    return {name: VariantSpec({**variants[of].overrides, **CONTROL_OVERRIDES[name]}, {}) for name in spec.controls}


def _library_configs():
    # Imported when a study is loaded, not when ablations.cli is: these pull in torch (5 s measured on the
    # shared 2-core machine, ~3 s idle), which `spliter-bench --help` and a bad command line never need.
    from spliter.models import SpliterConfig
    from spliter.regimes import RegimeConfig
    from spliter.rollout import RolloutConfig
    from spliter.train import TrainConfig

    return SpliterConfig, TrainConfig, RegimeConfig, RolloutConfig


def _validated_section(cls: type, data: dict, path: str, exclude: tuple[str, ...] = ()) -> dict:
    for key in exclude:
        if key in data:
            raise StudyError(f"{path}.{key}: set by the harness, remove it from the study")
    return to_dict(from_dict(cls, data, path))


def _resolve_spliter(spec: StudyFile, name: str, overrides: dict[str, Any]) -> dict:
    sections = {
        "model": copy.deepcopy(spec.model),
        "train": copy.deepcopy(spec.train),
        "regime": copy.deepcopy(spec.regime),
        "rollout": copy.deepcopy(spec.rollout),
        "generate": to_dict(spec.generate),
        "metrics": to_dict(spec.metrics),
    }
    for dotted, value in overrides.items():
        if dotted.split(".")[0] not in sections:
            raise StudyError(f"variants.{name}.{dotted}: overrides must start with one of {sorted(sections)}")
        set_dotted(sections, dotted, value)
    spliter_cfg, train_cfg, regime_cfg, rollout_cfg = _library_configs()
    # Shared sections are reported by their own key path; a variant's by the variant, then the merged key path.
    at = "" if name == "<shared>" else f"variants.{name} (merged) -> "
    model = _validated_section(spliter_cfg, sections["model"], f"{at}model")
    train = _validated_section(train_cfg, sections["train"], f"{at}train", HARNESS_TRAIN_KEYS)
    for key in HARNESS_TRAIN_KEYS:
        train.pop(key, None)
    regime = _validated_section(regime_cfg, sections["regime"], f"{at}regime")
    rollout = _validated_section(rollout_cfg, sections["rollout"], f"{at}rollout", HARNESS_ROLLOUT_KEYS)
    for key in HARNESS_ROLLOUT_KEYS:
        rollout.pop(key, None)
    generate = to_dict(from_dict(GenerateConfig, sections["generate"], f"{at}generate"))
    _check_starts(generate, f"{at}generate")
    metrics = to_dict(from_dict(MetricsConfig, sections["metrics"], f"{at}metrics"))
    return {"model": model, "train": train, "regime": regime, "rollout": rollout, "generate": generate, "metrics": metrics}


def _check_starts(generate: dict, at: str) -> None:
    """A true start and several modes need prompts that are store videos (they carry a true first frame)."""
    if store_prompt_split(generate["prompts"]) is not None:
        if not generate["start"]:
            raise StudyError(f"{at}.start: give at least one of 'true', 'prior'")
        return
    if generate["start"] != ["prior"]:
        raise StudyError(f"{at}.start: {generate['start']} needs prompts with a true first frame; use "
                         f"generate.prompts: store:test, or start: [prior] with the prompt set {generate['prompts']!r}")
    if generate["modes"]:
        raise StudyError(f"{at}.modes: rendering several modes needs generate.prompts: store:<split>; "
                         f"use generate.mode with the prompt set {generate['prompts']!r}")


def data_section(data: DataConfig) -> dict:
    """The data section of a trial config; captions_per_video only when not "one", so older trials keep their ids."""
    section = to_dict(data)
    if section["captions_per_video"] == "one":
        del section["captions_per_video"]
    return section


def expand_trials(spec: StudyFile) -> list[Trial]:
    """Baselines first (once: they are deterministic), then every variant and control × seed.

    Frame baselines (text2video_zero, animatediff) run once too: their weights are frozen and each video is
    seeded by the generation seed (derive_seed of the study seed, prompt and sample), which no training seed
    changes. Each carries its settings under its own name, so the other trials keep their ids.
    """
    if not spec.seeds:
        raise StudyError("seeds: give at least one training seed")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise StudyError(f"seeds: duplicate seeds in {spec.seeds}")
    for i, name in enumerate(spec.baselines):
        if name not in baseline_names():
            raise StudyError(f"baselines[{i}]: {name!r} is not one of {list(baseline_names())}")
    shared = {
        "data": data_section(spec.data),
        "backend": to_dict(spec.backend),
        "study_seed": spec.study_seed,
        "resources": to_dict(spec.resources),
    }
    if spec.evaluation is not None:  # only when set, so studies without one keep their trial ids
        shared["evaluation"] = data_section(spec.evaluation)
    trials: list[Trial] = []
    base_config = _resolve_spliter(spec, "<shared>", {})
    for name in spec.baselines:
        config = {
            **shared,
            "kind": "baseline",
            "baseline": name,
            "model": {"time_scale": base_config["model"]["time_scale"]},
            # mean_motion is fitted on the trainer's own train videos (its val share left out).
            "train": {"val_fraction": base_config["train"]["val_fraction"]},
            "rollout": base_config["rollout"],
            "generate": base_config["generate"],
            "metrics": base_config["metrics"],
            "deterministic": True,
        }
        if name in FRAME_BASELINES:
            config[name] = spec.frame_settings[name]
        # Deterministic: the same numbers for every training seed, so one trial (no fake seeds).
        trials.append(Trial(spec.study, name, spec.seeds[0], "baseline", {**config, "seed": spec.seeds[0]}, {}))
    variants = _variants(spec)
    for name, variant in variants.items():
        config = _resolve_spliter(spec, name, variant.overrides)
        for seed in spec.seeds:
            full = {**shared, **config, "kind": "spliter", "seed": seed}
            trials.append(Trial(spec.study, name, seed, "spliter", full, dict(variant.factors)))
    _check_expectations(spec, [*spec.baselines, *variants])
    return trials


def _check_expectations(spec: StudyFile, names: list[str]) -> None:
    """Every expectation names trials of this study and a metric pattern that expands."""
    for i, exp in enumerate(spec.expectations):
        at = f"expectations[{i}]"
        for key, name in [("variant", exp.variant), *(("beats", b) for b in exp.beats)]:
            if name not in names:
                raise StudyError(f"{at}.{key}: {name!r} is not a variant, control or baseline of this study "
                                 f"(choose from {names})")
        if not exp.beats:
            raise StudyError(f"{at}.beats: name at least one baseline, control or variant to beat")
        if exp.variant in exp.beats:
            raise StudyError(f"{at}.beats: {exp.variant!r} cannot beat itself")
        if ("{mode}" in exp.metric) != bool(exp.modes):
            raise StudyError(f"{at}: metric {exp.metric!r} and modes {exp.modes} disagree; use '{{mode}}' in the "
                             "metric exactly when modes are given")


def select_trials(trials: list[Trial], only: str | None) -> list[Trial]:
    """Filter by `variant=a|b,seed=0|1` (comma separates keys, '|' alternatives)."""
    if not only:
        return trials
    wanted: dict[str, set[str]] = {}
    for part in only.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in ("variant", "seed"):
            raise StudyError(f"--only {only!r}: use variant=NAME[|NAME],seed=N[|N]")
        wanted[key.strip()] = {v.strip() for v in value.split("|")}
    chosen = [
        t
        for t in trials
        if t.variant in wanted.get("variant", {t.variant}) and str(t.seed) in wanted.get("seed", {str(t.seed)})
    ]
    if not chosen:
        raise StudyError(f"--only {only!r} selects no trial")
    return chosen
