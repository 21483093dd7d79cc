"""What a study needs that is not here: weights folders, datasets, weight files, a writable output folder."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ablations.schema import to_dict
from ablations.study import Study, StudyError, load_prompts


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _path_check(name: str, path: str | None, what: str, hint: str) -> Check:
    if not path:
        return Check(name, False, f"no {what} given in the study; {hint}")
    p = Path(path).expanduser()
    return Check(name, p.exists(), str(p) if p.exists() else f"missing {what}: {p}; {hint}")


def data_checks(study: Study) -> list[Check]:
    from ablations.sources import SOURCES

    data = to_dict(study.spec.data)
    source = SOURCES.get(data["source"])
    found = source.problems(data)
    if not found:
        return [Check("data", True, f"{data['source']}: {source.hint}")]
    return [Check("data", False, f"{line} (expected {source.hint})") for line in found]


def backend_checks(study: Study) -> list[Check]:
    from ablations.sources import SOURCES
    from spliter.backends import BACKENDS, missing_weights

    backend = study.spec.backend
    if not SOURCES.get(study.spec.data.source).needs_backend and not study.spec.generate.enabled:
        return [Check("backend", True, "not used: the data source writes its own store and nothing is rendered")]
    spec = BACKENDS.get(backend.name)
    missing = missing_weights(backend.name, **backend.options)
    if not missing:
        how = "random weights built from a seed, nothing to load" if spec.random_weights else "weights found"
        return [Check("backend", True, f"{backend.name}: {how}")]
    return [Check("backend", False, line) for line in missing]


def metric_checks(study: Study) -> list[Check]:
    checks = []
    metrics = study.spec.metrics
    for i, encoder in enumerate(metrics.clip_encoders):
        if encoder == "backend":
            continue
        if not encoder.startswith("openclip:") or "@" not in encoder:
            checks.append(Check(f"metrics.clip_encoders[{i}]", False,
                                f"{encoder!r}: use 'backend' or 'openclip:<model>@<weights file>'"))
            continue
        weights = encoder.split("@", 1)[1]
        if weights == "random":
            checks.append(Check(f"metrics.clip_encoders[{i}]", True, f"{encoder}: random weights (smoke studies only)"))
        else:
            checks.append(_path_check(f"metrics.clip_encoders[{i}]", weights, "open_clip weights file",
                                      "save an open_clip checkpoint there (open_clip_pytorch_model.bin or .safetensors)"))
    fvd = metrics.fvd
    if "fvd" in metrics.select and fvd.weights != "random":
        checks.append(_path_check("metrics.fvd.weights", fvd.weights, "I3D weights file",
                                  "i3d_pretrained_400.pt (VideoGPT/TATS) or i3d_torchscript.pt (StyleGAN-V), see docs"))
    if "fid" in metrics.select and metrics.fid.weights != "random":
        checks.append(_path_check("metrics.fid.weights", metrics.fid.weights, "Inception weights file",
                                  "weights-inception-2015-12-05-6726825d.pth from torch-fidelity's releases"))
    return checks


def prompt_checks(study: Study) -> list[Check]:
    gen = study.spec.generate
    if not gen.enabled:
        return []
    try:
        prompts, name, digest = load_prompts({"prompts": gen.prompts, "prompt_tags": gen.prompt_tags,
                                              "max_prompts": gen.max_prompts})
    except StudyError as err:
        return [Check("generate.prompts", False, str(err))]
    return [Check("generate.prompts", True, f"{name}: {len(prompts)} prompts, sha256 {digest[:12]}")]


def environment_checks(out_root: Path, device: str) -> list[Check]:
    import torch

    checks = [Check("torch", True, f"{torch.__version__}, cuda available: {torch.cuda.is_available()}", False)]
    if device.startswith("cuda") and not torch.cuda.is_available():
        checks.append(Check("device", False, f"--device {device} asked for, but no CUDA device is visible"))
    root = out_root.resolve()
    probe = root if root.exists() else next(p for p in root.parents if p.exists())
    checks.append(Check("output", os.access(probe, os.W_OK), f"{root} ({'writable' if os.access(probe, os.W_OK) else 'not writable'})"))
    checks.append(Check("hf offline", os.environ.get("HF_HUB_OFFLINE") == "1",
                        "HF_HUB_OFFLINE=1" if os.environ.get("HF_HUB_OFFLINE") == "1" else "set HF_HUB_OFFLINE=1", False))
    ray = importlib.util.find_spec("ray") is not None
    checks.append(Check("ray", ray, "installed" if ray else "not installed (only for --launcher ray: pip install -e '.[ray]')", False))
    return checks


def study_checks(study: Study) -> list[Check]:
    return data_checks(study) + backend_checks(study) + metric_checks(study) + prompt_checks(study)


def problems(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.required and not c.ok]
