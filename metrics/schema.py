"""The results schema (docs/results.md) in one place, with no dependencies: what collect() writes, what the
metrics' rows hold and what the report reads. metrics, ablations and reports all import it from here."""

from __future__ import annotations

RESULTS_VERSION = 4  # bump when the files of results/ change shape (collect() then rewrites them)
LEVELS: tuple[str, ...] = ("video", "set")

# Who a row belongs to; the harness adds these to each metric row.
IDENTITY_COLUMNS: tuple[str, ...] = ("study", "trial_id", "variant", "seed")
# A metric row as metrics.registry.MetricSpec.row makes it, with its pandas dtype in scores.parquet.
ROW_DTYPES: dict[str, str] = {
    "metric": "string", "metric_version": "string", "level": "string", "higher_is_better": "bool",
    "value": "float64", "n": "int64", "reliable": "bool", "prompt_id": "string", "sample_idx": "Int64",
    "gen_seed": "Int64", "extra": "string",
}  # fmt: skip
ROW_COLUMNS: tuple[str, ...] = tuple(ROW_DTYPES)
SCORE_DTYPES: dict[str, str] = {"study": "string", "trial_id": "string", "variant": "string", "seed": "int64",
                                **ROW_DTYPES}
SCORE_COLUMNS: tuple[str, ...] = tuple(SCORE_DTYPES)
RUN_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "stage", "status", "config_hash", "config_json", "prompts_sha256", "git_sha", "git_dirty",
    "python", "torch", "diffusers", "transformers", "open_clip", "device", "gpu_name", "dtype", "deterministic",
    "started_at", "finished_at", "wall_s", "argv", "steps", "examples", "train_wall_s",
)  # fmt: skip
CURVE_COLUMNS: tuple[str, ...] = (*IDENTITY_COLUMNS, "epoch", "split", "metric", "value")
VIDEO_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "prompt_id", "prompt", "sample_idx", "gen_seed", "gif", "mp4", "frames", "size", "fps",
    "start", "mode", "truth_gif",  # store prompts only (else empty): how it was made, the true video's GIF
)  # fmt: skip
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "scores": SCORE_COLUMNS, "runs": RUN_COLUMNS, "curves": CURVE_COLUMNS, "videos": VIDEO_COLUMNS,
}  # fmt: skip
RESULT_FILES: tuple[str, ...] = (*(f"{name}.parquet" for name in TABLE_COLUMNS), "study.json")
# Keys of study.json the report cannot do without.
STUDY_KEYS: tuple[str, ...] = ("study", "seeds", "variant_order", "baselines", "axes", "variants")
