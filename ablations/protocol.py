"""study.json `evaluation_protocol`: training corpus, evaluation set and its size, the FVD protocol and n, whether
LPIPS is computed (and from which backbone file), and the leakage check's result, so a reader can tell what the
quality numbers were measured against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablations.leakage import check_leakage, listed_ids
from ablations.schema import to_dict
from ablations.stages.context import RunContext
from ablations.stages.plan import stage_dir
from ablations.study import Study, load_prompts
from metrics.fvd import FVDProtocol


def _corpus(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("source", "path", "videos", "split", "ids")
    return {key: data.get(key) for key in keys if data.get(key) is not None}


def _store_sizes(ctx: RunContext, study: Study) -> dict[str, int]:
    folder = stage_dir(ctx, study.trials[0], "encode")
    if not (folder / "meta.json").exists():
        return {}
    from spliter.data.store import EmbeddingStore

    store = EmbeddingStore.open(folder / "store")
    return {"n_train": len(store.split("train")), "n_val": len(store.split("val"))}


def _fvd(study: Study) -> dict[str, Any] | None:
    metrics = to_dict(study.spec.metrics)
    if "fvd" not in metrics["select"] or not study.spec.generate.enabled:
        return None
    cfg = metrics["fvd"]
    protocol = FVDProtocol(weights=cfg["protocol"], frames=cfg["frames"], resolution=cfg["resolution"],
                           resize=cfg["resize"], stride=cfg["stride"], n_min=cfg["n_min"])
    gen = to_dict(study.spec.generate)
    name = protocol.name_for("i3d-random0") if cfg["weights"] == "random" else protocol.metric_name
    return {"metric": name, "frames": protocol.frames, "stride": protocol.stride, "resolution": protocol.resolution,
            "n_min": protocol.n_min, "ddof": protocol.ddof,
            "n_generated_per_trial": len(load_prompts(gen)[0]) * gen["samples_per_prompt"]}


LPIPS_ABSENT = "not computed (no weights file given)"


def lpips_protocol(study: Study) -> dict[str, Any] | None:
    """None when the paired family is not scored; else the net and backbone file, or that LPIPS is not computed."""
    metrics = to_dict(study.spec.metrics)
    if "paired" not in metrics["select"] or not study.spec.generate.enabled:
        return None
    cfg = metrics["paired"]["lpips"]
    if cfg is None:
        return {"computed": False, "detail": LPIPS_ABSENT}
    return {"computed": True, "net": cfg["net"], "weights": cfg["weights"],
            "detail": f"{cfg['net']} backbone from {cfg['weights']} (rows lpips[{cfg['net']},...], sha256 in extra)"}


def _skipped_reference(ctx: RunContext) -> int | None:
    """Clips left out of the reference set (the skip lists next to the cached FVD statistics)."""
    lists = sorted((ctx.root / "cache" / "fvd").glob("fvd-ref-*.skipped.json"))
    if not lists:
        return None
    return max(len(json.loads(Path(path).read_text())) for path in lists)


def evaluation_protocol(ctx: RunContext, study: Study) -> dict[str, Any]:
    """The block; sizes come from the encode stage and the indexes, so it is written before scoring too."""
    if study.spec.evaluation is not None:
        ids = listed_ids(to_dict(study.spec.evaluation))
        evaluation = {**_corpus(to_dict(study.spec.evaluation)), "n_videos": None if ids is None else len(ids)}
    else:
        evaluation = {"source": "the training store's val split", "n_videos": _store_sizes(ctx, study).get("n_val")}
    evaluation["n_reference_skipped"] = _skipped_reference(ctx)
    return {
        "training_corpus": {**_corpus(to_dict(study.spec.data)), **_store_sizes(ctx, study)},
        "evaluation_set": evaluation,
        "fvd": _fvd(study),
        "lpips": lpips_protocol(study),
        "leakage": check_leakage(study).summary(),
    }
