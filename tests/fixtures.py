"""Inputs several test modules share: the micro study the CLI tests run (tiny everything) and tiny random
Kandinsky 2.2 weight folders in the hub layout. Import them (`from fixtures import ...`); they write only where
they are told."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ablations.study import STUDIES_DIR

# One seed, one trained variant and the static baseline on 8 shapes videos: the harness's mechanics in seconds.
MICRO: dict[str, Any] = {
    "study": "micro",
    "seeds": [0],
    "data": {"source": "shapes", "n_videos": 8, "frames": 8, "fps": 8.0, "size": 32, "val_fraction": 0.25},
    "backend": {"name": "tiny", "prior_steps": 2},
    "model": {"width": 8, "depth": 1, "heads": 2, "dropout": 0.0},
    "train": {"epochs": 2, "batch_size": 16, "patience": 2},
    "regime": {"pairs_per_video": 4},
    "generate": {"prompts": "motion-v1", "prompt_tags": ["quickstart"], "max_prompts": 2, "frames": 4, "dt": 0.25,
                 "size": 32, "decoder_steps": 1, "fps": 4.0},
    "metrics": {"select": ["embedding", "pixel_motion"]},
    "variants": {"base": {}},
    "baselines": ["static"],
}


def changed(spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `spec` with each change applied: `section__key=value` sets one key (sections are created
    as needed), `section=value` replaces a whole section."""
    spec = copy.deepcopy(spec)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        section = spec
        for key in parents:
            section = section.setdefault(key, {})
        section[last] = copy.deepcopy(value)
    return spec


def micro_study(**changes: Any) -> dict[str, Any]:
    """MICRO with `changed`'s changes."""
    return changed(MICRO, **changes)


def shipped_study(name: str) -> dict[str, Any]:
    """A shipped study file (ablations/studies/<name>.yaml) as a dict."""
    return yaml.safe_load((STUDIES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def micro_quickstart(**changes: Any) -> dict[str, Any]:
    """The shipped quickstart with fewer videos, steps, prompts and variants (same world, backend and metrics),
    with `changed`'s changes."""
    micro = changed(
        shipped_study("quickstart"), study="qsmicro", seeds=[0], data__n_videos=24, data__seed=0, data__split_seed=0, train__budget_steps=60, generate__max_prompts=3,
        matrix={"regime": {"combined": {"regime.back": True, "regime.rotate": True, "regime.diff": 1}}},
        text_blind_of="combined", expectations=[], resources={"workers": 1},
    )  # fmt: skip
    return changed(micro, **changes)


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """A study file (unicode kept as is, so names with markup or accents round-trip)."""
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def finished_run(folder: Path, study: dict[str, Any], *options: str) -> tuple[Path, Path]:
    """`study` written to FOLDER/<name>.yaml and run through the CLI into FOLDER/runs; (study file, runs root)."""
    from ablations.cli import main

    path = write_yaml(folder / f"{study['study']}.yaml", study)
    assert main(["run", str(path), "--out", str(folder / "runs"), *options]) == 0
    return path, folder / "runs"


def study_scores(runs: Path, study: str = "micro") -> pd.DataFrame:
    """RUNS/<study>/results/scores.parquet in a fixed row order, for comparing two runs row by row."""
    frame = pd.read_parquet(runs / study / "results" / "scores.parquet")
    return frame.sort_values(["trial_id", "metric", "prompt_id", "sample_idx", "extra"]).reset_index(drop=True)


def stage_done_times(runs: Path) -> dict[str, int]:
    """Stage folder (relative to `runs`) -> its DONE's mtime: a changed time means the stage ran again (results/
    and report/ are left out: they follow from the stages)."""
    return {str(p.parent.relative_to(runs)): p.stat().st_mtime_ns for p in runs.rglob("DONE")
            if p.parent.name not in ("results", "report")}  # fmt: skip


def kandinsky_folders(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Tiny random Kandinsky 2.2 prior and decoder (the tiny backend's, built from the real diffusers classes)
    saved in the hub layout as root/prior and root/decoder."""
    from spliter.backends.tiny import TinyBackend

    backend = TinyBackend(seed=seed, device="cpu")
    backend.prior_pipeline.save_pretrained(root / "prior")
    backend.decoder_pipeline.save_pretrained(root / "decoder")
    return root / "prior", root / "decoder"


def lpips_backbone(path: Path, net: str = "alex", seed: int = 0, **more: Any) -> Path:
    """torchvision's architecture of LPIPS `net` with seeded random weights, saved as torchvision's files hold it
    (`features.*` keys; the classifier, unused by LPIPS, left out unless given in `more`)."""
    import torch
    import torchvision

    from metrics.lpips import BACKBONES

    torch.manual_seed(seed)
    features = getattr(torchvision.models, BACKBONES[net].architecture)(weights=None).features
    torch.save({**{f"features.{k}": v for k, v in features.state_dict().items()}, **more}, path)
    return path
