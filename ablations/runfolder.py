"""The run folder: where each stage writes, how it is marked done, locked and described."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from spliter.atomic import write_atomic

__all__ = ["write_atomic"]  # the one atomic write (spliter.atomic), re-exported for the harness
LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "torchmetrics", "numpy", "pandas")


class StageLocked(RuntimeError):
    """Another process holds this stage's lock for longer than we are willing to wait."""


@dataclass(frozen=True)
class RunFolder:
    root: Path  # ROOT/<study>

    def stage_dir(self, trial_id: str, stage: str) -> Path:
        return self.root / "trials" / trial_id / stage

    def encode_dir(self, data_hash: str) -> Path:
        return self.root / "encode" / data_hash[:8]

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def report(self) -> Path:
        return self.root / "report"


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def stage_status(stage_dir: Path, config_hash: str) -> str:
    """done | stale | pending."""
    done = stage_dir / "DONE"
    if not done.exists():
        return "pending"
    return "done" if done.read_text().strip() == config_hash else "stale"


@contextlib.contextmanager
def stage_lock(stage_dir: Path, wait_s: float) -> Iterator[None]:
    """One process per stage; the second waits up to wait_s, then stops with a clear message."""
    stage_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(stage_dir) + ".lock")
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        raise StageLocked(
            f"{stage_dir} is being worked on by another process (lock {lock.lock_file}); "
            f"wait for it to finish, or remove the lock file if that process is gone"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def staging(stage_dir: Path) -> Iterator[Path]:
    """A fresh temporary folder that replaces stage_dir only when the block completes."""
    tmp = stage_dir.with_name(f"{stage_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if stage_dir.exists():
        old = stage_dir.with_name(f"{stage_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(stage_dir, old)
        shutil.rmtree(old)
    os.replace(tmp, stage_dir)


def mark_done(stage_dir: Path, config_hash: str) -> None:
    write_atomic(stage_dir / "DONE", config_hash + "\n")


# The DONE file's manifest: every output's size, mtime and sha256, and the identities of the stage's inputs.
MANIFEST = "MANIFEST.json"
# Not outputs: the markers themselves, and meta.json, whose timestamps differ between identical runs.
_NOT_OUTPUTS = ("DONE", MANIFEST, "meta.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _outputs(stage_dir: Path) -> list[Path]:
    return sorted(p for p in stage_dir.rglob("*") if p.is_file() and p.relative_to(stage_dir).as_posix() not in _NOT_OUTPUTS)


def write_manifest(stage_dir: Path, inputs: dict[str, str]) -> str:
    """Record each output (size, mtime, sha256) and the inputs' identities; returns the outputs' identity.

    The identity hashes names and contents only (no times), so a stage redone to the same bytes keeps it and
    the stages after it stay done.
    """
    files = {}
    for path in _outputs(stage_dir):
        stat = path.stat()
        files[path.relative_to(stage_dir).as_posix()] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                                          "sha256": _sha256(path)}
    identity = hashlib.sha256(json.dumps({k: v["sha256"] for k, v in files.items()}, sort_keys=True).encode())
    write_json(stage_dir / MANIFEST, {"files": files, "inputs": inputs, "identity": identity.hexdigest()})
    return identity.hexdigest()


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest, or None for a stage finished before manifests were written (trusted as it is)."""
    path = stage_dir / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
            return manifest
    except (OSError, ValueError):
        pass
    return {"files": {}, "inputs": {}, "identity": None, "unreadable": True}


def output_problem(stage_dir: Path, manifest: dict) -> str | None:
    """Why the outputs no longer match the manifest (missing, resized or changed file), or None.

    A file whose size and mtime are unchanged is taken as it is; otherwise its sha256 decides, so a copied
    run folder (new mtimes, same bytes) stays done and a file changed in place (same size) does not.
    """
    if manifest.get("unreadable"):
        return f"{stage_dir / MANIFEST} is unreadable"
    for name, recorded in sorted(manifest["files"].items()):
        path = stage_dir / name
        if not path.is_file():
            return f"{path} is missing"
        stat = path.stat()
        if stat.st_size != recorded["size"]:
            return f"{path} has {stat.st_size} bytes, {recorded['size']} when the stage finished"
        if stat.st_mtime_ns != recorded["mtime_ns"] and _sha256(path) != recorded["sha256"]:
            return f"{path} changed after the stage finished"
    return None


def write_config(stage_dir: Path, config: dict) -> None:
    write_atomic(stage_dir / "config.yaml", yaml.safe_dump(config, sort_keys=True))


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """(sha, dirty) of the checkout the package runs from, or (None, None) outside git."""
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_facts(device: str) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    return {
        "device": device,
        "gpu_name": gpu,
        "dtype": "float16 (frozen models), float32 (training)" if device.startswith("cuda") else "float32",
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "threads": torch.get_num_threads(),
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if torch.cuda.is_available() else False,
    }


def stage_meta(*, trial: Any, stage: str, config_hash: str, device: str, started: float, extra: dict | None = None) -> dict:
    sha, dirty = git_state()
    now = time.time()
    return {
        "study": trial.study,
        "trial_id": trial.trial_id,
        "variant": trial.variant,
        "seed": trial.seed,
        "stage": stage,
        "config_hash": config_hash,
        "git_sha": sha,
        "git_dirty": dirty,
        "versions": library_versions(),
        **device_facts(device),
        "argv": sys.argv,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "finished_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "wall_s": round(now - started, 3),
        **(extra or {}),
    }
