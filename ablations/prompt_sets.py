"""Prompt sets: the shipped or given .jsonl files of prompts, selected by a study's generate section."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ablations.schema import StudyError

PROMPTS_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    tags: tuple[str, ...] = ()


def prompt_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".jsonl":
        if not path.exists():
            raise StudyError(f"prompt file not found: {path}")
        return path
    shipped = PROMPTS_DIR / f"{name_or_path}.jsonl"
    if not shipped.exists():
        names = sorted(p.stem for p in PROMPTS_DIR.glob("*.jsonl"))
        raise StudyError(f"unknown prompt set '{name_or_path}': give a .jsonl path or one of {names}")
    return shipped


STORE_PROMPTS = "store:"  # generate.prompts "store:<split>": the store's videos of that split are the prompts


def store_prompt_split(name: str) -> str | None:
    """The split of a "store:<split>" prompt set (its videos are known after encode), else None."""
    if not str(name).startswith(STORE_PROMPTS):
        return None
    split = str(name)[len(STORE_PROMPTS):]
    if split not in ("train", "val", "test", "test_unseen"):
        raise StudyError(f"generate.prompts: {name!r} names no store split; use store:test (or store:val)")
    return split


def load_prompts(generate: dict) -> tuple[list[Prompt], str, str]:
    """Prompts selected by the generate section, the set's name and the sha256 of the whole file.

    A "store:<split>" set has no file: its prompts are the store's videos (the generate stage reads them), so
    the list is empty here and the digest is that of the name.
    """
    if store_prompt_split(generate["prompts"]) is not None:
        return [], generate["prompts"], hashlib.sha256(generate["prompts"].encode()).hexdigest()
    path = prompt_file(generate["prompts"])
    data = path.read_bytes()
    prompts = []
    for line_no, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            prompts.append(Prompt(str(item["id"]), str(item["text"]), tuple(item.get("tags", []))))
        except (json.JSONDecodeError, KeyError) as err:
            raise StudyError(f"{path}:{line_no}: each line needs JSON with 'id' and 'text' ({err})") from err
    tags = set(generate.get("prompt_tags") or [])
    if tags:
        prompts = [p for p in prompts if tags & set(p.tags)]
    if generate.get("max_prompts"):
        prompts = prompts[: generate["max_prompts"]]
    if not prompts:
        raise StudyError(f"{path}: no prompt left after selecting tags {sorted(tags)}")
    return prompts, path.stem, hashlib.sha256(data).hexdigest()
