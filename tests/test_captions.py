"""Caption files (stackgan.datasets.captions): the quirks of the published files, alignment with filenames.pickle,
and a split that must have some captions."""

import shutil

import pytest

from stackgan.datasets import loaders
from stackgan.cli import UserError
from stackgan.datasets import captions


def test_read_captions_quirks(tmp_path):
    """U+FFFD pairs (and undecodable bytes) become a space, CRLF/CR/LF all end a line, blank lines are skipped
    (caption k is the k-th non-blank line), a missing final newline and a BOM change nothing."""
    raw = (
        "\ufeffthis bird has a red\ufffd\ufffdcrown\r\n"
        "\r\n"
        "  a small bird   with white wings  \r"
        "\n"
        "   \n"
        "the belly is yellow"
    ).encode("utf-8") + b"\n\xffbad\xfe byte"
    path = tmp_path / "a.txt"
    path.write_bytes(raw)
    assert captions.read_captions(str(path)) == [
        "this bird has a red crown",
        "a small bird with white wings",
        "the belly is yellow",
        "bad byte",
    ]
    assert captions.clean_caption("wings\ufffd\ufffd\ufffd\ufffdand tail\t ") == "wings and tail"


def test_load_captions_aligned_whitespace_names_and_missing_file(tmp_path):
    text = tmp_path / "text"
    (text / "001.A").mkdir(parents=True)
    (text / "001.A" / "a_1.txt").write_text("first one\nsecond one\n")
    (text / "001.A" / "a_3.txt").write_text("third image")
    names = [" 001.A/a_1\r", "001.A/a_2", "001.A/a_3 "]  # stray whitespace from a CRLF copy; a_2 has no file
    with pytest.warns(loaders.DataWarning, match=r"no caption file for 1 of 3 images .*a_2\.txt"):
        loaded = captions.load_captions(str(tmp_path), names, [1, 1, 1], "birds")
    assert loaded == [["first one", "second one"], [], ["third image"]]
    with pytest.raises(UserError, match=r"caption folder .*nothere.text not found.*--captions-archive"):
        captions.load_captions(str(tmp_path / "nothere"), names, [1, 1, 1], "birds")


def test_load_caption_split_needs_some_captions(birds, tmp_path):
    split = captions.load_caption_split(birds, "test")
    assert len(split.captions) == len(split.filenames) == len(split.embeddings) == 16
    assert all(len(c) == 10 for c in split.captions)
    empty = tmp_path / "birds"
    shutil.copytree(birds, empty, ignore=shutil.ignore_patterns("cache", "text"))
    (empty / "text").mkdir()
    with pytest.warns(loaders.DataWarning), pytest.raises(UserError, match="holds no caption file of the train split"):
        captions.load_caption_split(str(empty), "train")
