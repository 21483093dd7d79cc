"""SOURCES: the registry of data sources a study's `data.source` names (one registration per source).

A source either lists captioned videos that the encode stage runs through the backend (`videos`), or writes
an embedding store itself without any backend (`store`, e.g. the synthetic trajectories). `problems` is
what `doctor` and the preflight of `run` report, one line per problem naming the key and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spliter.data.datasets import read_folder, read_msrvtt, read_msrvtt_annotation, read_tgif, read_webvid
from spliter.data.shapes import CAPTION_COLUMNS as SHAPES_COLUMNS
from spliter.data.shapes import write_shapes_dataset
from spliter.data.synthetic import write_synthetic_store
from spliter.registry import Registry


@dataclass(frozen=True)
class DataSource:
    """One data source; exactly one of `videos` and `store` is given."""

    hint: str  # what the source reads, for doctor's messages
    # (data section, work folder) -> spliter.data.datasets.DatasetListing; may render files into the folder
    videos: Callable[[dict[str, Any], Path], Any] | None = None
    # (data section, store path) -> an EmbeddingStore written without a backend
    store: Callable[[dict[str, Any], Path], Any] | None = None
    # data section -> one line per problem (a missing file, an unset key); empty when the source can be read
    problems: Callable[[dict[str, Any]], list[str]] = lambda data: []
    note: str = ""  # what the report says about numbers measured on this source (study.json data.note)
    # True when `videos` only reads an index and the files (renders nothing): ablations.leakage may list the
    # videos before any work; False for sources that make their own (their ids cannot name a real video).
    indexed: bool = False

    def __post_init__(self) -> None:
        if (self.videos is None) == (self.store is None):
            raise ValueError("a DataSource gives exactly one of videos= (captioned videos) and store= (a store)")

    @property
    def needs_backend(self) -> bool:
        """Videos are encoded by the study's backend; a store source is written without one."""
        return self.videos is not None


SOURCES: Registry[DataSource] = Registry("data source")


def required_paths(*keys: str) -> Callable[[dict[str, Any]], list[str]]:
    """A `problems` check: each of the data section's `keys` is set and names an existing path."""

    def problems(data: dict[str, Any]) -> list[str]:
        found = []
        for key in keys:
            value = data.get(key)
            if not value:
                found.append(f"data.{key}: not set; the {data['source']} source reads it")
            elif not Path(value).expanduser().exists():
                found.append(f"data.{key}: {Path(value).expanduser()} does not exist")
        return found

    return problems


def _shapes(data: dict[str, Any], work: Path) -> Any:
    root = work / "source"
    # Deterministic from the data section: rendered once, then read again (the FVD reference clips).
    if not (root / "captions.csv").exists():
        world = {key: tuple(data[key]) for key in ("motions", "backgrounds", "start_box") if data.get(key)}
        write_shapes_dataset(root, n_videos=data["n_videos"], frames=data["frames"], size=data["size"],
                             fps=data["fps"] or 8.0, seed=data["seed"], **world)
    return read_folder(root, labels=SHAPES_COLUMNS[2:])  # its own label columns are no news to the user


def _folder(data: dict[str, Any], work: Path) -> Any:
    return read_folder(Path(data["path"]), caption_column=data["caption_column"])


def _msrvtt(data: dict[str, Any], work: Path) -> Any:
    return read_msrvtt(Path(data["path"]), Path(data["videos"]))


def _tgif(data: dict[str, Any], work: Path) -> Any:
    return read_tgif(Path(data["path"]), Path(data["videos"]), ids=data.get("ids"))


def _msrvtt_annotation(data: dict[str, Any], work: Path) -> Any:
    # Several annotation files (train_val_videodatainfo.json + test_videodatainfo.json) are comma-separated.
    paths = [Path(p.strip()) for p in str(data["path"]).split(",")]
    return read_msrvtt_annotation(paths, Path(data["videos"]), split=data.get("split"), ids=data.get("ids"))


def _webvid(data: dict[str, Any], work: Path) -> Any:
    column = data.get("caption_column")
    return read_webvid(Path(data["path"]), Path(data["videos"]), caption_column=None if column == "caption" else column)


def _annotation_paths(data: dict[str, Any]) -> list[str]:
    found = required_paths("videos")(data)
    if not data.get("path"):
        return [f"data.path: not set; the {data['source']} source reads MSRVTT_data.json (or the videodatainfo files)"]
    for part in str(data["path"]).split(","):
        if not Path(part.strip()).expanduser().exists():
            found.append(f"data.path: {Path(part.strip()).expanduser()} does not exist")
    if data.get("split") not in (None, "train", "val", "validate", "test"):
        found.append(f"data.split: {data['split']!r} is not an MSR-VTT split; use train, val or test (or leave it unset)")
    return found


def _synthetic(data: dict[str, Any], path: Path) -> Any:
    return write_synthetic_store(path, n_videos=data["n_videos"], dim=data["dim"], text_tokens=data["text_tokens"],
                                 frames=data["frames"], fps=data["fps"] or 4.0, val_fraction=data["val_fraction"],
                                 noise=data["noise"], seed=data["seed"], world=data["world"],
                                 test_fraction=data["test_fraction"], unseen_fraction=data["unseen_fraction"],
                                 prior_noise=data["prior_noise"])


SOURCES.register("shapes", DataSource("procedural shape videos rendered on the fly", videos=_shapes))
SOURCES.register("synthetic", DataSource(
    "synthetic CLIP-like trajectories written as a store", store=_synthetic,
    note="Data: synthetic ground-truth trajectories (`spliter.data.synthetic`), whose motion follows from the "
         "caption. A known-answer test of the method's training and rollouts, not of Kandinsky 2.2."))
SOURCES.register("folder", DataSource("a folder of videos with captions.csv (video_id,caption)", videos=_folder,
                                      problems=required_paths("path"), indexed=True))
SOURCES.register("msrvtt", DataSource("the MSR-VTT 1k-A csv (key,vid_key,video_id,sentence) and its videos",
                                      videos=_msrvtt, problems=required_paths("path", "videos"), indexed=True))
SOURCES.register("msrvtt-annotation", DataSource(
    "the full MSR-VTT annotation (MSRVTT_data.json, or train_val_videodatainfo.json,test_videodatainfo.json) "
    "with data.split train/val/test and/or data.ids, and its videos",
    videos=_msrvtt_annotation, problems=_annotation_paths, indexed=True))
SOURCES.register("webvid", DataSource("a WebVid-style csv (videoid, name or caption, page_dir, ...) and its videos",
                                      videos=_webvid, problems=required_paths("path", "videos"), indexed=True))
SOURCES.register("tgif", DataSource("tgif-v1.0.tsv (url<TAB>caption) and its GIFs (data.ids: a split list)",
                                    videos=_tgif, problems=required_paths("path", "videos"), indexed=True))
