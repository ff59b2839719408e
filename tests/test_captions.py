"""Captions and safe pickles in the data layer: caption-file quirks, CRLF copies of the archive, refused
pickles, synthetic captions and held-out templates, and prepare/check with a captions archive."""

import hashlib
import io
import os
import pickle
import re
import shutil
import tarfile
import zipfile

import numpy as np
import pytest

import data
import prepare
import settings
import synthetic
from cli import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY2 = os.path.join(REPO, "tests", "fixtures", "py2")


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "birds")
    synthetic.write_synthetic(out, n_train=16, n_test=8, seed=0)
    return out


# ---------------------------------------------------------------------------
# caption files
# ---------------------------------------------------------------------------
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
    assert data.read_captions(str(path)) == [
        "this bird has a red crown",
        "a small bird with white wings",
        "the belly is yellow",
        "bad byte",
    ]
    assert data.clean_caption("wings\ufffd\ufffd\ufffd\ufffdand tail\t ") == "wings and tail"


def test_load_captions_aligned_whitespace_names_and_missing_file(tmp_path):
    text = tmp_path / "text"
    (text / "001.A").mkdir(parents=True)
    (text / "001.A" / "a_1.txt").write_text("first one\nsecond one\n")
    (text / "001.A" / "a_3.txt").write_text("third image")
    names = [" 001.A/a_1\r", "001.A/a_2", "001.A/a_3 "]  # stray whitespace from a CRLF copy; a_2 has no file
    with pytest.warns(data.DataWarning, match=r"no caption file for 1 of 3 images .*a_2\.txt"):
        captions = data.load_captions(str(text), names)
    assert captions == [["first one", "second one"], [], ["third image"]]
    with pytest.raises(UserError, match=r"caption folder .*nothere not found.*--captions-archive"):
        data.load_captions(str(tmp_path / "nothere"), names)


def test_load_caption_split_needs_some_captions(syn, tmp_path):
    split = data.load_caption_split(syn, "test")
    assert len(split.captions) == len(split.filenames) == len(split.embeddings) == 8
    assert all(len(c) == 10 for c in split.captions)
    empty = tmp_path / "birds"
    shutil.copytree(syn, empty, ignore=shutil.ignore_patterns("cache", "text"))
    (empty / "text").mkdir()
    with pytest.warns(data.DataWarning), pytest.raises(UserError, match="holds no caption file of the train split"):
        data.load_caption_split(str(empty), "train")


# ---------------------------------------------------------------------------
# CRLF copies and refused pickles
# ---------------------------------------------------------------------------
def protocol0_like_the_real_files(obj):
    """A protocol-0 pickle naming numpy.core.multiarray, as the real class_info.pickle does."""
    return pickle.dumps(obj, protocol=0).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_crlf_protocol0_pickles_load_without_loss(tmp_path):
    names = ["001.Black_footed_Albatross/Black_Footed_Albatross_0046_18", "200.Common_Yellowthroat/x_1"]
    ids = [np.int64(1), np.int64(200)]  # train/class_info.pickle holds numpy.int64 scalars
    for name, obj in (("filenames.pickle", names), ("class_info.pickle", ids)):
        lf = protocol0_like_the_real_files(obj)
        assert lf.startswith(b"(lp0") and b"\r" not in lf
        (tmp_path / name).write_bytes(lf.replace(b"\n", b"\r\n"))
    crlf_names = tmp_path / "filenames.pickle"
    with open(crlf_names, "rb") as f:
        assert pickle.load(f, encoding="latin1")[0].endswith("\r")  # what a plain pickle.load gives
    with open(tmp_path / "class_info.pickle", "rb") as f, pytest.raises(ModuleNotFoundError, match=r"multiarray\\r"):
        pickle.load(f, encoding="latin1")
    assert data.load_filenames(str(crlf_names)) == names
    assert data.load_class_ids(str(tmp_path / "class_info.pickle")) == [1, 200]


def test_crlf_binary_pickle_names_the_cause(tmp_path):
    raw = open(os.path.join(PY2, settings.EMBEDDINGS_FILE), "rb").read()
    damaged = tmp_path / settings.EMBEDDINGS_FILE
    damaged.write_bytes(raw.replace(b"\n", b"\r\n"))
    with pytest.raises(UserError, match=r"char-CNN-RNN-embeddings\.pickle .*Windows \(CRLF\) line endings") as err:
        data.load_embeddings(str(damaged))
    assert "\n" not in str(err.value)
    ints = tmp_path / "ints.pickle"  # a binary pickle without any global, damaged the same way
    ints.write_bytes(pickle.dumps(list(range(300)), protocol=2).replace(b"\n", b"\r\n"))
    with pytest.raises(UserError, match="CRLF"):
        data.load_class_ids(str(ints))


class RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_a_pickle_that_runs_a_command_is_refused(tmp_path, protocol):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps([RunsACommand(marker)], protocol=protocol))
    for load in (data.load_filenames, data.load_class_ids, data.load_embeddings):
        with pytest.raises(UserError, match=r"evil\.pickle names the global '(posix|os)\.system'.*refused") as err:
            load(str(evil))
        assert "\n" not in str(err.value)
    assert not marker.exists()
    sneaky = tmp_path / "sneaky.pickle"  # eval through builtins, the other classic
    sneaky.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UserError, match="builtins.eval"):
        data.load_embeddings(str(sneaky))


def test_safe_unpickler_reads_what_the_files_hold(tmp_path):
    emb = np.random.default_rng(0).standard_normal((2, 10, 16)).astype(np.float32)
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pickle"
        path.write_bytes(pickle.dumps([emb[0], emb[1]], protocol=protocol))
        np.testing.assert_array_equal(data.load_embeddings(str(path)), emb)
    obj = data.SafeUnpickler(io.BytesIO(pickle.dumps((1, 2.5, "s", b"b", np.float32(3)), 2))).load()
    assert obj == (1, 2.5, "s", b"b", np.float32(3))


# ---------------------------------------------------------------------------
# synthetic captions
# ---------------------------------------------------------------------------
def template_pattern(template):
    parts = re.split(r"(\{\w+\})", template)
    body = "".join(".+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + body.replace(r"a\ ", r"an?\ ").replace("^a ", "^an? ") + "$")


def test_synthetic_captions_say_colour_and_wing(syn):
    colour_words = [name for name, _ in synthetic.PALETTE]
    training = [template_pattern(t) for t in synthetic.CAPTION_TEMPLATES + synthetic.WINGLESS_TEMPLATES]
    held = [template_pattern(t) for t in synthetic.HELDOUT_TEMPLATES]
    mention, silent = [], []
    for split in settings.SPLITS:
        s = data.load_caption_split(syn, split)
        wings = synthetic.embedding_wings(s.embeddings)
        wing_axis = synthetic._code_basis()[1 + len(synthetic.PALETTE) :]
        for i, caps in enumerate(s.captions):
            assert len(caps) == 10 and len(set(caps)) >= 8  # varied wording
            colour = colour_words[s.class_ids[i] - 1]
            for k, caption in enumerate(caps):
                assert re.search(rf"\b{colour}\b", caption) and not any(
                    re.search(rf"\b{c}\b", caption) for c in colour_words if c != colour
                ), caption
                assert any(p.match(caption) for p in training), caption
                assert not any(p.match(caption) for p in held), caption
                weight = float(s.embeddings[i, k] @ wing_axis[wings[i]])
                if "wing" in caption or "coverts" in caption or "secondaries" in caption:
                    words = synthetic._WING_WORDS[synthetic.WING_SHADES[wings[i]]]
                    assert any(re.search(rf"\b{w}\b", caption) for w in words), caption
                    mention.append(weight)
                else:
                    silent.append(weight)
    # caption k leaves the wings out where embedding k barely has them (weight < 0.15 of the scale 6, + cross-talk)
    assert silent and max(silent) < 6 * 0.3 and np.mean(mention) > 6 * 0.4 > 6 * 0.1 > np.mean(silent)


def test_heldout_templates_are_disjoint_and_fill(syn):
    training = set(synthetic.CAPTION_TEMPLATES) | set(synthetic.WINGLESS_TEMPLATES)
    assert not training & set(synthetic.HELDOUT_TEMPLATES)
    rng = np.random.default_rng(0)
    caps = synthetic.heldout_captions(1, 0, rng)
    assert len(caps) == len(synthetic.HELDOUT_TEMPLATES)
    assert all("orange" in c for c in caps)
    written = {c for split in settings.SPLITS for caps in data.load_caption_split(syn, split).captions for c in caps}
    held = set()
    for colour in range(len(synthetic.PALETTE)):
        for wing in range(2):
            held |= set(synthetic.heldout_captions(colour, wing, rng))
    assert not written & held
    assert not [c for c in written | held if re.search(r"\ba [aeiou]", c)]  # 'a' -> 'an' before a vowel
    assert [c for c in written | held if re.search(r"\ban orange", c)]


def test_captions_leave_images_and_embeddings_as_they_were(syn, tmp_path):
    """The wording has its own random stream: for seed 0 the embeddings are those of the set written before
    captions existed (hashes recorded then), and a set without captions gets them back unchanged."""
    small = str(tmp_path / "small")
    synthetic.write_synthetic(small, n_train=40, n_test=16, seed=0)
    expected = {
        "train": "d8af4485e5d4eb7764932435e6fc6fc860091f02",
        "test": "9a255747869f3b44984811f8098ee8a465a4d953",
    }
    for split, digest in expected.items():
        emb = data.load_embeddings(os.path.join(small, split, settings.EMBEDDINGS_FILE))
        assert hashlib.sha1(emb.tobytes()).hexdigest() == digest
    boxes = open(os.path.join(small, settings.CUB_DIR, "bounding_boxes.txt"), "rb").read()
    assert hashlib.sha1(boxes).hexdigest() == "9b2d4f88ddac5c6abbbf420827ebc5f146943482"

    old = tmp_path / "old"
    shutil.copytree(syn, old, ignore=shutil.ignore_patterns("cache", "text"))
    assert synthetic.ensure_synthetic(str(old)) is True  # a set written before captions: same birds + captions
    assert synthetic.ensure_synthetic(str(old)) is False
    for rel in [os.path.join("train", settings.EMBEDDINGS_FILE), "CUB_200_2011/bounding_boxes.txt"]:
        assert (old / rel).read_bytes() == open(os.path.join(syn, rel), "rb").read()
    name = data.load_filenames(os.path.join(syn, "test", settings.FILENAMES_FILE))[0]
    assert (old / "text" / f"{name}.txt").read_text() == open(data.caption_file(os.path.join(syn, "text"), name)).read()


# ---------------------------------------------------------------------------
# prepare / check / download with captions
# ---------------------------------------------------------------------------
def caption_archives(syn, tmp_path):
    """AttnGAN-style zip (birds/text/...), the same with a nested text.zip, and a Reed-style tar (text_c10/)."""
    text = os.path.join(syn, "text")
    files = [os.path.relpath(os.path.join(d, f), text) for d, _, fs in os.walk(text) for f in fs]
    attngan = str(tmp_path / "attngan_birds.zip")
    with zipfile.ZipFile(attngan, "w") as zf:
        for f in files:
            zf.write(os.path.join(text, f), f"birds/text/{f}")
        zf.writestr("birds/example_captions.txt", "a red bird\n")
        zf.writestr(f"__MACOSX/birds/text/{files[0]}", b"junk")
    nested = str(tmp_path / "nested.zip")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for f in files:
            zf.write(os.path.join(text, f), f"text/{f}")
    with zipfile.ZipFile(nested, "w") as zf:
        zf.writestr("birds/text.zip", inner.getvalue())
        zf.writestr("birds/captions.pickle", b"x")
    reed = str(tmp_path / "cub_icml.tar.gz")
    with tarfile.open(reed, "w:gz") as tar:
        tar.add(text, arcname="cub/text_c10")
    return [attngan, nested, reed], len(files)


def test_prepare_captions_archive_and_check(syn, tmp_path, capsys):
    archives, n_files = caption_archives(syn, tmp_path)
    out = tmp_path / "birds"
    shutil.copytree(syn, out, ignore=shutil.ignore_patterns("cache", "text"))
    assert prepare.main(["check", "--data-dir", str(out)]) == 0
    assert "captions: " + os.path.join(str(out), "text") + " missing" in capsys.readouterr().out
    for archive in archives:
        shutil.rmtree(out / "text", ignore_errors=True)
        assert prepare.main(["prepare", "--captions-archive", archive, "--data-dir", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"Unpacked {n_files} caption files" in printed and "16 caption files present, 0 missing" in printed
        assert data.load_caption_split(str(out), "test").captions == data.load_caption_split(syn, "test").captions
        assert not (out / "text" / "__MACOSX").exists()
    victim = data.load_filenames(os.path.join(str(out), "train", settings.FILENAMES_FILE))[0]
    os.remove(data.caption_file(str(out / "text"), victim))
    assert prepare.main(["check", "--data-dir", str(out)]) == 0
    assert f"15 caption files present, 1 missing\n    missing caption file: {victim}" in capsys.readouterr().out

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("birds/train/filenames.pickle", b"x")
    with pytest.raises(UserError, match=r"bad\.zip holds no text/<class>/<image>\.txt"):
        prepare.prepare(None, None, str(out), str(bad))
    noise = tmp_path / "noise.tgz"
    noise.write_bytes(os.urandom(500))
    with pytest.raises(UserError, match=r"noise\.tgz is not a readable captions archive"):
        prepare.prepare(None, None, str(out), str(noise))
    with pytest.raises(UserError, match="go together"):
        prepare.prepare("CUB_200_2011.tgz", None, str(out))
    assert len(data.load_caption_split(str(out), "test").captions) == 8  # failed runs left it intact


def test_download_without_captions_still_prepares(syn, tmp_path, monkeypatch, capsys):
    cub = str(tmp_path / "CUB_200_2011.tgz")
    with tarfile.open(cub, "w:gz") as tar:
        tar.add(os.path.join(syn, settings.CUB_DIR), arcname=settings.CUB_DIR)
    birds = str(tmp_path / "birds.zip")
    with zipfile.ZipFile(birds, "w") as zf:
        for split in settings.SPLITS:
            for f in settings.SPLIT_FILES:
                zf.write(os.path.join(syn, split, f), f"birds/{split}/{f}")

    def fake_url(url, dest, md5, data_dir):
        shutil.copy(cub, dest)

    def fake_drive(file_id, dest, data_dir, what="the embeddings zip"):
        if file_id == data.CAPTIONS_DRIVE_ID:
            raise UserError("could not download Google Drive file (quota)")
        shutil.copy(birds, dest)

    monkeypatch.setattr(prepare, "_download_url", fake_url)
    monkeypatch.setattr(prepare, "_download_drive", fake_drive)
    out = str(tmp_path / "d")
    assert prepare.main(["download", "--data-dir", out]) == 0
    printed = capsys.readouterr().out
    assert "note: no captions (could not download" in printed and "--captions-archive" in printed
    assert not data.missing_files(out) and not os.path.exists(os.path.join(out, "text"))
