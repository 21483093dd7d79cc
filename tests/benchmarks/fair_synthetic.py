"""The fair known-answer experiment (issue 10): equal step budgets, test split, text-blind control, both modes.

On the fair synthetic world (spliter.data.synthetic, ``world="fair"``) it trains each variant for several
seeds at the same optimiser-step budget, scores the chosen split (``test`` and ``test_unseen``, or ``val``
while choosing settings) in step and chain mode next to ``static`` and ``mean_motion``, and prints per
variant the mean over seeds of ``embed_cosine`` with a 95 % t-interval. Baselines are deterministic (one
number each, no interval). Run::

    PYTHONPATH=. python tests/benchmarks/fair_synthetic.py --split test --out /tmp/fair

Library-level only (spliter + metrics); the harness's synthetic study runs the same settings (SETTINGS).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metrics.embedding import score_rollouts
from spliter.data.synthetic import write_synthetic_store
from spliter.models import SpliterConfig, load_spliter
from spliter.regimes import RegimeConfig
from spliter.rollout import MeanMotionRollout, RolloutConfig, SpliterRollout, StaticRollout
from spliter.train import TrainConfig, train

# The settings to put into the synthetic study file (chosen on val, see docs).
SETTINGS: dict[str, Any] = {
    "data": {"n_videos": 768, "dim": 32, "text_tokens": 8, "frames": 12, "fps": 4.0, "noise": 0.02,
             "val_fraction": 0.15, "test_fraction": 0.15, "unseen_fraction": 0.2, "prior_noise": 0.1,
             "world": "fair", "seed": 1234},
    "model": {"head": "increment", "width": 64, "depth": 2, "heads": 2, "dropout": 0.0},
    "train": {"budget_steps": 600, "val_every": 50, "batch_size": 64, "lr": 0.003, "patience": None},
    "regime": {"pairs_per_video": 8},
}
COMBINED = {"back": True, "rotate": True, "diff": 1}
# name -> (model overrides, regime overrides)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "combined+sc": ({"step_consistent": True}, COMBINED),
    "combined": ({}, COMBINED),
    "base": ({}, {}),
    "base+sc": ({"step_consistent": True}, {}),
    "text_blind": ({"step_consistent": True, "text_input": "constant"}, COMBINED),
}
METRIC = "embed_cosine[{mode},start={start}]"
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95 % t-interval over seeds (zero width for one value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return float(x.mean()), float(x.mean()), float(x.mean())
    half = T_975[x.size - 1] * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def video_means(rows: list[dict], metric: str) -> float:
    """Mean over videos of a per-video metric."""
    values = [r["value"] for r in rows if r["metric"] == metric]
    if not values:
        raise ValueError(f"no rows for {metric}")
    return float(np.mean(values))


def score(rollouts: dict[str, Any], records: list, shuffled: bool) -> dict[str, float]:
    """{metric name: mean over videos} for step/chain, start true/prior (and shuffled text when asked)."""
    rows = score_rollouts(rollouts, records, start="both", shuffled_text=shuffled, shuffle_seed=0).rows
    names = sorted({r["metric"] for r in rows if r["metric"].startswith("embed_cosine[")})
    return {name: video_means(rows, name) for name in names}


def run(split: str, seeds: list[int], out: Path, variants: list[str], budget: int | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    store = write_synthetic_store(out / "store", **SETTINGS["data"])
    groups = ["val"] if split == "val" else ["test", "test_unseen"]
    records = {g: store.split(g) for g in groups}
    train_cfg = dict(SETTINGS["train"])
    if budget is not None:
        train_cfg["budget_steps"] = budget
    results: dict[str, Any] = {"settings": {**SETTINGS, "train": train_cfg}, "split": split, "seeds": seeds,
                               "sizes": {g: len(r) for g, r in records.items()}, "variants": {}}
    val_fraction = TrainConfig().val_fraction
    baselines = {"static": StaticRollout(), "mean_motion": MeanMotionRollout.fit(store, "train", val_fraction)}
    for name, rollout in baselines.items():
        results["variants"][name] = {g: [score({"step": rollout, "chain": rollout}, r, False)]
                                     for g, r in records.items()}
    for name in variants:
        model_over, regime_over = VARIANTS[name]
        per_group: dict[str, list] = {g: [] for g in groups}
        info = []
        for seed in seeds:
            model_config = SpliterConfig(**{**SETTINGS["model"], **model_over, "dim": store.dim,
                                            "text_tokens": store.text_tokens})
            config = TrainConfig(**train_cfg, seed=seed, device="cpu", progress=False,
                                 regime=RegimeConfig(**{**SETTINGS["regime"], **regime_over}))
            result = train(model_config, config, store, out / "runs" / name / f"seed{seed}")
            info.append({"seed": seed, "steps": result.global_step, "examples": result.examples_seen,
                         "wall_s": round(result.wall_s, 1), "best_step": result.best_step,
                         "best_val_cosine": result.best_val_cosine})
            model = load_spliter(result.checkpoint)
            rollouts = {mode: SpliterRollout(model, RolloutConfig(mode=mode)) for mode in ("step", "chain")}
            for g, r in records.items():
                per_group[g].append(score(rollouts, r, shuffled=True))
            print(name, info[-1], flush=True)
        results["variants"][name] = {**per_group, "training": info}
    (out / f"results-{split}.json").write_text(json.dumps(results, indent=1))
    return results


def table(results: dict) -> str:
    """Markdown: one row per variant, columns (group, mode, start) with mean [low, high] over seeds."""
    groups = list(results["sizes"])
    cols = [(g, m, s) for g in groups for m in ("step", "chain") for s in ("true", "prior", "true,text=shuffled")]
    head = "| variant | " + " | ".join(f"{g} {m} start={s}" for g, m, s in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name, entry in results["variants"].items():
        cells = []
        for g, m, s in cols:
            metric = METRIC.format(mode=m, start=s)
            if metric not in entry[g][0]:
                cells.append("n/a")
                continue
            mean, lo, hi = interval([seed[metric] for seed in entry[g]])
            cells.append(f"{mean:.4f}" if lo == hi else f"{mean:.4f} [{lo:.4f}, {hi:.4f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def merge(parts: list[dict]) -> dict:
    """One result from runs of the same settings on disjoint seeds (baselines are deterministic: kept once)."""
    merged = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        if part["settings"] != merged["settings"] or part["split"] != merged["split"]:
            raise ValueError("merge: the parts were run with different settings or splits")
        merged["seeds"] += part["seeds"]
        for name, entry in part["variants"].items():
            if name in ("static", "mean_motion"):
                if entry != merged["variants"][name]:
                    raise ValueError(f"merge: deterministic baseline {name} differs between parts")
                continue
            target = merged["variants"].setdefault(name, {k: [] for k in entry})
            for key, values in entry.items():
                target[key] = target.get(key, []) + values
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fair_synthetic"))
    parser.add_argument("--merge", type=Path, nargs="+", help="print the table of these results files merged")
    args = parser.parse_args()
    if args.merge:
        print(table(merge([json.loads(p.read_text()) for p in args.merge])))
        return
    started = time.perf_counter()
    results = run(args.split, args.seeds, args.out, args.variants, args.budget)
    print(table(results))
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
