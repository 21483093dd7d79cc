"""Training examples as explicit records: base, back way, +R, +diff and combined (method.md §5; fixes B5/B6/B10/B11/B13/B14).

Every training sample is one frozen :class:`Example` built from ONE video's sorted frame times, so nothing is
ever indexed twice or through a permutation (B5, B6) and chains are written by frame label, not by list position
(B10). Each example says where its start state comes from:

* ``"prior"``: the caption's prior embedding ``u`` stands for the way's base frame (frame 0 on the normal way,
  the last frame on the back way), with the unrotated text;

  ``RegimeConfig.start`` chooses that anchor: ``"prior"`` (``u``, the default), ``"true"`` (the base frame's
  true embedding ``e_base``, what the ``start=true`` metrics start from) or ``"both"`` (a fair coin per example).
  Below, ``u`` means the example's anchor (:attr:`Example.anchor`);
* ``"rotated_prior"`` (+R, method.md §4.4): ``u`` rotated the way the image embedding moved from the base frame
  to ``start_index``: ``u' = rotate(u, e_base, e_start, weight=cos(e_base, u))``, and the text rotated with
  ``rotate(H, u, u', weight=cos(u, t))``;
* ``"prediction"`` (+diff, method.md §4.5): the model's own prediction FOR frame ``start_index``, reached along
  ``chain = (base, k1, ..., start_index)``: the first hop starts from ``u``, every later hop from the previous
  prediction, each with the text rotated ``rotate(H, u, û_prev, weight=cos(u, t))``. The prediction for frame k
  stands for frame k (no "+1" shift, B10).

One step normalisation everywhere (B11): ``step = (t_target - t_start) / time_scale`` in seconds, negative on
the back way. The frame times must be strictly increasing (B13).

Regime components, each with its own fixed budget of ``pairs_per_video`` examples per video (B14), sampled
uniformly without replacement from all valid examples of that component:

============  ======================================================================================
component     valid examples on a way (normal: frames in increasing time; back: in decreasing time)
============  ======================================================================================
base          every frame after the base frame, from ``prior``
rotate        every pair (start j, target i), j and i after the base frame, i after j
diff depth s  every chain of s frames after the base frame, and a target after its last frame;
              s = 1..``diff``
============  ======================================================================================

Components run on the normal way, and also on the back way when ``back`` is on. "combined" is
``RegimeConfig(back=True, rotate=True, diff=k)``. The chain's intermediate states and the text rotations are
computed by the trainer (:mod:`spliter.train`), which also applies ``rotation_power``,
``rotation_convention`` and ``diff_grad``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from spliter.rotation import CONVENTIONS

WAYS: tuple[str, ...] = ("normal", "back")
SOURCES: tuple[str, ...] = ("prior", "rotated_prior", "prediction")
DIFF_GRADS: tuple[str, ...] = ("stop", "backprop")
STARTS: tuple[str, ...] = ("prior", "true", "both")
ANCHORS: tuple[str, ...] = ("prior", "true")


def check_rotation_power(owner: str, power: float) -> None:
    """A rotation power must be a whole number >= 0: the blend weights are cosines, which can be negative."""
    value = float(power) if isinstance(power, int | float) and not isinstance(power, bool) else math.nan
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise ValueError(
            f"{owner}.rotation_power must be a whole number >= 0 (0, 1, 2, ...): the rotation weights are cosines "
            f"and can be negative, where a fractional power has no real value; got {power!r}"
        )


@dataclass
class RegimeConfig:
    """Which regime components make training examples, and how the trainer builds their start states."""

    back: bool = False
    rotate: bool = False
    diff: int = 0
    diff_grad: str = "stop"
    pairs_per_video: int = 16
    rotation_power: float = 1.0
    rotation_convention: str = "column"
    start: str = "prior"  # what stands for the base frame: "prior" u, "true" the frame itself, "both" (per example)

    def __post_init__(self) -> None:
        for name in ("back", "rotate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RegimeConfig.{name} must be a bool, got {getattr(self, name)!r}")
        for name, low in (("diff", 0), ("pairs_per_video", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"RegimeConfig.{name} must be an integer >= {low}, got {value!r}")
        if self.diff_grad not in DIFF_GRADS:
            raise ValueError(f"RegimeConfig.diff_grad={self.diff_grad!r} is not one of {DIFF_GRADS}")
        if self.rotation_convention not in CONVENTIONS:
            raise ValueError(f"RegimeConfig.rotation_convention={self.rotation_convention!r} is not one of {CONVENTIONS}")
        check_rotation_power("RegimeConfig", self.rotation_power)
        if self.start not in STARTS:
            raise ValueError(f"RegimeConfig.start={self.start!r} is not one of {STARTS}")

    @property
    def ways(self) -> tuple[str, ...]:
        return WAYS if self.back else WAYS[:1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegimeConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"RegimeConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class Example:
    """One training sample of one video: predict frame ``target_index`` from the state at ``start_index``.

    ``chain`` is empty unless ``start_source == "prediction"``; then it lists the frames the model steps
    through, base frame first and ``start_index`` last. ``anchor`` is the state that stands for the base frame:
    ``"prior"`` the caption's prior embedding ``u``, ``"true"`` the base frame's own embedding.
    """

    way: str
    start_index: int
    start_source: str
    target_index: int
    step: float
    chain: tuple[int, ...] = ()
    anchor: str = "prior"

    def sort_key(self) -> tuple:
        return (WAYS.index(self.way), self.start_index, self.target_index, SOURCES.index(self.start_source), self.chain,
                ANCHORS.index(self.anchor))


def base_index(way: str, n_frames: int) -> int:
    """The frame the caption's prior embedding stands for on a way: first (normal) or last (back)."""
    return 0 if way == "normal" else n_frames - 1


def way_order(way: str, n_frames: int) -> list[int]:
    """Frames after the base frame on a way, in the way's time order (increasing normal, decreasing back)."""
    return list(range(1, n_frames)) if way == "normal" else list(range(n_frames - 2, -1, -1))


def _unrank_combination(rank: int, n: int, r: int) -> tuple[int, ...]:
    """The ``rank``-th r-subset of range(n) in lexicographic order, as an increasing tuple."""
    out, start = [], 0
    for slots_left in range(r, 0, -1):
        for value in range(start, n):
            count = math.comb(n - value - 1, slots_left - 1)
            if rank < count:
                out.append(value)
                start = value + 1
                break
            rank -= count
    return tuple(out)


def sample_combinations(n: int, r: int, budget: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Up to ``budget`` distinct r-subsets of range(n), uniformly without replacement (all of them if fewer).

    Subsets are drawn by rank, so the cost is O(budget · n) however many subsets exist.
    """
    total = math.comb(n, r) if 0 <= r <= n else 0
    if total == 0:
        return []
    if total <= budget:
        ranks = range(total)
    else:
        ranks = sorted(int(k) for k in rng.choice(total, size=budget, replace=False))
    return [_unrank_combination(k, n, r) for k in ranks]


def _check_times(frame_times: Sequence[float] | np.ndarray) -> np.ndarray:
    times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"frame_times must be a 1-d array of seconds, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise ValueError("frame_times contain NaN/Inf: re-encode the video")
    if times.size > 1 and not (np.diff(times) > 0).all():
        raise ValueError("frame_times must be strictly increasing (sorted, no duplicates): re-encode the video")
    return times


def build_examples(
    frame_times: Sequence[float] | np.ndarray,
    config: RegimeConfig,
    time_scale: float,
    rng: np.random.Generator,
) -> list[Example]:
    """All training examples of one video for a regime, sorted by (way, start, target).

    Each component (base, rotate, diff depth 1..k) on each way draws its ``pairs_per_video`` examples with
    ``rng``, in that fixed order, so the result is a pure function of the inputs and the generator's state.
    """
    if not (math.isfinite(float(time_scale)) and float(time_scale) > 0):
        raise ValueError(f"time_scale must be a positive number of seconds, got {time_scale!r}")
    times = _check_times(frame_times)
    n_frames = int(times.size)
    budget = config.pairs_per_video

    def make(way: str, source: str, chain: tuple[int, ...], target: int) -> Example:
        start = chain[-1]
        step = float((times[target] - times[start]) / time_scale)
        return Example(way, start, source, target, step, chain if source == "prediction" else ())

    examples: list[Example] = []
    for way in config.ways:
        base = base_index(way, n_frames)
        order = way_order(way, n_frames)
        # (source, number of frames after the base frame in the start's chain): the target is one more frame.
        components = [("prior", 0)]
        if config.rotate:
            components.append(("rotated_prior", 1))
        components += [("prediction", depth) for depth in range(1, config.diff + 1)]
        for source, depth in components:
            for combo in sample_combinations(len(order), depth + 1, budget, rng):
                frames = [order[p] for p in combo]
                if source == "rotated_prior":
                    chain = (frames[0],)
                else:
                    chain = (base, *frames[:-1])
                examples.append(make(way, source, chain, frames[-1]))
    if config.start == "both":
        # One fair coin per example (after all components drew theirs), so the epoch size does not change.
        coins = rng.integers(0, 2, len(examples)).tolist()
        examples = [replace(e, anchor=ANCHORS[c]) for e, c in zip(examples, coins, strict=True)]
    elif config.start == "true":
        examples = [replace(e, anchor="true") for e in examples]
    examples.sort(key=Example.sort_key)
    return examples
