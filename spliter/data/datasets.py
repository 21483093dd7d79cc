"""Captioned-video listings: a folder + captions.csv, MSR-VTT (1k-A csv or the full json annotation with its
splits), WebVid-style csv, and the TGIF tsv.

Readers never drop anything silently:
- `DatasetListing.problems` is the skip list: every row, caption or file that is not used, as a
  `(key, reason)` pair whose key is the video id when the video is left out, else the file name or `file:row`:
  missing video files, empty captions or ids, duplicate ids and repeated captions, video files without a row
  (folder datasets), and a second file with the same name stem (`a.webm` beside `a.mp4`).
- `DatasetListing.notes` describes what was kept but is surprising: unknown columns (kept in
  `CaptionedVideo.extra`), ids with several caption rows, files of other splits in a shared videos folder.
- An index file that cannot be used at all (missing, empty, header only, not UTF-8, without the required
  columns) raises one `DatasetError` whose message names the file and the fix.

Every caption of a video is kept (`CaptionedVideo.captions`, the first is `caption`); the study's
`data.captions_per_video` policy turns them into store records (ablations.stages.encode.caption_records) and,
for "sampled", one record per video per epoch (`sampled_caption`, used by spliter.train).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from spliter.data.video import VIDEO_EXTENSIONS

OFFICIAL_SPLITS = ("train", "val", "test")
# MSR-VTT's json files call the validation split "validate".
_SPLIT_ALIASES = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
# The official MSR-VTT split by video number (the json annotation's "split" field): video0-6512 train,
# video6513-7009 validate, video7010-9999 test.
MSRVTT_SPLIT_RANGES = (("train", 0, 6513), ("val", 6513, 7010), ("test", 7010, 10000))
_MSRVTT_VIDEO_KEYS = ("video_id", "id", "category", "url", "start time", "end time", "split")
_MSRVTT_SENTENCE_KEYS = ("video_id", "caption", "sen_id")
_WEBVID_COLUMNS = ("videoid", "name", "caption", "contentUrl", "duration", "page_dir", "page_idx")
_NOTE_EXAMPLES = 5  # how many names a note lists before "..."


class DatasetError(ValueError):
    """An index file (csv/tsv/json) cannot be used; the message names the file and what to do."""


class DatasetNotFound(DatasetError, FileNotFoundError):
    """The index file or the videos folder does not exist."""


@dataclass
class CaptionedVideo:
    """One video with its captions; `source` names the dataset, `extra` keeps the other columns as strings."""

    video_id: str
    caption: str  # the first caption (the one a single-caption consumer uses)
    path: Path
    source: str
    extra: dict[str, str] = field(default_factory=dict)
    captions: tuple[str, ...] = ()  # every caption, `caption` first; filled with (caption,) when left empty
    split: str | None = None  # the official split the annotation gives ("train", "val", "test"), if any

    def __post_init__(self) -> None:
        if not self.captions:
            self.captions = (self.caption,)


@dataclass
class DatasetListing:
    """Usable videos, every unused row/caption/file as (key, reason), and notes on what was kept."""

    videos: list[CaptionedVideo]
    problems: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.videos)


@dataclass
class _Row:
    """One video's entry gathered from an index: where it was first seen, its captions and other fields."""

    where: str
    video_id: str
    captions: list[str]
    extra: dict[str, str]
    split: str | None = None
    subdir: str = ""  # a sub-folder of the videos folder to look in first (WebVid's page_dir)
    empty: list[str] = field(default_factory=list)  # where this id had an empty caption


# ----------------------------------------------------------------------------------------------- readers


def read_folder(
    root: str | os.PathLike,
    captions: str = "captions.csv",
    caption_column: str = "caption",
    *,
    encoding: str = "utf-8",
    labels: Sequence[str] = (),
) -> DatasetListing:
    """List `root/<captions>` (columns video_id + caption_column; others go to `extra`).

    Videos are looked up by id with any supported extension, in `root/videos/` and then `root/`. Several rows
    with one id give that video several captions. The folder is the dataset, so a video file without a row
    is a problem. `source` is the folder's name (e.g. "msrvtt31"). `labels` are extra columns the folder's
    writer put there on purpose (the shapes writer's motion, shape, ...): kept in `extra` without a note.
    """
    root = Path(root)
    table = _read_table(root / captions, id_column="video_id", caption_columns=(caption_column,), encoding=encoding)
    rows, problems = _gather(table.rows)
    extra = [column for column in table.extra_columns if column not in set(labels)]
    notes = _columns_note(table.path, extra) + _multi_caption_note(rows, table.path)
    index = _VideoIndex([d for d in (root / "videos", root) if d.is_dir()])
    listing = _assemble(rows, index, source=root.name, notes=notes, problems=problems)
    listing.problems += _unlisted_problems(listing, index, table.path.name)
    return listing


def read_msrvtt(
    csv_path: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    annotation: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    encoding: str = "utf-8",
) -> DatasetListing:
    """List the MSR-VTT 1k-A test csv (key, vid_key, video_id, sentence); `sentence` is the first caption.

    Each video's `split` is its official one (from its number, see msrvtt_official_split). With `annotation`
    (MSRVTT_data.json, or train_val_videodatainfo.json + test_videodatainfo.json) every video also gets its
    other captions, and the annotation's split.
    """
    table = _read_table(Path(csv_path), id_column="video_id", caption_columns=("sentence",), encoding=encoding)
    rows, problems = _gather(table.rows)
    notes = _columns_note(table.path, table.extra_columns, known=("key", "vid_key"))
    if annotation is not None:
        by_id = {row.video_id: row for row in _msrvtt_json_rows(_as_paths(annotation), problems, notes, encoding)}
        for row in rows:
            if row.video_id not in by_id:
                problems.append((row.where, f"{row.video_id} is not in the annotation; only this row's caption is used"))
                continue
            other = by_id[row.video_id]
            row.captions += [c for c in other.captions if c not in row.captions]
            row.split = other.split
    for row in rows:
        row.split = row.split or msrvtt_official_split(row.video_id)
    videos = _existing_dir(videos_dir)
    index = _VideoIndex([videos])
    listing = _assemble(rows, index, source="msrvtt", notes=notes, problems=problems)
    listing.notes += _unlisted_note(listing, index, "the csv")
    return listing


def read_msrvtt_annotation(
    annotation: str | os.PathLike | Sequence[str | os.PathLike],
    videos_dir: str | os.PathLike,
    *,
    split: str | None = None,
    ids: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> DatasetListing:
    """List the full MSR-VTT annotation: every video with all its captions (sorted by sen_id) and its split.

    `annotation`: MSRVTT_data.json, or train_val_videodatainfo.json (+ test_videodatainfo.json), each
    {"videos": [{"video_id", "split", ...}], "sentences": [{"video_id", "caption", "sen_id"}]}.
    `split` keeps one official split ("train", "val" — "validate" in the files — or "test"); `ids` keeps the
    videos of a split list (the 1k-A MSRVTT_train.9k.csv / MSRVTT_JSFUSION_test.csv, or a .txt with one id per
    line); both may be combined.
    """
    if split is not None and _SPLIT_ALIASES.get(split) is None:
        raise DatasetError(f"split {split!r} is not an MSR-VTT split; use one of {', '.join(OFFICIAL_SPLITS)}")
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    rows = _msrvtt_json_rows(_as_paths(annotation), problems, notes, encoding)
    everything = {row.video_id for row in rows}
    if split is not None:
        wanted = _SPLIT_ALIASES[split]
        kept = [row for row in rows if row.split == wanted]
        if len(kept) < len(rows):
            notes.append(f"split {wanted!r}: {len(kept)} of {len(rows)} annotated videos kept")
        rows = kept
    if ids is not None:
        listed = read_split_ids(ids, encoding=encoding)
        chosen = {video_id for _, video_id in listed}
        for where, video_id in listed:
            if video_id not in everything:
                problems.append((video_id, f"listed at {where} but not in the annotation"))
        rows = [row for row in rows if row.video_id in chosen]
        notes.append(f"{Path(ids).name}: {len(rows)} annotated videos are on the list")
    index = _VideoIndex([_existing_dir(videos_dir)])
    listing = _assemble(rows, index, source="msrvtt", notes=notes, problems=problems)
    # The annotation names the whole corpus: a file it does not know is unlisted; other splits' files are not.
    for stem in sorted(set(index.stems()) - everything):
        listing.problems.append((index.path(stem).name, f"video file in {index.path(stem).parent} is in no annotation file"))
    return listing


def msrvtt_official_split(video_id: str) -> str | None:
    """"train", "val" or "test" for an MSR-VTT id videoN (N < 10000), else None."""
    digits = video_id.removeprefix("video")
    if not video_id.startswith("video") or not digits.isdigit():
        return None
    number = int(digits)
    return next((name for name, low, high in MSRVTT_SPLIT_RANGES if low <= number < high), None)


def read_split_ids(path: str | os.PathLike, *, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(file:line, video id) of a split list: a csv with a `video_id` column (the 1k-A csvs) or one id per line."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        table = _read_table(path, id_column="video_id", caption_columns=(), encoding=encoding)
        return [(where, record["video_id"]) for where, record in table.rows if record["video_id"]]
    return [(where, line.strip()) for where, line in _lines(path, encoding, what="split list")]


def read_webvid(
    csv_path: str | os.PathLike,
    videos_dir: str | os.PathLike,
    *,
    caption_column: str | None = None,
    encoding: str = "utf-8",
) -> DatasetListing:
    """List a WebVid-style csv (videoid, name or caption, contentUrl, duration, page_dir, ...).

    A video is looked up as `videos_dir/<page_dir>/<videoid>.<ext>` (the layout of the download scripts), then
    `videos_dir/<videoid>.<ext>`. The caption column is `caption_column`, else `name`, else `caption`.
    """
    path = Path(csv_path)
    columns = _header(path, encoding)
    if caption_column is None:
        caption_column = next((c for c in ("name", "caption") if c in columns), "name")
    table = _read_table(path, id_column="videoid", caption_columns=(caption_column,), encoding=encoding)
    rows, problems = _gather(table.rows, subdir_column="page_dir")
    notes = _columns_note(path, table.extra_columns, known=_WEBVID_COLUMNS) + _multi_caption_note(rows, path)
    index = _VideoIndex([_existing_dir(videos_dir)])
    listing = _assemble(rows, index, source="webvid", notes=notes, problems=problems)
    listing.notes += _unlisted_note(listing, index, "the csv")
    return listing


def read_tgif(
    tsv_path: str | os.PathLike,
    gifs_dir: str | os.PathLike,
    *,
    ids: str | os.PathLike | None = None,
    encoding: str = "utf-8",
) -> DatasetListing:
    """List the TGIF tsv (url<TAB>caption, no header); a GIF is stored under its URL's file name.

    The id is that file name's stem; the URL is kept in `extra["url"]`; several lines for one GIF give it
    several captions. `ids` keeps the GIFs of a split list (TGIF's splits/*.txt: one URL per line).
    """
    tsv_path = Path(tsv_path)
    gifs = _existing_dir(gifs_dir)
    records: list[tuple[str, dict[str, str]]] = []
    problems: list[tuple[str, str]] = []
    for where, line in _lines(tsv_path, encoding, what="TGIF tsv (tgif-v1.0.tsv)"):
        fields = line.split("\t")
        if len(fields) != 2:
            problems.append((where, f"expected url<TAB>caption, found {len(fields)} tab-separated fields"))
            continue
        url, caption = fields[0].strip(), fields[1].strip()
        stem = _url_stem(url)
        if not stem:
            problems.append((where, f"no file name in the URL {url!r}"))
            continue
        records.append((where, {"video_id": stem, "_caption": caption, "url": url}))
    if not records and problems:
        raise DatasetError(f"{tsv_path}: no line has the form url<TAB>caption; is this the TGIF tsv?")
    rows, row_problems = _gather(records)
    problems += row_problems
    notes = _multi_caption_note(rows, tsv_path)
    if ids is not None:
        chosen = {_url_stem(url.strip()) for _, url in _lines(Path(ids), encoding, what="TGIF split list")}
        rows = [row for row in rows if row.video_id in chosen]
        notes.append(f"{Path(ids).name}: {len(rows)} GIFs of the tsv are on the list")
    index = _VideoIndex([gifs])
    listing = _assemble(rows, index, source="tgif", notes=notes, problems=problems)
    listing.notes += _unlisted_note(listing, index, "the tsv")
    return listing


# ------------------------------------------------------------------------------------ captions per video


def sampled_caption(video_id: str, n_captions: int, epoch: int, seed: int) -> int:
    """The caption index "sampled" draws for a video in an epoch, from (seed, epoch, video_id) alone: the same
    in every process and in any listing order."""
    digest = hashlib.sha256(f"{seed}\x1f{epoch}\x1f{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_captions


# A caption other than a video's first is stored as its own record, id "<video_id>#c<index>" (the first keeps
# the video's id), in the video's split.
CAPTION_SEP = "#c"


def caption_record_id(video_id: str, index: int) -> str:
    """The store id of a video's caption `index` (its own id for the first)."""
    return video_id if index == 0 else f"{video_id}{CAPTION_SEP}{index}"


def base_video_id(record_id: str) -> str:
    """The video a store record belongs to (the record id without its caption suffix)."""
    return record_id.split(CAPTION_SEP, 1)[0]


def long_captions(
    videos: Iterable[CaptionedVideo], tokenize: Callable[[str], object], limit: int = 77
) -> list[tuple[str, str, int]]:
    """(video_id, caption, token count) of every caption longer than `limit` tokens, which an encoder truncates.

    `tokenize` is tokenizer-like: it returns token ids (a sequence), a mapping with "input_ids" (a Hugging Face
    tokenizer called without truncation), or a count. Special tokens it adds count against the limit, as
    they do in the encoder (CLIP's 77 includes its start and end tokens).
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    found = []
    for video in videos:
        for caption in video.captions:
            count = _token_count(tokenize(caption))
            if count > limit:
                found.append((video.video_id, caption, count))
    return found


def _token_count(tokens: object) -> int:
    if isinstance(tokens, Mapping):
        tokens = tokens["input_ids"]
    if isinstance(tokens, int):
        return tokens
    shape = getattr(tokens, "shape", None)
    if shape is not None:  # an array or tensor of ids, (n,) or a batch of one (1, n)
        return int(shape[-1])
    if isinstance(tokens, Sequence) and tokens and isinstance(tokens[0], Sequence):
        tokens = tokens[0]  # a batch of one
    return len(tokens)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- index files


@dataclass
class _Table:
    path: Path
    rows: list[tuple[str, dict[str, str]]]  # (file:line, record with the required columns and the others)
    extra_columns: list[str]


def _read_table(path: Path, id_column: str, caption_columns: tuple[str, ...], encoding: str) -> _Table:
    """Rows of a csv with a header; missing file/columns, an empty or header-only file raise DatasetError."""
    columns = _header(path, encoding)
    required = (id_column, *caption_columns)
    missing = [c for c in required if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'}); "
            "rename the columns or pass caption_column"
        )
    rows = []
    with _text(path, encoding) as handle:
        reader = csv.reader(handle)
        header_seen = False
        for values in _decoded(reader, path, encoding):
            if not any(v.strip() for v in values):
                continue
            if not header_seen:  # the first non-blank line, as _header read it
                header_seen = True
                continue
            record = {name: value.strip() for name, value in zip(columns, values, strict=False)}
            for name in columns[len(values) :]:
                record[name] = ""
            if len(values) > len(columns):  # more fields than the header names
                record["_unnamed"] = ",".join(values[len(columns) :])
            record["video_id"] = record.pop(id_column)
            if caption_columns:
                record["_caption"] = record.pop(caption_columns[0])
            rows.append((f"{path.name}:{reader.line_num}", record))
    if not rows:
        example = ",".join(required)
        raise DatasetError(f"{path}: has a header but no rows; add one row per video ({example})")
    return _Table(path, rows, [c for c in columns if c not in required])


def _header(path: Path, encoding: str) -> list[str]:
    if not path.is_file():
        raise DatasetNotFound(f"{path}: index file not found; create it or pass its path")
    with _text(path, encoding) as handle:
        for values in _decoded(csv.reader(handle), path, encoding):
            if any(v.strip() for v in values):
                return [v.strip() for v in values]
    raise DatasetError(f"{path}: the file is empty; write a header line (e.g. video_id,caption) and one row per video")


def _lines(path: Path, encoding: str, what: str) -> Iterator[tuple[str, str]]:
    """(file:line, line without its newline) of the non-blank lines of a headerless text file."""
    if not path.is_file():
        raise DatasetNotFound(f"{path}: {what} not found; pass its path")
    found = False
    with _text(path, encoding) as handle:
        for number, line in _decoded(enumerate(handle, start=1), path, encoding):
            line = line.rstrip("\r\n")
            if line.strip():
                found = True
                yield f"{path.name}:{number}", line
    if not found:
        raise DatasetError(f"{path}: the file is empty; it should hold the {what}")


def _text(path: Path, encoding: str):
    # utf-8-sig drops the byte-order mark spreadsheet programs write; errors stay strict (see _decoded).
    return open(path, encoding="utf-8-sig" if encoding.lower().replace("_", "-") == "utf-8" else encoding, newline="")


def _decoded(items: Iterator, path: Path, encoding: str) -> Iterator:
    """Pass items through; a decoding error becomes one DatasetError naming the file, the line and the fix."""
    try:
        yield from items
    except UnicodeDecodeError:
        line, byte = _first_undecodable(path, encoding)
        raise DatasetError(
            f"{path}: not valid {encoding} text (byte 0x{byte:02x} on line {line}); re-save it as UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`) or pass the file's encoding "
            "to the reader (encoding='latin-1')"
        ) from None


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int]:
    """(line number, byte) of the first byte that does not decode; only called after decoding failed."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as error:
                return number, raw[error.start]
    return 0, 0


def _gather(
    records: list[tuple[str, dict[str, str]]], subdir_column: str | None = None
) -> tuple[list[_Row], list[tuple[str, str]]]:
    """One _Row per id with all its captions in file order; empty ids and repeated rows are problems.

    `records` have the keys "video_id" and "_caption" plus the other columns (kept in `extra`).
    """
    rows: dict[str, _Row] = {}
    problems: list[tuple[str, str]] = []
    for where, record in records:
        video_id, caption = record["video_id"].strip(), record["_caption"].strip()
        if not video_id:
            problems.append((where, "empty video id"))
            continue
        row = rows.get(video_id)
        if row is None:
            extra = {k: v for k, v in record.items() if k not in ("video_id", "_caption")}
            subdir = _safe_subdir(record.get(subdir_column, "")) if subdir_column else ""
            row = rows[video_id] = _Row(where, video_id, [], extra, subdir=subdir)
        if not caption:
            row.empty.append(where)
        elif caption in row.captions:
            problems.append((where, f"repeats the caption {caption!r} of {video_id} (first at {row.where}); ignored"))
        else:
            row.captions.append(caption)
    return list(rows.values()), problems


def _safe_subdir(name: str) -> str:
    """A plain sub-folder name, or "" for anything that could leave the videos folder."""
    parts = Path(name.strip()).parts
    return name.strip() if parts and not Path(name).is_absolute() and ".." not in parts else ""


def _msrvtt_json_rows(
    paths: list[Path], problems: list[tuple[str, str]], notes: list[str], encoding: str
) -> list[_Row]:
    """Rows of one or more MSR-VTT json annotations (videos + sentences), problems and notes appended."""
    rows: dict[str, _Row] = {}
    pending: list[tuple[str, str, str, float]] = []  # (where, video id, caption, sen_id) until all videos are known
    for path in paths:
        data = _load_json(path, encoding)
        unknown_video_keys: set[str] = set()
        for i, video in enumerate(data["videos"]):
            where = f"{path.name}:videos[{i}]"
            if not isinstance(video, dict) or not str(video.get("video_id", "")).strip():
                problems.append((where, "no video_id"))
                continue
            video_id = str(video["video_id"]).strip()
            unknown_video_keys |= set(video) - set(_MSRVTT_VIDEO_KEYS)
            if video_id in rows:
                problems.append((video_id, f"duplicate id at {where} (first at {rows[video_id].where}); ignored"))
                continue
            raw_split = video.get("split")
            split = _SPLIT_ALIASES.get(str(raw_split).strip().lower()) if raw_split is not None else None
            if raw_split is not None and split is None:
                problems.append((video_id, f"unknown split {raw_split!r} at {where} (expected train, validate or test)"))
                continue
            extra = {k: str(v) for k, v in video.items() if k not in ("video_id", "split")}
            rows[video_id] = _Row(where, video_id, [], extra, split=split)
        if unknown_video_keys:
            notes.append(f"{path.name}: unknown video field(s) kept in CaptionedVideo.extra: {', '.join(sorted(unknown_video_keys))}")
        unknown_sentence_keys: set[str] = set()
        for i, sentence in enumerate(data["sentences"]):
            where = f"{path.name}:sentences[{i}]"
            if not isinstance(sentence, dict):
                problems.append((where, "not an object with video_id and caption"))
                continue
            unknown_sentence_keys |= set(sentence) - set(_MSRVTT_SENTENCE_KEYS)
            order = sentence.get("sen_id", i)
            pending.append((where, str(sentence.get("video_id", "")).strip(), str(sentence.get("caption", "")).strip(),
                            float(order) if isinstance(order, int | float) else float(i)))
        if unknown_sentence_keys:
            notes.append(f"{path.name}: unknown sentence field(s) ignored: {', '.join(sorted(unknown_sentence_keys))}")
    by_video: dict[str, list[tuple[float, str, str]]] = {}
    for where, video_id, caption, order in pending:
        if video_id not in rows:
            problems.append((where, f"caption for video {video_id!r}, which is in no 'videos' list"))
        elif not caption:
            rows[video_id].empty.append(where)
        else:
            by_video.setdefault(video_id, []).append((order, where, caption))
    for video_id, row in rows.items():
        for _, where, caption in sorted(by_video.get(video_id, [])):
            if caption in row.captions:
                problems.append((where, f"repeats the caption {caption!r} of {video_id}; ignored"))
            else:
                row.captions.append(caption)
    return list(rows.values())


def _load_json(path: Path, encoding: str) -> dict:
    if not path.is_file():
        raise DatasetNotFound(f"{path}: annotation file not found; pass the path of MSRVTT_data.json")
    try:
        data = json.loads(path.read_bytes().decode(encoding))
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not valid {encoding} text (byte offset {error.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error}); re-download the annotation file") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) or not isinstance(data.get("sentences"), list):
        found = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(
            f"{path}: expected the MSR-VTT layout {{\"videos\": [...], \"sentences\": [...]}} (found: {found or 'nothing'}); "
            "pass MSRVTT_data.json or train_val_videodatainfo.json"
        )
    return data


# ------------------------------------------------------------------------------------------ video files


class _VideoIndex:
    """Supported video files of some folders by name stem; the first folder and extension win."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs = list(dirs)
        self._folders: dict[Path, dict[str, list[Path]]] = {}

    def _scan(self, folder: Path) -> dict[str, list[Path]]:
        if folder not in self._folders:
            rank = {ext: i for i, ext in enumerate(VIDEO_EXTENSIONS)}
            found: dict[str, list[Path]] = {}
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    for entry in entries:
                        suffix = Path(entry.name).suffix.lower()
                        if suffix in rank and entry.is_file():
                            found.setdefault(Path(entry.name).stem, []).append(Path(entry.path))
            for paths in found.values():
                paths.sort(key=lambda p: (rank[p.suffix.lower()], p.name))
            self._folders[folder] = found
        return self._folders[folder]

    def candidates(self, stem: str, subdir: str = "") -> list[Path]:
        """Every file with this stem, best first: in `<dir>/<subdir>` before `<dir>`, folders in order."""
        folders = [d / subdir for d in self.dirs if subdir] + self.dirs
        return [path for folder in folders for path in self._scan(folder).get(stem, [])]

    def stems(self) -> list[str]:
        return list(dict.fromkeys(stem for folder in self.dirs for stem in self._scan(folder)))

    def path(self, stem: str) -> Path:
        return self.candidates(stem)[0]

    def searched(self) -> str:
        return " or ".join(str(d) for d in self.dirs) or "(no folder)"


def _assemble(
    rows: list[_Row], index: _VideoIndex, source: str, notes: list[str], problems: list[tuple[str, str]]
) -> DatasetListing:
    videos: list[CaptionedVideo] = []
    problems = list(problems)
    extensions = ",".join(VIDEO_EXTENSIONS)
    for row in rows:
        if not row.captions:
            at = ", ".join(row.empty) if row.empty else f"no caption for the entry at {row.where}"
            problems.append((row.video_id, f"empty caption at {at}" if row.empty else at))
            continue
        for where in row.empty:
            problems.append((where, f"empty caption for {row.video_id}; its other caption(s) are used"))
        found = index.candidates(row.video_id, row.subdir)
        if not found:
            where = f"{index.searched()}" + (f" (or its {row.subdir}/ folder)" if row.subdir else "")
            problems.append((row.video_id, f"no video file {row.video_id}{{{extensions}}} in {where}"))
            continue
        for other in found[1:]:
            problems.append((other.name, f"same name stem as {found[0]} (which is used); remove or rename {other}"))
        videos.append(
            CaptionedVideo(row.video_id, row.captions[0], found[0], source, dict(row.extra), tuple(row.captions), row.split)
        )
    return DatasetListing(videos=videos, problems=problems, notes=notes)


def _unlisted_problems(listing: DatasetListing, index: _VideoIndex, index_name: str) -> list[tuple[str, str]]:
    """A folder dataset's video files that no row names: each one is a problem naming the file."""
    named = {v.video_id for v in listing.videos} | {key for key, _ in listing.problems}
    return [
        (index.path(stem).name, f"video file {index.path(stem)} has no row in {index_name}; add a row or remove the file")
        for stem in index.stems()
        if stem not in named
    ]


def _unlisted_note(listing: DatasetListing, index: _VideoIndex, what: str) -> list[str]:
    """A shared videos folder's files that the index does not list (usually other splits): one note."""
    named = {v.video_id for v in listing.videos} | {key for key, _ in listing.problems}
    unlisted = [stem for stem in index.stems() if stem not in named]
    if not unlisted:
        return []
    shown = ", ".join(unlisted[:_NOTE_EXAMPLES]) + (", ..." if len(unlisted) > _NOTE_EXAMPLES else "")
    return [f"{len(unlisted)} video file(s) in {index.searched()} are not in {what} and are not listed ({shown})"]


def _columns_note(path: Path, columns: list[str], known: Sequence[str] | None = None) -> list[str]:
    """A folder's own columns are "extra"; a public layout's columns it does not define are "unknown"."""
    others = columns if known is None else [c for c in columns if c not in known]
    kind = "extra" if known is None else "unknown"
    return [f"{path.name}: {kind} column(s) kept in CaptionedVideo.extra: {', '.join(others)}"] if others else []


def _multi_caption_note(rows: list[_Row], path: Path) -> list[str]:
    several = [row.video_id for row in rows if len(row.captions) > 1]
    if not several:
        return []
    return [f"{path.name}: {len(several)} video(s) have several caption rows; all are kept in CaptionedVideo.captions"]


def _existing_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetNotFound(f"{path}: videos folder not found; pass the folder holding the video files")
    return path


def _as_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _url_stem(url: str) -> str:
    return Path(urlparse(url).path).stem
