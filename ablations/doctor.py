"""What a study needs that is not here: weights folders, datasets, weight files, a writable output folder."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ablations.schema import to_dict
from ablations.study import LPIPSConfig, Study, StudyError, load_prompts

# Backends whose generate memory spliter.backends.memory models (the real Kandinsky 2.2 architectures).
MEMORY_MODELLED = ("kandinsky22", "kandinsky22-random")


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
    """The training corpus (`data:`) and, when the study names one, the evaluation set (`evaluation:`)."""
    checks = _source_checks("data", to_dict(study.spec.data))
    if study.spec.evaluation is not None:
        checks += _source_checks("evaluation", to_dict(study.spec.evaluation))
    return checks


def _source_checks(section: str, data: dict) -> list[Check]:
    from ablations.sources import SOURCES

    source = SOURCES.get(data["source"])
    if section == "evaluation" and not source.indexed:
        return [Check(section, False, f"evaluation.source: {data['source']!r} makes its own videos; the evaluation "
                                      "set must be real videos from an index (msrvtt-annotation, msrvtt, webvid, "
                                      "tgif, folder)")]
    found = source.problems(data)
    if not found:
        return [Check(section, True, f"{data['source']}: {source.hint}")]
    return [Check(section, False, f"{line.replace('data.', section + '.', 1)} (expected {source.hint})")
            for line in found]


def leakage_checks(study: Study) -> list[Check]:
    """No training video is an evaluation video or a prompt's source clip (ablations.leakage)."""
    from ablations.leakage import check_leakage

    report = check_leakage(study)
    if not report.checked:
        return [Check("leakage", not report.unreadable, f"not checked: {report.reason}", report.unreadable)]
    if report.clean:
        held = f"{report.n_evaluation} evaluation videos and " if report.n_evaluation is not None else ""
        return [Check("leakage", True, f"none: {report.n_training} training videos share no id with "
                                       f"{held}{report.n_prompt_sources} prompt source clips")]
    return [Check("leakage", False, line) for line in report.problems()]


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
        return [Check("backend", True, f"{backend.name}: {how}")] + memory_checks(study)
    return [Check("backend", False, line) for line in missing] + memory_checks(study)


def frame_baseline_checks(study: Study) -> list[Check]:
    """The weights folders of each baseline that renders frames itself (spliter.baselines.FRAME_BASELINES), by name."""
    from spliter.baselines import FRAME_BASELINES

    checks = []
    for name in study.spec.baselines:
        if name not in FRAME_BASELINES:
            continue
        entry = FRAME_BASELINES.get(name)
        settings = entry.settings_class()(**study.spec.frame_settings[name])
        found = entry.problems(settings)
        if found:
            checks += [Check(name, False, line) for line in found]
            continue
        folders = ", ".join(f"{what} {Path(getattr(settings, key)).expanduser()}" for key, what in entry.folders)
        checks.append(Check(name, True, f"{entry.title}: {folders}"))
    return checks


def visible_gpu_bytes() -> tuple[str, int] | None:
    """(name, total bytes) of the first visible CUDA device, or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.name, int(props.total_memory)


def memory_checks(study: Study, gpu: tuple[str, int] | None | bool = True) -> list[Check]:
    """Estimated peak generate memory (spliter.backends.memory) against the visible GPU, or a 16 GB card.

    `gpu`: True looks for the visible device; None means none is visible; a (name, bytes) pair is that card.
    Advisory (the estimate is an upper bound), so a card it does not fit is reported, not refused.
    """
    from spliter.backends.memory import CARD_16GB_BYTES, GIB, estimate_generate_memory

    backend, gen = study.spec.backend, study.spec.generate
    if backend.name not in MEMORY_MODELLED or not gen.enabled:
        return []
    options = backend.options
    estimate = estimate_generate_memory(options.get("dtype") or "float16", options["decode_batch_size"],
                                        options["movq_batch_size"], gen.size)
    card = visible_gpu_bytes() if gpu is True else gpu
    name, capacity = card if card else ("a 16 GB card (no CUDA device visible)", CARD_16GB_BYTES)
    fits = estimate.fits(capacity)
    verdict = "fits" if fits else ("does not fit: lower backend.options.decode_batch_size / movq_batch_size "
                                   "or set attention_slicing: true")
    detail = (f"generate at {gen.size} px: {estimate.describe()}; {name} with {capacity / GIB:.1f} GiB: {verdict}")
    return [Check("memory", fits, detail, False)]


def metric_checks(study: Study) -> list[Check]:
    from metrics.clip import parse_open_clip_spec

    checks = []
    metrics = study.spec.metrics
    for i, encoder in enumerate(metrics.clip_encoders):
        if encoder == "backend":
            continue
        try:
            parsed = parse_open_clip_spec(encoder)
        except ValueError as err:
            checks.append(Check(f"metrics.clip_encoders[{i}]", False, f"{err}, or 'backend'"))
            continue
        weights = parsed.weights
        untagged = _untagged_problem(parsed)
        if untagged:
            checks.append(Check(f"metrics.clip_encoders[{i}]", False, untagged))
            continue
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
    if "paired" in metrics.select:
        checks += lpips_checks(metrics.paired.lpips)
    return checks


def lpips_checks(lpips: LPIPSConfig | None) -> list[Check]:
    """The LPIPS backbone file loads as its net's architecture; whether it is torchvision's published file is
    advisory (its sha256 starts with the 8 hex digits of torchvision's file name)."""
    if lpips is None:
        return [Check("metrics.paired.lpips", True, "LPIPS: not computed (no weights file given)", False)]
    from metrics.fvd import file_sha256
    from metrics.lpips import LPIPSWeightsError, backbone, read_backbone

    try:
        read_backbone(lpips.weights, lpips.net)
    except LPIPSWeightsError as err:
        return [Check("metrics.paired.lpips.weights", False, str(err))]
    path, spec = Path(lpips.weights).expanduser(), backbone(lpips.net)
    digest = file_sha256(path)
    published = digest.startswith(spec.sha256_prefix)
    return [Check("metrics.paired.lpips.weights", True, f"LPIPS '{lpips.net}': {path}, sha256 {digest[:12]}"),
            Check("metrics.paired.lpips.published", published,
                  f"sha256 starts with {spec.sha256_prefix}: torchvision's {spec.file}" if published else
                  f"sha256 {digest[:8]}... is not torchvision's {spec.file} ({spec.sha256_prefix}...): LPIPS numbers "
                  "from it are not comparable with published ones", False)]


def _untagged_problem(spec) -> str | None:
    """A weights file of an architecture with published tags must name its tag (preprocessing, QuickGELU)."""
    if spec.random or spec.tag is not None or spec.model == "tiny-vit":
        return None
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(spec.model)
    if not tags:
        return None
    return (f"openclip:{spec.model}@{spec.weights}: name the pretrained tag the checkpoint was trained as, e.g. "
            f"openclip:{spec.model}/{tags[0]}@{spec.weights} (known: {', '.join(tags)}); its preprocessing and "
            "QuickGELU depend on it")


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
    """Everything doctor and the preflight of `run` check about the study itself (before any work)."""
    data, prompts = data_checks(study), prompt_checks(study)
    # A leak is looked for once the corpora and the prompts can be read.
    leakage = [] if problems(data + prompts) else leakage_checks(study)
    return data + leakage + backend_checks(study) + frame_baseline_checks(study) + metric_checks(study) + prompts


def problems(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.required and not c.ok]
