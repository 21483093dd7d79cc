"""Resources: what a process loads to run stages (backend, stores, rollouts, CLIP encoders, FVD, LPIPS), once.

One Resources object lives as long as its process (the launcher's own process, a pool worker, a Ray actor) and
is reused across trials and stages; `loads` counts what was actually built, and every stage's meta.json
records it with the process id, so a run folder shows that nothing was loaded twice.

Imports are at module level: none of them is heavy (open_clip and each backend's diffusers/transformers are
imported only when an encoder or a backend is built: see metrics.clip and spliter.backends.BACKENDS).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from typing import Any

from ablations.runfolder import stage_status
from ablations.stages.context import RunContext
from ablations.stages.plan import stage_dir, stage_hash
from ablations.study import FRAME_BASELINES, Trial
from metrics.clip import BackendClipEncoder, OpenClipEncoder, parse_open_clip_spec, register_open_clip_config
from metrics.fid import FIDProtocol, FrameFID
from metrics.fvd import FVDProtocol, FVDScorer, I3DFeatureExtractor
from metrics.lpips import FrameLPIPS
from spliter.backends import make_backend, resolve_device
from spliter.data.store import EmbeddingStore
from spliter.models import load_spliter
from spliter.rollout import MeanMotionRollout, RolloutConfig, SpliterRollout, StaticRollout


class Resources:
    """Per-process cache of loaded components, keyed by everything that changes them."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.loads: Counter[str] = Counter()  # kind -> how many were built in this process
        self._cache: dict[tuple, Any] = {}

    def _get(self, kind: str, key: tuple, build: Any) -> Any:
        full = (kind, *key)
        if full not in self._cache:
            self._cache[full] = build()
            self.loads[kind] += 1
        return self._cache[full]

    def facts(self) -> dict[str, Any]:
        """For meta.json: which process ran the stage and what it had loaded by then."""
        return {"pid": os.getpid(), "loads": dict(self.loads)}

    @property
    def device(self) -> Any:
        return resolve_device(self.ctx.device)

    def backend(self, trial: Trial) -> Any:
        """The trial's backend (shared by every trial with the same backend section)."""
        cfg = trial.config["backend"]
        return self._get("backend", (json.dumps(cfg, sort_keys=True),),
                         lambda: make_backend(cfg["name"], device=self.ctx.device, **cfg["options"]))

    def fitted_backend(self, trial: Trial) -> Any:
        """The trial's backend; a retrieval prior (``fit_prior_from_store``) refitted from the store's train split.

        The encode stage fits it on the same pairs before encoding (ablations.stages.encode), so a fresh
        process retrieves exactly what the encode stage's process did.
        """
        backend = self.backend(trial)
        if hasattr(backend, "fit_prior_from_store"):
            store = self.store(trial)
            self._get("prior_fit", (id(backend), str(store.path)),
                      lambda: backend.fit_prior_from_store(store, ("train",)))
        return backend

    def store(self, trial: Trial) -> Any:
        """The trial's embedding store; its encode stage must be done."""
        folder = stage_dir(self.ctx, trial, "encode")
        if stage_status(folder, stage_hash(trial, "encode")) != "done":
            raise RuntimeError(f"trial {trial.trial_id}: the encode stage is not done ({folder}); run it first")
        return self._get("store", (str(folder),), lambda: EmbeddingStore.open(folder / "store"))

    def rollout(self, trial: Trial, mode: str) -> Any:
        """The trial's rollout in `mode`: a trained Spliter (its checkpoint hash attached) or a baseline."""
        return self._get("rollout", (trial.trial_id, stage_hash(trial, "train"), mode),
                         lambda: self._build_rollout(trial, mode))

    def frame_baseline(self, trial: Trial) -> Any:
        """The trial's frame-rendering baseline (spliter.baselines.FRAME_BASELINES), loaded once per settings."""
        name = trial.config["baseline"]
        entry, cfg = FRAME_BASELINES.get(name), trial.config[name]
        return self._get(name, (json.dumps(cfg, sort_keys=True),),
                         lambda: entry.build(entry.settings_class()(**cfg), device=self.ctx.device))

    def _build_rollout(self, trial: Trial, mode: str) -> Any:
        if trial.config.get("baseline") in FRAME_BASELINES:
            raise ValueError(f"trial {trial.trial_id}: {trial.config['baseline']} renders frames directly and has no "
                             "embedding rollout")
        if trial.kind == "baseline":
            if trial.config["baseline"] == "static":
                return StaticRollout()
            return MeanMotionRollout.fit(self.store(trial), split="train",
                                         val_fraction=trial.config["train"]["val_fraction"])
        checkpoint = stage_dir(self.ctx, trial, "train") / "checkpoints" / "best.pt"
        model = load_spliter(checkpoint, map_location=self.device)
        rollout = SpliterRollout(model, RolloutConfig(**{**trial.config["rollout"], "mode": mode}))
        # Recorded next to every generated video, so a video names the exact weights that made it.
        rollout.checkpoint_hash = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        return rollout

    def clip_encoders(self, trial: Trial) -> list[Any]:
        """The encoders of `metrics.clip_encoders`: "backend" or "openclip:<model>[/<tag>]@<weights file|random>"."""
        return [self._clip_encoder(trial, spec) for spec in trial.config["metrics"]["clip_encoders"]]

    def _clip_encoder(self, trial: Trial, spec: str) -> Any:
        if spec == "backend":
            return BackendClipEncoder(self.backend(trial))
        parsed = parse_open_clip_spec(spec)

        def build() -> Any:
            if parsed.model == "tiny-vit":  # the test architecture is not one of open_clip's own configs
                register_open_clip_config("tiny-vit")
            # Random weights stay on the CPU: smoke studies only, and the same numbers on every machine.
            return OpenClipEncoder.from_spec(parsed, device="cpu" if parsed.random else str(self.device), seed=0)

        return self._get("openclip", (spec,), build)

    def fvd_scorer(self, trial: Trial) -> Any:
        """metrics.fvd.FVDScorer for `metrics.fvd` (weights file or "random")."""
        cfg = trial.config["metrics"]["fvd"]

        def build() -> Any:
            protocol = FVDProtocol(weights=cfg["protocol"], frames=cfg["frames"], resolution=cfg["resolution"],
                                   resize=cfg["resize"], stride=cfg["stride"], n_min=cfg["n_min"])
            if cfg["weights"] == "random":
                extractor = I3DFeatureExtractor.random(seed=0, protocol=protocol, device=self.device)
            else:
                extractor = I3DFeatureExtractor.from_file(cfg["weights"], protocol=protocol, device=self.device)
            return FVDScorer(extractor, protocol)

        return self._get("fvd", (json.dumps(cfg, sort_keys=True),), build)

    def frame_fid(self, trial: Trial) -> Any:
        """metrics.fid.FrameFID for `metrics.fid` (Inception weights file or "random")."""
        cfg = trial.config["metrics"]["fid"]
        protocol = FIDProtocol(frames=cfg["frames"])
        if cfg["weights"] == "random":
            return self._get("fid", ("random", cfg["frames"]), lambda: FrameFID.random(0, protocol, device=self.device))
        return self._get("fid", (cfg["weights"], cfg["frames"]),
                         lambda: FrameFID.from_weights(cfg["weights"], protocol, device=self.device))

    def lpips(self, trial: Trial) -> Any | None:
        """metrics.lpips.FrameLPIPS for `metrics.paired.lpips` (a local backbone file), None when not given."""
        cfg = (trial.config["metrics"].get("paired") or {}).get("lpips")
        if cfg is None:
            return None
        return self._get("lpips", (cfg["net"], cfg["weights"]),
                         lambda: FrameLPIPS.from_file(cfg["weights"], cfg["net"], device=self.device))
