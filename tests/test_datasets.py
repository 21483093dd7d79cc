"""spliter.data.datasets: folder, MSR-VTT (1k-A csv, json annotation, splits), WebVid and TGIF listings; every
unused row, caption or file is reported with a reason; captions-per-video policies and over-long captions."""

import json
from pathlib import Path

import numpy as np
import pytest

from spliter.data.datasets import (
    CaptionedVideo,
    DatasetError,
    DatasetNotFound,
    long_captions,
    msrvtt_official_split,
    read_folder,
    read_msrvtt,
    read_msrvtt_annotation,
    read_split_ids,
    read_tgif,
    read_webvid,
    sampled_caption,
)


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")  # the readers only list files; decoding is video.py's job


def reasons(listing) -> dict[str, str]:
    return dict(listing.problems)


def test_read_folder_finds_videos_by_id_with_any_extension(tmp_path: Path) -> None:
    touch(tmp_path / "videos", "a.mp4", "b.webm", "c.GIF", "d.txt")
    (tmp_path / "captions.csv").write_text(
        "video_id,caption,take\na,a cat jumps,1\nb,a dog runs,2\nc,  a bird flies ,3\n", encoding="utf-8"
    )
    listing = read_folder(tmp_path)
    assert [(v.video_id, v.caption, v.path.name) for v in listing.videos] == [
        ("a", "a cat jumps", "a.mp4"), ("b", "a dog runs", "b.webm"), ("c", "a bird flies", "c.GIF"),
    ]  # fmt: skip
    assert listing.problems == []
    assert listing.videos[1].extra == {"take": "2"} and listing.videos[0].source == tmp_path.name
    assert any("take" in note for note in listing.notes)
    labelled = read_folder(tmp_path, labels=("take",))  # a column its writer put there on purpose: no news
    assert labelled.videos[1].extra == {"take": "2"} and labelled.notes == []


def test_read_folder_reports_every_unusable_row_and_file(tmp_path: Path) -> None:
    touch(tmp_path, "ok.mp4", "blank.mp4", "two.mp4", "orphan.mp4")  # videos directly in root also work
    touch(tmp_path / "videos", "twin.mp4", "twin.webm")
    (tmp_path / "captions.csv").write_text(
        "video_id,caption\nok,fine\nblank,   \ntwo,first\ntwo,second\ntwo,first\ngone,no file\n,no id\nshort\n"
        "twin,same stem\n",
        encoding="utf-8",
    )
    listing = read_folder(tmp_path)
    assert [v.video_id for v in listing.videos] == ["ok", "two", "twin"]
    two = listing.videos[1]
    assert (two.caption, two.captions) == ("first", ("first", "second"))  # several rows: several captions
    assert listing.videos[2].path.name == "twin.mp4"  # .mp4 wins over .webm
    problems = reasons(listing)
    assert problems["blank"] == "empty caption at captions.csv:3"
    assert "repeats the caption 'first' of two (first at captions.csv:4)" in problems["captions.csv:6"]
    assert "no video file gone" in problems["gone"]
    assert "empty video id" in problems["captions.csv:8"]
    assert "empty caption" in problems["short"]
    assert "same name stem as" in problems["twin.webm"] and "twin.mp4" in problems["twin.webm"]
    assert "orphan.mp4 has no row in captions.csv" in problems["orphan.mp4"]
    assert len(listing.problems) == 7
    assert any("several caption rows" in note for note in listing.notes)


def test_read_folder_header_only_empty_and_latin1_files_name_the_file(tmp_path: Path) -> None:
    touch(tmp_path / "videos", "a.mp4")
    csv_path = tmp_path / "captions.csv"
    csv_path.write_text("video_id,caption\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"captions.csv: has a header but no rows; add one row per video"):
        read_folder(tmp_path)
    csv_path.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"captions.csv: the file is empty; write a header line"):
        read_folder(tmp_path)
    csv_path.write_bytes("video_id,caption\na,un caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"captions.csv: not valid utf-8 text \(byte 0xe9 on line 2\).*iconv") as bad:
        read_folder(tmp_path)
    assert "UnicodeDecodeError" not in str(bad.value)
    listing = read_folder(tmp_path, encoding="latin-1")  # the documented way to read it as it is
    assert listing.videos[0].caption == "un caf\u00e9 cr\u00e8me"
    csv_path.write_bytes("\ufeffvideo_id,caption\na,with a BOM\n".encode())  # spreadsheet export
    assert read_folder(tmp_path).videos[0].caption == "with a BOM"
    csv_path.write_text("\n\nvideo_id,caption\n\na,after blank lines\n", encoding="utf-8")
    assert [(v.video_id, v.caption) for v in read_folder(tmp_path).videos] == [("a", "after blank lines")]


def test_read_folder_missing_csv_or_columns_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="captions.csv") as missing:
        read_folder(tmp_path)
    assert isinstance(missing.value, FileNotFoundError)
    (tmp_path / "captions.csv").write_text("id,text\nx,y\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="captions.csv.*video_id, caption.*found: id, text"):
        read_folder(tmp_path)


def test_read_msrvtt_uses_sentence_and_keeps_keys(tmp_path: Path) -> None:
    touch(tmp_path / "videos", "video7020.mp4", "video7021.mp4")
    csv_path = tmp_path / "MSRVTT_JSFUSION_test.csv"
    csv_path.write_text(
        "key,vid_key,video_id,sentence\n"
        "ret0,msr7020,video7020,a person is cooking\n"
        "ret1,msr7021,video7021,a car drives on a road\n"
        "ret2,msr7022,video7022,a man sings\n",
        encoding="utf-8",
    )
    listing = read_msrvtt(csv_path, tmp_path / "videos")
    assert [v.video_id for v in listing.videos] == ["video7020", "video7021"]
    first = listing.videos[0]
    assert (first.caption, first.source, first.extra) == ("a person is cooking", "msrvtt", {"key": "ret0", "vid_key": "msr7020"})
    assert first.split == "test"  # 1k-A test videos are in the official test split
    assert list(reasons(listing)) == ["video7022"]
    with pytest.raises(DatasetNotFound, match="missing_dir"):
        read_msrvtt(csv_path, tmp_path / "missing_dir")
    (tmp_path / "bad.csv").write_text("key,video_id\nret0,video7020\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="bad.csv.*sentence"):
        read_msrvtt(tmp_path / "bad.csv", tmp_path / "videos")


def test_read_tgif_names_gifs_by_url_file_name_and_keeps_every_caption(tmp_path: Path) -> None:
    touch(tmp_path / "gifs", "tumblr_abc_500.gif", "tumblr_def_400.gif", "tumblr_dup.gif", "tumblr_other.gif")
    tsv = tmp_path / "tgif-v1.0.tsv"
    tsv.write_text(
        "https://38.media.tumblr.com/x1/tumblr_abc_500.gif\ta man is dancing\n"
        "https://38.media.tumblr.com/x2/tumblr_def_400.gif?raw=1\ta cat turns around\n"
        "https://38.media.tumblr.com/x3/tumblr_gone.gif\ta dog barks\n"
        "https://38.media.tumblr.com/x4/tumblr_dup.gif\tfirst caption\n"
        "https://38.media.tumblr.com/x4/tumblr_dup.gif\tsecond caption\n"
        "no tab on this line\n"
        "https://38.media.tumblr.com/x5/tumblr_def_400.gif\t\n"
        "https://38.media.tumblr.com/x4/tumblr_dup.gif\tfirst caption\n",
        encoding="utf-8",
    )
    listing = read_tgif(tsv, tmp_path / "gifs")
    assert [(v.video_id, v.captions) for v in listing.videos] == [
        ("tumblr_abc_500", ("a man is dancing",)), ("tumblr_def_400", ("a cat turns around",)),
        ("tumblr_dup", ("first caption", "second caption")),
    ]  # fmt: skip
    assert listing.videos[0].extra == {"url": "https://38.media.tumblr.com/x1/tumblr_abc_500.gif"}
    assert listing.videos[0].source == "tgif" and listing.videos[0].path.suffix == ".gif"
    problems = reasons(listing)
    assert "no video file" in problems["tumblr_gone"]
    assert "1 tab-separated field" in problems["tgif-v1.0.tsv:6"]
    assert "empty caption for tumblr_def_400" in problems["tgif-v1.0.tsv:7"]
    assert "repeats the caption" in problems["tgif-v1.0.tsv:8"]
    assert len(listing.problems) == 4
    assert any("1 video file(s)" in note and "tumblr_other" in note for note in listing.notes)
    split = tmp_path / "test.txt"  # TGIF's splits/*.txt: one URL per line
    split.write_text("https://38.media.tumblr.com/x4/tumblr_dup.gif\n", encoding="utf-8")
    assert [v.video_id for v in read_tgif(tsv, tmp_path / "gifs", ids=split).videos] == ["tumblr_dup"]


def test_read_tgif_rejects_a_file_that_is_not_the_tsv(tmp_path: Path) -> None:
    (tmp_path / "gifs").mkdir()
    (tmp_path / "wrong.tsv").write_text("url,caption\nhttp://x/a.gif,hello\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="wrong.tsv.*url<TAB>caption"):
        read_tgif(tmp_path / "wrong.tsv", tmp_path / "gifs")
    with pytest.raises(DatasetNotFound, match="absent.tsv"):
        read_tgif(tmp_path / "absent.tsv", tmp_path / "gifs")


@pytest.mark.parametrize("column", ["msrvtt_sentence", "caption_uniform"])
def test_the_shared_msrvtt31_folder_lists_31_videos_with_either_caption(msrvtt31: Path, column: str) -> None:
    listing = read_folder(msrvtt31, caption_column=column)
    assert len(listing.videos) == 31 and listing.problems == []
    assert all(v.path.is_file() and v.path.suffix == ".mp4" and v.caption for v in listing.videos)
    assert {"msrvtt_key"} <= set(listing.videos[0].extra)
    assert listing.videos[0].source == "msrvtt31"
    other = "caption_uniform" if column == "msrvtt_sentence" else "msrvtt_sentence"
    assert all(v.extra[other] != v.caption for v in listing.videos)


def msrvtt_annotation(videos: list[tuple[str, str]], sentences: list[tuple[str, str, int]], **extra) -> dict:
    """An annotation in the public MSRVTT_data.json / *_videodatainfo.json layout."""
    return {
        "info": {"year": "2016", "version": "1.0"},
        "videos": [
            {"category": 9, "url": f"https://www.youtube.com/watch?v={vid}", "video_id": vid, "start time": 1.0,
             "end time": 11.0, "split": split, "id": i, **extra}
            for i, (vid, split) in enumerate(videos)
        ],
        "sentences": [{"caption": c, "video_id": vid, "sen_id": sen} for vid, c, sen in sentences],
    }  # fmt: skip


@pytest.fixture
def msrvtt_layout(tmp_path: Path) -> Path:
    """video0-1 train, video2 validate, video3-4 test; video4 has no file, video5 a file but no entry."""
    touch(tmp_path / "videos", *(f"video{i}.mp4" for i in (0, 1, 2, 3, 5)))
    videos = [("video0", "train"), ("video1", "train"), ("video2", "validate"), ("video3", "test"), ("video4", "test")]
    sentences = [
        ("video0", "a man is cooking", 3), ("video0", "someone cooks food", 1), ("video1", "a dog runs", 4),
        ("video2", "a car drives", 5), ("video3", "a woman sings", 6), ("video3", "a woman sings", 7),
        ("video4", "nobody has this file", 8), ("video9", "no such video", 9), ("video1", " ", 10),
    ]  # fmt: skip
    data = msrvtt_annotation(videos, sentences)
    data["videos"].append(dict(data["videos"][0]))  # a duplicate entry
    (tmp_path / "MSRVTT_data.json").write_text(json.dumps(data), encoding="utf-8")
    return tmp_path


def test_msrvtt_annotation_keeps_every_caption_and_the_official_split(msrvtt_layout: Path) -> None:
    listing = read_msrvtt_annotation(msrvtt_layout / "MSRVTT_data.json", msrvtt_layout / "videos")
    assert [(v.video_id, v.split) for v in listing.videos] == [
        ("video0", "train"), ("video1", "train"), ("video2", "val"), ("video3", "test"),
    ]  # fmt: skip
    first = listing.videos[0]
    assert first.captions == ("someone cooks food", "a man is cooking")  # in sen_id order
    assert first.caption == "someone cooks food" and first.extra["category"] == "9"
    problems = reasons(listing)
    assert "duplicate id at MSRVTT_data.json:videos[5]" in problems["video0"]
    assert "no video file video4" in problems["video4"]
    assert "video 'video9', which is in no 'videos' list" in problems["MSRVTT_data.json:sentences[7]"]
    assert "repeats the caption 'a woman sings'" in problems["MSRVTT_data.json:sentences[5]"]
    assert "empty caption for video1" in problems["MSRVTT_data.json:sentences[8]"]
    assert "video5.mp4" in problems and "in no annotation file" in problems["video5.mp4"]
    assert len(listing.problems) == 6


def test_msrvtt_annotation_selects_a_split_or_a_split_list(msrvtt_layout: Path) -> None:
    annotation, videos = msrvtt_layout / "MSRVTT_data.json", msrvtt_layout / "videos"
    train = read_msrvtt_annotation(annotation, videos, split="train")
    assert [v.video_id for v in train.videos] == ["video0", "video1"]
    assert [v.video_id for v in read_msrvtt_annotation(annotation, videos, split="validate").videos] == ["video2"]
    assert "video5.mp4" in reasons(train)  # not in the annotation at all; other splits' files are not problems
    assert "video3" not in reasons(train) and "video3.mp4" not in reasons(train)
    nine_k = msrvtt_layout / "MSRVTT_train.9k.csv"  # the 1k-A training list: a video_id column
    nine_k.write_text("video_id\nvideo0\nvideo2\nvideo7\n", encoding="utf-8")
    assert read_split_ids(nine_k) == [("MSRVTT_train.9k.csv:2", "video0"), ("MSRVTT_train.9k.csv:3", "video2"),
                                      ("MSRVTT_train.9k.csv:4", "video7")]  # fmt: skip
    listed = read_msrvtt_annotation(annotation, videos, ids=nine_k)
    assert [v.video_id for v in listed.videos] == ["video0", "video2"]
    assert "listed at MSRVTT_train.9k.csv:4 but not in the annotation" in reasons(listed)["video7"]
    txt = msrvtt_layout / "val_list_jsfusion.txt"
    txt.write_text("video3\n\nvideo1\n", encoding="utf-8")
    both = read_msrvtt_annotation(annotation, videos, split="test", ids=txt)
    assert [v.video_id for v in both.videos] == ["video3"]
    with pytest.raises(DatasetError, match="'dev' is not an MSR-VTT split"):
        read_msrvtt_annotation(annotation, videos, split="dev")


def test_msrvtt_annotation_in_two_files_and_bad_json_name_the_file(tmp_path: Path) -> None:
    touch(tmp_path / "videos", "video0.mp4", "video7010.mp4")
    train_val = msrvtt_annotation([("video0", "train")], [("video0", "a cat", 0)], extra_field=1)
    test = msrvtt_annotation([("video7010", "test")], [("video7010", "a hat", 0)])
    (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps(train_val), encoding="utf-8")
    (tmp_path / "test_videodatainfo.json").write_text(json.dumps(test), encoding="utf-8")
    listing = read_msrvtt_annotation(
        [tmp_path / "train_val_videodatainfo.json", tmp_path / "test_videodatainfo.json"], tmp_path / "videos"
    )
    assert [(v.video_id, v.split) for v in listing.videos] == [("video0", "train"), ("video7010", "test")]
    assert listing.problems == []
    assert any("train_val_videodatainfo.json: unknown video field(s)" in n and "extra_field" in n for n in listing.notes)
    (tmp_path / "broken.json").write_text('{"videos": [', encoding="utf-8")
    with pytest.raises(DatasetError, match="broken.json: not valid JSON"):
        read_msrvtt_annotation(tmp_path / "broken.json", tmp_path / "videos")
    (tmp_path / "other.json").write_text('{"annotations": []}', encoding="utf-8")
    with pytest.raises(DatasetError, match="other.json: expected the MSR-VTT layout.*found: annotations"):
        read_msrvtt_annotation(tmp_path / "other.json", tmp_path / "videos")
    with pytest.raises(DatasetNotFound, match="absent.json"):
        read_msrvtt_annotation(tmp_path / "absent.json", tmp_path / "videos")


def test_read_msrvtt_with_the_annotation_adds_the_other_captions(msrvtt_layout: Path) -> None:
    csv_path = msrvtt_layout / "MSRVTT_JSFUSION_test.csv"
    csv_path.write_text("key,vid_key,video_id,sentence\nret0,msr3,video3,the csv sentence\n"
                        "ret1,msr8,video8,not annotated\n", encoding="utf-8")  # fmt: skip
    touch(msrvtt_layout / "videos", "video8.mp4")
    listing = read_msrvtt(csv_path, msrvtt_layout / "videos", annotation=msrvtt_layout / "MSRVTT_data.json")
    video3 = next(v for v in listing.videos if v.video_id == "video3")
    assert video3.captions == ("the csv sentence", "a woman sings") and video3.split == "test"
    assert "video8 is not in the annotation" in reasons(listing)["MSRVTT_JSFUSION_test.csv:3"]
    assert "video8" in [v.video_id for v in listing.videos]  # still listed, with its csv caption


def test_read_webvid_finds_videos_under_page_dir_and_reports_problems(tmp_path: Path) -> None:
    touch(tmp_path / "videos" / "006001_006050", "1066674784.mp4")
    touch(tmp_path / "videos", "21179416.mp4", "99999999.mp4")
    csv_path = tmp_path / "results_2M_val.csv"
    csv_path.write_text(
        "videoid,contentUrl,duration,page_dir,name,mood\n"
        "1066674784,https://ak.picdn.net/shutterstock/videos/1066674784/preview/stock-footage-a.mp4,PT00H00M22S,"
        "006001_006050,Aerial shot of a city,calm\n"
        "21179416,https://x/21179416.mp4,PT00H00M11S,000001_000050,Girl running on a beach,happy\n"
        "31353427,https://x/31353427.mp4,PT00H00M09S,000001_000050,Tourists walking,busy\n"
        "21179416,https://x/21179416.mp4,PT00H00M11S,000001_000050,Girl running on a beach,happy\n",
        encoding="utf-8",
    )
    listing = read_webvid(csv_path, tmp_path / "videos")
    assert [(v.video_id, v.caption, v.path.parent.name) for v in listing.videos] == [
        ("1066674784", "Aerial shot of a city", "006001_006050"), ("21179416", "Girl running on a beach", "videos"),
    ]  # fmt: skip
    assert listing.videos[0].source == "webvid" and listing.videos[0].extra["duration"] == "PT00H00M22S"
    problems = reasons(listing)
    assert "no video file 31353427" in problems["31353427"] and "000001_000050/ folder" in problems["31353427"]
    assert "repeats the caption" in problems["results_2M_val.csv:5"]
    assert len(listing.problems) == 2
    assert any("unknown column(s)" in n and "mood" in n for n in listing.notes)
    assert any("99999999" in n for n in listing.notes)  # a file of another csv: a note, not a problem
    captioned = tmp_path / "webvid_caption.csv"  # some WebVid exports call the caption column "caption"
    captioned.write_text("videoid,caption\n21179416,a girl runs\n", encoding="utf-8")
    assert read_webvid(captioned, tmp_path / "videos").videos[0].caption == "a girl runs"
    with pytest.raises(DatasetError, match="webvid_caption.csv.*missing required column.*name"):
        read_webvid(captioned, tmp_path / "videos", caption_column="name")


def video_with(captions: tuple[str, ...], video_id: str = "v") -> CaptionedVideo:
    return CaptionedVideo(video_id, captions[0], Path(f"{video_id}.mp4"), "test", captions=captions)


def test_the_sampled_caption_is_a_function_of_seed_epoch_and_video_and_covers_every_caption() -> None:
    per_epoch = [sampled_caption("v1", 3, epoch, seed=3) for epoch in range(30)]
    assert per_epoch == [sampled_caption("v1", 3, epoch, seed=3) for epoch in range(30)]
    assert set(per_epoch) == {0, 1, 2}  # every caption comes up over 30 epochs (a miss has p < 1e-4)
    assert per_epoch != [sampled_caption("v1", 3, epoch, seed=4) for epoch in range(30)]
    assert sampled_caption("v2", 1, 5, seed=3) == 0


def test_long_captions_names_each_video_whose_caption_exceeds_the_limit() -> None:
    videos = [video_with(("short one", "w " * 80), "v1"), video_with(("also short",), "v2")]

    def words(text: str) -> list[int]:  # a tokenizer-like callable: start + one id per word + end
        return [0] + [1] * len(text.split()) + [2]

    assert long_captions(videos, words, limit=77) == [("v1", "w " * 80, 82)]
    assert long_captions(videos, lambda text: {"input_ids": words(text)}, limit=3) == [
        ("v1", "short one", 4), ("v1", "w " * 80, 82), ("v2", "also short", 4),
    ]  # fmt: skip
    assert long_captions(videos, lambda text: len(text), limit=200) == []
    assert long_captions(videos, lambda text: np.zeros((1, len(words(text)))), limit=77)[0][2] == 82  # (1, n) ids


def test_long_captions_with_the_bundled_clip_tokenizer() -> None:
    pytest.importorskip("open_clip")
    from spliter.backends.tokenizer import clip_tokenizer

    tokenizer = clip_tokenizer(77)
    long_text = " ".join(["dancing"] * 80)
    found = long_captions([video_with(("a cat jumps", long_text))], lambda t: tokenizer(t, truncation=False))
    assert [(vid, count) for vid, _, count in found] == [("v", 82)]  # 80 words + start and end tokens


def test_msrvtt_official_split_by_video_number() -> None:
    assert [msrvtt_official_split(f"video{n}") for n in (0, 6512, 6513, 7009, 7010, 9999)] == [
        "train", "train", "val", "val", "test", "test",
    ]  # fmt: skip
    assert msrvtt_official_split("video10000") is None and msrvtt_official_split("clip12") is None
