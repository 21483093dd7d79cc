"""Captioned-video listings from a folder + captions.csv, the MSR-VTT 1k-A csv, or the TGIF tsv.

Readers never drop anything silently: a row that cannot be used (missing video file, empty caption,
duplicate id, blank required field) becomes a `(id or file:row, reason)` entry of `DatasetListing.problems`;
harmless surprises (extra columns, video files without a caption row) are described in `notes`.
A missing index file, or one without the required columns, raises a single `DatasetError`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from spliter.data.video import VIDEO_EXTENSIONS


class DatasetError(ValueError):
    """An index file (csv/tsv) cannot be used; the message names the file and what to do."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """The index file or the videos folder does not exist."""


@dataclass
class CaptionedVideo:
    """One video with its caption; `source` names the dataset, `extra` keeps the other columns as strings."""

    video_id: str
    caption: str
    path: Path
    source: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class DatasetListing:
    """Usable videos, plus every rejected row as (id or file:row, reason) and informational notes."""

    videos: list[CaptionedVideo]
    problems: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.videos)


@dataclass(frozen=True)
class _Row:
    """One parsed index row: where it came from, its id, caption and remaining fields."""

    where: str
    video_id: str
    caption: str
    extra: dict[str, str]


def read_folder(
    root: str | os.PathLike, captions: str = "captions.csv", caption_column: str = "caption"
) -> DatasetListing:
    """List `root/<captions>` (columns video_id + caption_column; others go to `extra`).

    Videos are looked up by id with any supported extension, in `root/videos/` and then `root/`.
    `source` is the folder's name (e.g. "msrvtt31").
    """
    root = Path(root)
    rows, notes = _read_csv(root / captions, id_column="video_id", caption_column=caption_column)
    video_dirs = [d for d in (root / "videos", root) if d.is_dir()]
    return _assemble(rows, video_dirs, source=root.name, notes=notes)


def read_msrvtt(csv_path: str | os.PathLike, videos_dir: str | os.PathLike) -> DatasetListing:
    """List the MSR-VTT 1k-A test csv (key, vid_key, video_id, sentence); `sentence` is the caption."""
    rows, notes = _read_csv(Path(csv_path), id_column="video_id", caption_column="sentence")
    return _assemble(rows, [_existing_dir(videos_dir)], source="msrvtt", notes=notes)


def read_tgif(tsv_path: str | os.PathLike, gifs_dir: str | os.PathLike) -> DatasetListing:
    """List the TGIF tsv (url<TAB>caption, no header); a GIF is stored under its URL's file name.

    The id is that file name's stem; the URL is kept in `extra["url"]`.
    """
    tsv_path = Path(tsv_path)
    gifs = _existing_dir(gifs_dir)
    if not tsv_path.is_file():
        raise DatasetNotFound(f"{tsv_path}: TGIF tsv not found; pass the path of tgif-v1.0.tsv")
    rows: list[_Row] = []
    problems: list[tuple[str, str]] = []
    with open(tsv_path, encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{tsv_path.name}:{number}"
            fields = line.split("\t")
            if len(fields) != 2:
                problems.append((where, f"expected url<TAB>caption, found {len(fields)} tab-separated fields"))
                continue
            url, caption = fields[0].strip(), fields[1].strip()
            stem = Path(urlparse(url).path).stem
            if not stem:
                problems.append((where, f"no file name in the URL {url!r}"))
                continue
            rows.append(_Row(where, stem, caption, {"url": url}))
    if not rows and problems:
        raise DatasetError(f"{tsv_path}: no line has the form url<TAB>caption; is this the TGIF tsv?")
    listing = _assemble(rows, [gifs], source="tgif", notes=[])
    listing.problems[:0] = problems
    return listing


def _existing_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetNotFound(f"{path}: videos folder not found; pass the folder holding the video files")
    return path


def _read_csv(path: Path, id_column: str, caption_column: str) -> tuple[list[_Row], list[str]]:
    if not path.is_file():
        raise DatasetNotFound(f"{path}: captions file not found; create it or pass its name")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in (id_column, caption_column) if c not in columns]
        if missing:
            raise DatasetError(
                f"{path}: missing required column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'}); "
                "rename the columns or pass caption_column"
            )
        reader.fieldnames = columns
        rows = []
        for number, record in enumerate(reader, start=2):  # line 1 is the header
            extra = {k: (v or "").strip() for k, v in record.items() if k not in (id_column, caption_column, None)}
            if record.get(None):  # more fields than the header names
                extra["_unnamed"] = ",".join(record[None])
            rows.append(
                _Row(
                    f"{path.name}:{number}",
                    (record.get(id_column) or "").strip(),
                    (record.get(caption_column) or "").strip(),
                    extra,
                )
            )
    others = [c for c in columns if c not in (id_column, caption_column)]
    notes = [f"{path.name}: extra column(s) kept in CaptionedVideo.extra: {', '.join(others)}"] if others else []
    return rows, notes


def _index_videos(dirs: Iterable[Path]) -> dict[str, Path]:
    """Map file stem -> path for supported video files; earlier folders and extensions win."""
    rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
    index: dict[str, Path] = {}
    for folder in dirs:
        found: dict[str, Path] = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                suffix = Path(entry.name).suffix.lower()
                if suffix in rank and entry.is_file():
                    stem = Path(entry.name).stem
                    if stem not in found or rank[suffix] < rank[found[stem].suffix.lower()]:
                        found[stem] = Path(entry.path)
        for stem, path in found.items():
            index.setdefault(stem, path)
    return index


def _assemble(rows: list[_Row], video_dirs: list[Path], source: str, notes: list[str]) -> DatasetListing:
    index = _index_videos(video_dirs)
    where_seen: dict[str, str] = {}
    videos: list[CaptionedVideo] = []
    problems: list[tuple[str, str]] = []
    searched = " or ".join(str(d) for d in video_dirs) or "(no folder)"
    for row in rows:
        if not row.video_id:
            problems.append((row.where, "empty video id"))
            continue
        if row.video_id in where_seen:
            problems.append((row.video_id, f"duplicate id at {row.where} (first at {where_seen[row.video_id]}); this row is ignored"))
            continue
        where_seen[row.video_id] = row.where
        if not row.caption:
            problems.append((row.video_id, f"empty caption at {row.where}"))
            continue
        path = index.get(row.video_id)
        if path is None:
            problems.append((row.video_id, f"no video file {row.video_id}{{{','.join(VIDEO_EXTENSIONS)}}} in {searched}"))
            continue
        videos.append(CaptionedVideo(row.video_id, row.caption, path, source, dict(row.extra)))
    unlisted = len(set(index) - set(where_seen))
    if unlisted:
        notes = [*notes, f"{unlisted} video file(s) in {searched} have no caption row and are not listed"]
    return DatasetListing(videos=videos, problems=problems, notes=notes)
