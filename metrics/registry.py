"""Metric specifications: a name that carries the protocol, a level, a direction, a code version.

A metric name is ``base[param,param,...]``, e.g. ``clip_temporal_consecutive[openclip:ViT-L-14]`` or
``fvd[i3d-videogpt,16f,224]``. Two numbers may share a name only if every protocol parameter that can
change them is equal, so names are built by the helpers below from the parameters, never by hand.

Which metric families a study computes is chosen by name in ``metrics.families.METRIC_FAMILIES``; each
family builds its rows with the spec builders below.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from metrics.schema import LEVELS, ROW_COLUMNS  # noqa: F401 - ROW_COLUMNS: the columns a row holds

Level = Literal["video", "set"]

CONSISTENCY_MODES: tuple[str, ...] = ("consecutive", "first", "all_pairs", "vbench")
EMBEDDING_STARTS: tuple[str, ...] = ("true", "prior")

# Code versions: bump one when the computation behind the metric changes.
CLIP_VERSION = "1"
MOTION_VERSION = "1"
EMBEDDING_VERSION = "1"
FRECHET_VERSION = "1"

_BASE = re.compile(r"^[a-z][a-z0-9_]*$")
_FORBIDDEN_IN_PARAM = set("[],\n")


class MetricError(ValueError):
    """A metric was defined or used inconsistently."""


class NonFiniteScore(MetricError):
    """A metric produced NaN or Inf; never stored."""


def protocol_name(base: str, *params: object) -> str:
    """``base[p1,p2,...]`` from a lowercase base and the protocol parameters (order matters)."""
    if not _BASE.match(base):
        raise MetricError(f"metric base name {base!r} must be lowercase letters, digits and '_'")
    if not params:
        return base
    rendered = []
    for p in params:
        text = str(p)
        if not text or _FORBIDDEN_IN_PARAM & set(text):
            raise MetricError(
                f"protocol parameter {text!r} of metric {base!r} is empty or holds one of '[],'"
            )
        rendered.append(text)
    return f"{base}[{','.join(rendered)}]"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``row(value, n, ...)`` turns a measurement into a validated score row."""

    name: str
    level: Level
    higher_is_better: bool
    version: str
    description: str = ""
    # False for counterweights (motion): read next to other metrics, never ranked. Written into the row's
    # extra as {"ranked": false}, so reports do not mark a "best" (most moving) variant.
    ranked: bool = True

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise MetricError(f"metric {self.name!r}: level must be one of {LEVELS}, got {self.level!r}")
        if not self.name or not self.version:
            raise MetricError(f"metric {self.name!r}: name and version must be non-empty")

    def row(
        self,
        value: float,
        n: int,
        *,
        prompt_id: str | None = None,
        sample_idx: int | None = None,
        gen_seed: int | None = None,
        reliable: bool = True,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A score row with the columns of ``ROW_COLUMNS``; raises on NaN/Inf or inconsistent ids."""
        if isinstance(value, bool):
            raise MetricError(f"metric {self.name!r}: value must be a number, got a bool")
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise MetricError(f"metric {self.name!r}: value {value!r} is not a number") from err
        if not math.isfinite(number):
            raise NonFiniteScore(f"metric {self.name!r}: value is {number} (NaN/Inf scores are never stored)")
        if isinstance(n, bool) or int(n) != n or n < 1:
            raise MetricError(f"metric {self.name!r}: n must be a positive integer, got {n!r}")
        if self.level == "set" and (prompt_id is not None or sample_idx is not None):
            raise MetricError(f"metric {self.name!r} is set-level: prompt_id and sample_idx must be None")
        for label, ident in (("sample_idx", sample_idx), ("gen_seed", gen_seed)):
            if ident is not None and (isinstance(ident, bool) or int(ident) != ident):
                raise MetricError(f"metric {self.name!r}: {label} must be an integer, got {ident!r}")
        try:
            extra_json = json.dumps({**(extra or {}), **({} if self.ranked else {"ranked": False})},
                                    sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise MetricError(f"metric {self.name!r}: extra must be JSON with finite numbers: {err}") from err
        return {
            "metric": self.name,
            "metric_version": self.version,
            "level": self.level,
            "higher_is_better": bool(self.higher_is_better),
            "value": number,
            "n": int(n),
            "reliable": bool(reliable),
            "prompt_id": None if prompt_id is None else str(prompt_id),
            "sample_idx": None if sample_idx is None else int(sample_idx),
            "gen_seed": None if gen_seed is None else int(gen_seed),
            "extra": extra_json,
        }


# --- spec builders: one per metric family, parameters in the name -------------------------------


def clip_consistency_spec(mode: str, encoder: str) -> MetricSpec:
    """Temporal CLIP consistency (raw cosine in [-1, 1]) of one video under ``mode``."""
    if mode not in CONSISTENCY_MODES:
        raise MetricError(f"consistency mode must be one of {CONSISTENCY_MODES}, got {mode!r}")
    return MetricSpec(
        protocol_name(f"clip_temporal_{mode}", encoder),
        "video",
        True,
        CLIP_VERSION,
        f"mean cosine between frame embeddings ({mode}); read next to a motion metric",
    )


def clip_alignment_spec(encoder: str) -> MetricSpec:
    """Text alignment: mean over frames of 100 * cos(frame, caption)."""
    return MetricSpec(
        protocol_name("clip_text_alignment", encoder),
        "video",
        True,
        CLIP_VERSION,
        "mean over frames of 100*cos(frame embedding, caption embedding), not clamped",
    )


def embedding_motion_spec(encoder: str) -> MetricSpec:
    """Mean chord length between consecutive normalised frame embeddings (0 = still)."""
    return MetricSpec(
        protocol_name("embedding_motion", encoder),
        "video",
        True,
        MOTION_VERSION,
        "mean L2 distance between consecutive unit frame embeddings in [0, 2]; a counterweight, not quality",
        ranked=False,
    )


def pixel_motion_spec() -> MetricSpec:
    """Mean absolute difference of consecutive frames in 0-255 units (0 = still)."""
    return MetricSpec(
        protocol_name("pixel_motion", "mad255"),
        "video",
        True,
        MOTION_VERSION,
        "mean absolute difference of consecutive uint8 frames, 0-255 units; a counterweight, not quality",
        ranked=False,
    )


def _embedding_params(mode: str, start: str) -> tuple[str, str]:
    if start not in EMBEDDING_STARTS:
        raise MetricError(f"embedding start must be one of {EMBEDDING_STARTS}, got {start!r}")
    return mode, f"start={start}"


def embedding_specs(mode: str, start: str = "true") -> dict[str, MetricSpec]:
    """Held-out embedding metrics for one rollout ``mode`` and start policy, keyed by kind.

    Kinds: ``cosine_h`` / ``disp_cosine_h`` (one row per horizon, horizon in extra),
    ``cosine`` / ``disp_cosine`` (per-video mean over horizons), ``error_growth`` (slope of 1-cos
    per second of horizon, lower is better).
    """
    params = _embedding_params(mode, start)
    return {
        "cosine_h": MetricSpec(
            protocol_name("embed_cosine_h", *params),
            "video",
            True,
            EMBEDDING_VERSION,
            "cos(predicted, true) frame embedding at one horizon",
        ),
        "disp_cosine_h": MetricSpec(
            protocol_name("embed_disp_cosine_h", *params),
            "video",
            True,
            EMBEDDING_VERSION,
            "cos(pred - start, true - true_0) at one horizon; a prediction that does not move scores 0",
        ),
        "cosine": MetricSpec(
            protocol_name("embed_cosine", *params),
            "video",
            True,
            EMBEDDING_VERSION,
            "mean over horizons of cos(predicted, true)",
        ),
        "disp_cosine": MetricSpec(
            protocol_name("embed_disp_cosine", *params),
            "video",
            True,
            EMBEDDING_VERSION,
            "mean over horizons of the displacement cosine",
        ),
        "error_growth": MetricSpec(
            protocol_name("embed_error_growth", *params),
            "video",
            False,
            EMBEDDING_VERSION,
            "least-squares slope of (1 - cos) against horizon time in seconds",
        ),
    }


def frechet_spec(base: str, *params: object, description: str = "") -> MetricSpec:
    """A set-level Fréchet distance, e.g. ``frechet_spec("fvd", "i3d-videogpt", "16f", 224)``."""
    return MetricSpec(
        protocol_name(base, *params),
        "set",
        False,
        FRECHET_VERSION,
        description or "Fréchet distance between Gaussian fits of generated and reference features",
    )


def fvd_spec(extractor: str, frames: int, size: int) -> MetricSpec:
    """``fvd[<extractor>,<frames>f,<size>]``: FVD with its protocol in the name."""
    return frechet_spec("fvd", extractor, f"{int(frames)}f", int(size), description="Fréchet video distance")


def fid_spec(extractor: str, size: int) -> MetricSpec:
    """``fid[<extractor>,<size>]``: per-frame FID with its protocol in the name."""
    return frechet_spec("fid", extractor, int(size), description="Fréchet distance of per-frame features")
