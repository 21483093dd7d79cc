"""Ranges and relations of a study's values, checked when the study loads, before any work.

The schema (ablations.schema) checks keys and types; this module checks what later stages rely on: a
value that passes here does not fail inside encode, train, generate or score for being out of range. Every
error is a StudyError whose message starts with the key path and states the allowed range. Fields are read
with getattr, so sections that gain fields keep validating; a rule whose field is absent is skipped.

Each limit below is the one the code that consumes the value enforces; tests/test_validation.py pins every
constant to that code (the scheduler, the decoders, the I3D protocol), so a change there fails a test here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ablations.prompt_sets import load_prompts
from ablations.schema import StudyError, to_dict
from reports.gifs import GIF_MAX_FPS
from spliter.registry import Registry

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# UnCLIPScheduler.set_timesteps divides by (steps - 1): one prior step is a ZeroDivisionError.
PRIOR_MIN_STEPS = 2
# Decoded images must be a multiple of movq_scale_factor² px (KandinskyV22Pipeline, checked in the backends):
# the tiny MoVQ downsamples 4x (16 px), the real one 8x (64 px). A backend missing here is not size-checked.
DECODER_SIZE_MULTIPLE = {"tiny": 16, "kandinsky22": 64, "kandinsky22-random": 64}
# metrics.fvd.FVDProtocol: I3D halves time three times and space five times.
FVD_MIN_FRAMES = 8
FVD_MIN_RESOLUTION = 32
# Fewest generated videos a set-level metric can be computed from (a covariance needs two samples).
SET_METRIC_MIN_VIDEOS = {"fvd": 2}
# write_shapes_dataset renders even sizes (H.264 yuv420p) of at least 16 px.
SHAPES_MIN_SIZE = 16
# The sources that make their own videos, at these rates when data.fps is null (ablations.stages): the
# length of their clips is known when the study loads.
DEFAULT_SOURCE_FPS = {"shapes": 8.0}
# Sources that are embeddings already: nothing is encoded, so only generation builds the backend.
EMBEDDING_SOURCES = ("synthetic",)
_EPS = 1e-9


def validate_study(spec: Any, trials: Iterable[Any] | None = None) -> None:
    """Raise StudyError (key path first, then the allowed range) for the first value a later stage would reject.

    `spec` is the StudyFile; `trials` (the expanded trials) adds the checks of each variant's merged
    generate and metrics sections, reported as `variants.<name> (merged) -> <key>`.
    """
    _check_names(spec, trials)
    seeds = getattr(spec, "seeds", None)
    if seeds is not None and len(seeds) == 0:
        raise StudyError("seeds: give at least one training seed (e.g. seeds: [0])")
    shared = {
        "generate": _as_mapping(getattr(spec, "generate", None)),
        "metrics": _as_mapping(getattr(spec, "metrics", None)),
    }
    sections = [("", shared)]
    checked = [shared]
    for trial in trials or ():
        config = getattr(trial, "config", {})
        merged = {"generate": config.get("generate") or {}, "metrics": config.get("metrics") or {}}
        if merged not in checked:  # only variants that change these sections need their own pass
            checked.append(merged)
            sections.append((f"variants.{trial.variant} (merged) -> ", merged))
    data = _as_mapping(getattr(spec, "data", None))
    backend = _as_mapping(getattr(spec, "backend", None))
    _check_data(data, any(_embedding_on(s["metrics"]) for _, s in sections))
    if _uses_backend(data, sections):
        _check_backend(backend)
    for at, section in sections:
        _check_generate(section["generate"], section["metrics"], data, backend, at)
    _check_resources(_as_mapping(getattr(spec, "resources", None)))


def safe_name(value: str, key: str) -> str:
    """`value` if it is a plain name ([A-Za-z0-9][A-Za-z0-9._-]*, no '..'), else StudyError naming `key`."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value) or ".." in value:
        raise StudyError(
            f"{key}: {value!r} is not a plain name; use letters, digits, '.', '_' and '-' (starting with a "
            "letter or digit, no '..'): it becomes a folder name"
        )
    return value


def safe_child(root: str | Path, *parts: str) -> Path:
    """root/parts..., resolved; StudyError unless it stays inside root (the run root, e.g. --out)."""
    base = Path(root).resolve()
    for part in parts:
        if Path(part).is_absolute():
            raise StudyError(f"{part}: an absolute path cannot be part of a run path under {base}")
    path = base.joinpath(*parts).resolve()
    if path != base and not path.is_relative_to(base):
        raise StudyError(f"{'/'.join(parts)}: resolves to {path}, outside the run root {base}; use plain names")
    return path


# ------------------------------------------------------------------------------------------------ rules


def _check_names(spec: Any, trials: Iterable[Any] | None) -> None:
    safe_name(getattr(spec, "study", ""), "study")
    for name in getattr(spec, "variants", None) or {}:
        safe_name(name, f"variants.{name}")
    for axis, levels in (getattr(spec, "matrix", None) or {}).items():
        safe_name(axis, f"matrix.{axis}")
        for level in levels or {}:
            safe_name(level, f"matrix.{axis}.{level}")
    for trial in trials or ():
        safe_name(trial.variant, f"variants.{trial.variant}")


def _check_data(data: Mapping[str, Any], needs_val: bool) -> None:
    _number(data, "fps", "data.fps", lambda v: v > 0, "> 0 (frames per second), or null for the video's own rate",
            allow_none=True)
    _integer(data, "frames", "data.frames", 2, "(a video needs two frames to have motion)")
    fraction = _number(data, "val_fraction", "data.val_fraction", lambda v: 0 <= v < 1, "in [0, 1)")
    if needs_val and fraction is not None and fraction <= 0:
        raise StudyError(
            "data.val_fraction: 0 leaves no validation videos, which the embedding family scores; "
            "allowed: (0, 1) while metrics.select has 'embedding'"
        )
    source = _get(data, "source")
    if source in SOURCE_CHECKS:
        SOURCE_CHECKS.get(source)(data, needs_val)


def _check_shapes(data: Mapping[str, Any], needs_val: bool) -> None:
    _integer(data, "n_videos", "data.n_videos", 1)
    size = _integer(data, "size", "data.size", SHAPES_MIN_SIZE, "and even (H.264 needs even frame sizes)")
    if size is not None and size % 2:
        raise StudyError(f"data.size: {size} is odd; allowed: an even number >= {SHAPES_MIN_SIZE}")


def _check_synthetic(data: Mapping[str, Any], needs_val: bool) -> None:
    n_videos = _integer(data, "n_videos", "data.n_videos", 1)
    _integer(data, "dim", "data.dim", 2)
    _integer(data, "text_tokens", "data.text_tokens", 1)
    _number(data, "noise", "data.noise", lambda v: v >= 0, ">= 0")
    fraction = _get(data, "val_fraction")
    if n_videos is None or fraction is None:
        return
    n_val = round(n_videos * fraction)  # write_synthetic_store's split
    if needs_val and n_val < 1:
        raise StudyError(
            f"data.val_fraction: {fraction} of data.n_videos={n_videos} rounds to 0 validation videos; "
            f"allowed: val_fraction >= {0.5 / n_videos:.3g} (or more videos) while metrics.embedding is true"
        )
    if n_videos - n_val < 1:
        raise StudyError(
            f"data.val_fraction: {fraction} of data.n_videos={n_videos} leaves no training video; "
            "allowed: a smaller fraction or more videos"
        )


# The rules of the sources that make their own data (the others read files, which doctor and encode check).
SOURCE_CHECKS: Registry[Callable[[Mapping[str, Any], bool], None]] = Registry("data source check")
SOURCE_CHECKS.register("shapes", _check_shapes)
SOURCE_CHECKS.register("synthetic", _check_synthetic)


def _check_backend(backend: Mapping[str, Any]) -> None:
    _integer(backend, "prior_steps", "backend.prior_steps", PRIOR_MIN_STEPS, "(the prior's UnCLIP scheduler minimum)")
    _integer(backend, "encode_size", "backend.encode_size", 1)


def _check_generate(
    generate: Mapping[str, Any], metrics: Mapping[str, Any], data: Mapping[str, Any], backend: Mapping[str, Any], at: str
) -> None:
    _check_scores_something(metrics, bool(_get(generate, "enabled", True)), at)
    if not _get(generate, "enabled", True):
        return
    _integer(generate, "frames", f"{at}generate.frames", 2, "(temporal metrics compare consecutive frames)")
    _number(generate, "dt", f"{at}generate.dt", lambda v: v > 0, "> 0 (seconds between generated frames)")
    _number(generate, "fps", f"{at}generate.fps", lambda v: 0 < v <= GIF_MAX_FPS,
            f"in (0, {GIF_MAX_FPS:g}] (frames per second of the mp4 and the GIF, whose delays are centiseconds)")
    _integer(generate, "decoder_steps", f"{at}generate.decoder_steps", 1)
    _integer(generate, "samples_per_prompt", f"{at}generate.samples_per_prompt", 1)
    if _get(generate, "max_prompts") is not None:
        _integer(generate, "max_prompts", f"{at}generate.max_prompts", 1, "or null for every prompt")
    size = _integer(generate, "size", f"{at}generate.size", 1)
    multiple = DECODER_SIZE_MULTIPLE.get(_get(backend, "name"))
    if size is not None and multiple and size % multiple:
        raise StudyError(
            f"{at}generate.size: {size} px is not a multiple of {multiple}, which the {_get(backend, 'name')} decoder "
            f"needs; allowed: {multiple}, {2 * multiple}, {3 * multiple}, ... (e.g. {max(multiple, round(size / multiple) * multiple)})"
        )
    if _fvd_on(metrics):
        _check_fvd(_get(metrics, "fvd"), generate, data, at)
    lpips = _lpips_on(metrics)
    if lpips and size is not None:
        _check_lpips_size(_get(lpips, "net", "alex"), size, at)


def _check_scores_something(metrics: Mapping[str, Any], generates: bool, at: str) -> None:
    """metrics.select must name a family that scores something here: one that needs videos only when videos are
    rendered, and "clip" only with an encoder in metrics.clip_encoders (score.score_trial skips the others)."""
    from metrics.families import METRIC_FAMILIES  # imports torch: only when a study is checked

    select = list(_get(metrics, "select") or ())
    if not select:
        raise StudyError(f"{at}metrics.select: is empty, so the study scores nothing; allowed: one or more of "
                         f"{list(METRIC_FAMILIES.names())}")
    needs_videos = {name for name in select if name in METRIC_FAMILIES and METRIC_FAMILIES.get(name).needs_videos}
    if not generates and set(select) <= needs_videos:
        raise StudyError(f"{at}metrics.select: {select} score only generated videos and generate.enabled is false, "
                         "so nothing is left to score; allowed: add 'embedding', or enable generation")
    if select == ["clip"] and not _get(metrics, "clip_encoders", ["backend"]):
        raise StudyError(f"{at}metrics.select: ['clip'] with no metrics.clip_encoders selects nothing to score; "
                         "allowed: an encoder in metrics.clip_encoders (e.g. backend), or another family")


def _check_fvd(fvd: Any, generate: Mapping[str, Any], data: Mapping[str, Any], at: str) -> None:
    frames = _integer(fvd, "frames", f"{at}metrics.fvd.frames", FVD_MIN_FRAMES, "(the I3D network's minimum)")
    _integer(fvd, "resolution", f"{at}metrics.fvd.resolution", FVD_MIN_RESOLUTION, "(the I3D network's minimum)")
    generated = _get(generate, "frames")
    if frames is not None and generated is not None and frames > generated:
        raise StudyError(
            f"{at}metrics.fvd.frames: {frames} is more than the {generated} frames each video has (generate.frames); "
            + (f"allowed: {FVD_MIN_FRAMES} to {generated}" if generated >= FVD_MIN_FRAMES else
               f"the I3D needs at least {FVD_MIN_FRAMES}: raise generate.frames to {FVD_MIN_FRAMES} or more, or "
               "drop fvd from metrics.select")
        )
    videos = _prompt_count(generate) * (_get(generate, "samples_per_prompt") or 1)
    if videos < SET_METRIC_MIN_VIDEOS["fvd"]:
        raise StudyError(
            f"{at}generate.samples_per_prompt: FVD (metrics.fvd.enabled) needs at least {SET_METRIC_MIN_VIDEOS['fvd']} "
            f"generated videos, this study makes {videos} ({_prompt_count(generate)} prompt(s) x "
            f"{_get(generate, 'samples_per_prompt')} sample(s)); raise samples_per_prompt or select more prompts"
        )
    source = _get(data, "source")
    if source in DEFAULT_SOURCE_FPS and generated is not None and _get(generate, "dt"):
        # The reference clips are the source videos sampled like the generated ones (ablations.scoring):
        # generate.frames at 1/generate.dt must fit in the data.frames rendered at data.fps.
        fps = _get(data, "fps") or DEFAULT_SOURCE_FPS[source]
        needed, available = (generated - 1) * _get(generate, "dt"), (_get(data, "frames") - 1) / fps
        if needed > available + _EPS:
            raise StudyError(
                f"{at}generate.frames: {generated} frames {_get(generate, 'dt')} s apart span {needed:.3g} s, longer "
                f"than the {available:.3g} s of the {source} videos the FVD reference is sampled from "
                f"(data.frames={_get(data, 'frames')} at {fps:g} fps); allowed: span <= {available:.3g} s"
            )


def _check_resources(resources: Mapping[str, Any]) -> None:
    _number(resources, "cpu", "resources.cpu", lambda v: v > 0, "> 0")
    _number(resources, "gpu", "resources.gpu", lambda v: v >= 0, ">= 0")
    _integer(resources, "threads", "resources.threads", 1)
    if _get(resources, "workers", 1) != "auto":
        _integer(resources, "workers", "resources.workers", 1, 'or "auto" (one per CPU core)')


# ---------------------------------------------------------------------------------------------- helpers


def _uses_backend(data: Mapping[str, Any], sections: list[tuple[str, dict]]) -> bool:
    """Whether any stage builds the backend: encoding real videos, or generating."""
    return _get(data, "source") not in EMBEDDING_SOURCES or any(_get(s["generate"], "enabled", True) for _, s in sections)


def _embedding_on(metrics: Mapping[str, Any]) -> bool:
    """Embedding metrics are scored: the family is in `metrics.select`."""
    return "embedding" in (_get(metrics, "select") or ())


def _fvd_on(metrics: Mapping[str, Any]) -> bool:
    """FVD is scored: the family is in `metrics.select`."""
    return "fvd" in (_get(metrics, "select") or ())


def _lpips_on(metrics: Mapping[str, Any]) -> Any:
    """The LPIPS section when LPIPS is scored (the paired family selected and metrics.paired.lpips given), else None."""
    if "paired" not in (_get(metrics, "select") or ()):
        return None
    return _get(_get(metrics, "paired"), "lpips")


def _check_lpips_size(net: str, size: int, at: str) -> None:
    from metrics.lpips import BACKBONES  # imports torch: only when a study scores LPIPS

    least = BACKBONES[net].min_size
    if size < least:
        others = ", ".join(f"{name}: >= {spec.min_size}" for name, spec in BACKBONES.items())
        raise StudyError(f"{at}generate.size: {size} px is smaller than the {least} px LPIPS '{net}' "
                         f"(metrics.paired.lpips.net) needs; allowed: size >= {least} ({others})")


def _prompt_count(generate: Mapping[str, Any]) -> int:

    selection = {"prompts": _get(generate, "prompts"), "prompt_tags": _get(generate, "prompt_tags") or [],
                 "max_prompts": _get(generate, "max_prompts")}
    try:
        prompts, _, _ = load_prompts(selection)
    except StudyError as error:
        raise StudyError(f"generate.prompts: {error}") from None
    return len(prompts)


def _as_mapping(section: Any) -> Mapping[str, Any]:
    """A section as plain data (the form trials carry), so shared and merged sections compare equal."""
    if section is None:
        return {}
    if isinstance(section, Mapping):
        return section
    if dataclasses.is_dataclass(section):
        return to_dict(section)
    return {name: getattr(section, name) for name in dir(section) if not name.startswith("_")}


def _get(section: Any, name: str, default: Any = None) -> Any:
    if section is None:
        return default
    if isinstance(section, Mapping):
        return section.get(name, default)
    return getattr(section, name, default)


def _integer(section: Any, name: str, key: str, low: int, why: str = "") -> int | None:
    value = _get(section, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise StudyError(f"{key}: {value!r} is out of range; allowed: an integer >= {low}" + (f" {why}" if why else ""))
    return value


def _number(
    section: Any, name: str, key: str, ok: Callable[[float], bool], allowed: str, allow_none: bool = False
) -> float | None:
    value = _get(section, name)
    if value is None:
        if allow_none or name not in _names(section):
            return None
        raise StudyError(f"{key}: null is out of range; allowed: {allowed}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not ok(value):
        raise StudyError(f"{key}: {value!r} is out of range; allowed: {allowed}")
    return float(value)


def _names(section: Any) -> set[str]:
    return set(section) if isinstance(section, Mapping) else set(dir(section))
