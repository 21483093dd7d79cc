"""Training corpus apart from evaluation: no evaluation video and no prompt's source clip in the training data.

Checked before any work (doctor and the preflight of `run`): the training corpus (`data:`) is listed from its
index, and each of its videos is looked up in the evaluation set (`evaluation:`) and among the source clips of
the prompt set. The whole training listing counts, not only the store's train split: its validation videos
choose the checkpoint, so they are training data too. A prompt's source clip is its `video_id` field when the
prompt file gives one, else its `id` (the MSR-VTT prompt sets are keyed by video id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablations.schema import StudyError, to_dict
from ablations.sources import SOURCES
from ablations.study import Study, load_prompts, prompt_file, store_prompt_split

_NAMED = 10  # how many leaked ids a message lists before "..."


@dataclass(frozen=True)
class LeakageReport:
    """What was compared and what was found; `checked` is False when a side cannot be listed."""

    checked: bool  # both the training corpus and at least one held-out side were listed
    n_training: int  # videos of the training corpus's index
    n_evaluation: int | None  # videos of the evaluation set (None: no evaluation section)
    n_prompt_sources: int  # prompts of the prompt set (each names its source clip)
    in_evaluation: list[str] = field(default_factory=list)  # training videos that are evaluation videos
    in_prompts: list[str] = field(default_factory=list)  # training videos that are a prompt's source clip
    reason: str = ""  # why nothing was compared, when checked is False
    unreadable: bool = False  # a side's index could not be read: disjointness is unproven, the study is refused

    @property
    def clean(self) -> bool:
        return not self.in_evaluation and not self.in_prompts

    def problems(self) -> list[str]:
        """One line per kind of leak, naming the videos and the fix."""
        lines = []
        if self.in_evaluation:
            lines.append(f"{len(self.in_evaluation)} training video(s) are in the evaluation set: "
                         f"{_names(self.in_evaluation)}; train on a corpus without them (e.g. data.split: train)")
        if self.in_prompts:
            lines.append(f"{len(self.in_prompts)} training video(s) are source clips of prompts of generate.prompts: "
                         f"{_names(self.in_prompts)}; remove them from the training corpus or use other prompts")
        return lines

    def summary(self) -> dict[str, Any]:
        """The protocol block's entry (study.json `leakage`)."""
        return {"checked": self.checked, "clean": self.clean, "n_training": self.n_training,
                "n_evaluation": self.n_evaluation, "n_prompt_sources": self.n_prompt_sources,
                "in_evaluation": self.in_evaluation, "in_prompts": self.in_prompts, "reason": self.reason}


def listed_ids(data: dict[str, Any]) -> list[str] | None:
    """Video ids an indexed data section lists (nothing rendered or encoded); None for a source that makes its own."""
    source = SOURCES.get(data["source"])
    if not source.indexed or source.problems(data):
        return None
    return [video.video_id for video in source.videos(data, Path(".")).videos]


def prompt_sources(study: Study) -> list[str]:
    """The source clip of each selected prompt: its `video_id` field, else its id."""
    gen = to_dict(study.spec.generate)
    if not gen["enabled"] or store_prompt_split(gen["prompts"]) is not None:
        return []  # store prompts are the store's held-out videos: apart from training by construction
    prompts, _, _ = load_prompts(gen)
    fields: dict[str, str] = {}
    for line in prompt_file(gen["prompts"]).read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            if "video_id" in item:
                fields[str(item["id"])] = str(item["video_id"])
    return [fields.get(p.id, p.id) for p in prompts]


def check_leakage(study: Study) -> LeakageReport:
    """Compare the training corpus with the evaluation set and the prompts' source clips."""
    try:
        training = listed_ids(to_dict(study.spec.data))
        evaluation = None if study.spec.evaluation is None else listed_ids(to_dict(study.spec.evaluation))
        prompts = prompt_sources(study)
    except (StudyError, ValueError) as err:  # a reader's DatasetError is a ValueError naming the file
        return LeakageReport(False, 0, None, 0, reason=f"could not list a side: {err}", unreadable=True)
    if training is None:
        return LeakageReport(False, 0, None, len(prompts),
                             reason=f"data.source {study.spec.data.source!r} makes its own videos")
    if study.spec.evaluation is not None and evaluation is None:
        return LeakageReport(False, len(training), None, len(prompts), reason="the evaluation set cannot be listed",
                             unreadable=True)
    train_ids = set(training)
    return LeakageReport(
        True, len(train_ids), None if evaluation is None else len(set(evaluation)), len(prompts),
        in_evaluation=sorted(train_ids & set(evaluation or [])), in_prompts=sorted(train_ids & set(prompts)))


def _names(ids: list[str]) -> str:
    return ", ".join(ids[:_NAMED]) + (f", ... ({len(ids) - _NAMED} more)" if len(ids) > _NAMED else "")
