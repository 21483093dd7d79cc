"""spliter.data.datasets: folder, MSR-VTT and TGIF listings; every unusable row is reported with a reason."""

from pathlib import Path

import pytest

from spliter.data.datasets import (
    DatasetError,
    DatasetNotFound,
    read_folder,
    read_msrvtt,
    read_tgif,
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


def test_read_folder_reports_every_unusable_row(tmp_path: Path) -> None:
    touch(tmp_path, "ok.mp4", "blank.mp4", "dup.mp4", "orphan.mp4")  # videos directly in root also work
    (tmp_path / "captions.csv").write_text(
        "video_id,caption\nok,fine\nblank,   \ndup,first\ndup,second\ngone,no file\n,no id\nshort\n",
        encoding="utf-8",
    )
    listing = read_folder(tmp_path)
    assert [v.video_id for v in listing.videos] == ["ok", "dup"]
    assert listing.videos[1].caption == "first"
    problems = reasons(listing)
    assert "empty caption" in problems["blank"]
    assert "duplicate id at captions.csv:5" in problems["dup"]
    assert "no video file gone" in problems["gone"]
    assert "empty video id" in problems["captions.csv:7"]
    assert "empty caption" in problems["short"]
    assert len(listing.problems) == 5
    assert any("1 video file" in note for note in listing.notes)  # orphan.mp4 is mentioned, not listed


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
    assert list(reasons(listing)) == ["video7022"]
    with pytest.raises(DatasetNotFound, match="missing_dir"):
        read_msrvtt(csv_path, tmp_path / "missing_dir")
    (tmp_path / "bad.csv").write_text("key,video_id\nret0,video7020\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="bad.csv.*sentence"):
        read_msrvtt(tmp_path / "bad.csv", tmp_path / "videos")


def test_read_tgif_names_gifs_by_url_file_name(tmp_path: Path) -> None:
    touch(tmp_path / "gifs", "tumblr_abc_500.gif", "tumblr_def_400.gif", "tumblr_dup.gif")
    tsv = tmp_path / "tgif-v1.0.tsv"
    tsv.write_text(
        "https://38.media.tumblr.com/x1/tumblr_abc_500.gif\ta man is dancing\n"
        "https://38.media.tumblr.com/x2/tumblr_def_400.gif?raw=1\ta cat turns around\n"
        "https://38.media.tumblr.com/x3/tumblr_gone.gif\ta dog barks\n"
        "https://38.media.tumblr.com/x4/tumblr_dup.gif\tfirst caption\n"
        "https://38.media.tumblr.com/x4/tumblr_dup.gif\tsecond caption\n"
        "no tab on this line\n"
        "https://38.media.tumblr.com/x5/tumblr_def_400.gif\t\n",
        encoding="utf-8",
    )
    listing = read_tgif(tsv, tmp_path / "gifs")
    assert [(v.video_id, v.caption) for v in listing.videos] == [
        ("tumblr_abc_500", "a man is dancing"), ("tumblr_def_400", "a cat turns around"),
        ("tumblr_dup", "first caption"),
    ]  # fmt: skip
    assert listing.videos[0].extra == {"url": "https://38.media.tumblr.com/x1/tumblr_abc_500.gif"}
    assert listing.videos[0].source == "tgif" and listing.videos[0].path.suffix == ".gif"
    problems = reasons(listing)
    assert "no video file" in problems["tumblr_gone"]
    assert "duplicate" in problems["tumblr_dup"]
    assert "1 tab-separated field" in problems["tgif-v1.0.tsv:6"]
    assert "duplicate" in problems["tumblr_def_400"]  # same GIF again (with an empty caption)
    assert len(listing.problems) == 4


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
