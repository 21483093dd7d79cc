"""A throw-away metric family for docs/extending.md's recipe: the mean brightness of each generated video."""

from __future__ import annotations

from typing import Any

import numpy as np

from metrics.registry import MetricSpec, protocol_name

BRIGHTNESS = MetricSpec(protocol_name("brightness", "mean255"), "video", higher_is_better=True, version="1",
                        description="mean pixel value / 255", ranked=False)


def brightness(videos, ctx) -> list[dict[str, Any]]:
    return [BRIGHTNESS.row(float(np.mean(v.frames)) / 255.0, len(v.frames), prompt_id=v.prompt_id,
                           sample_idx=v.sample_idx, gen_seed=v.gen_seed) for v in videos]
