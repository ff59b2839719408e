"""The synthetic birds: the exact CUB + StackGAN layout, deterministic, class = body colour; the command that writes
them and ensure_synthetic."""

import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data
from helpers import BIRDS
from stackgan import layout
from stackgan.datasets.birds import CUB_DIR, DATASET
from stackgan.cli import UserError
from stackgan.datasets import captions, commands, synthetic
from stackgan.datasets.cache import load_dataset
from stackgan.metrics import attributes

PICKLES = (layout.FILENAMES_FILE, layout.CLASS_INFO_FILE, layout.EMBEDDINGS_FILE)


def split_paths(data_dir, split="train"):
    return [os.path.join(data_dir, split, f) for f in PICKLES]


def test_synthetic_round_trip(birds, tmp_path):
    assert layout.is_synthetic(birds)
    cub = DATASET.cub_dir(birds)
    boxes = data.load_bounding_boxes(cub)
    assert len(boxes) == 64
    gray = 0
    for split, n in (("train", BIRDS["n_train"]), ("test", BIRDS["n_test"])):
        f_path, c_path, e_path = split_paths(birds, split)
        names, ids, emb = data.load_filenames(f_path), data.load_class_ids(c_path), data.load_embeddings(e_path)
        assert len(names) == len(ids) == n and emb.shape == (n, 10, 1024)
        assert ids == sorted(ids) and names == sorted(names)  # class-sorted like the real files
        assert set(ids) == set(range(1, 9))
        for name, c in zip(names, ids):
            assert name.startswith(f"{c:03d}.{synthetic.PALETTE[c - 1][0].capitalize()}_Bird/")
            with Image.open(os.path.join(cub, "images", name + ".jpg")) as im:
                width, height = im.size
                gray += im.mode == "L"
                assert im.format == "JPEG" and im.mode in ("RGB", "L") and 120 <= min(im.size) <= 220
            x, y, w, h = boxes[name]
            assert 0 <= x and 0 <= y and w > 10 and h > 10 and x + w <= width and y + h <= height
        np.testing.assert_array_equal(attributes.embedding_colours(emb), np.array(ids) - 1)  # exact on clean ones
        np.testing.assert_array_equal(attributes.embedding_colours(emb[:, 3]), np.array(ids) - 1)
        assert np.mean(np.abs(emb) < 1) > 0.95 and emb.std() > 0.1
        split_data = load_dataset(birds, split, 64)
        assert split_data.images.shape == (n, 64, 64, 3) and split_data.images.dtype == np.uint8
        assert split_data.class_ids.dtype == np.int64
    assert gray <= 5
    again = str(tmp_path / "again")
    synthetic.write_synthetic(again, **BIRDS)
    for rel in [os.path.join("train", f) for f in PICKLES] + ["CUB_200_2011/bounding_boxes.txt"]:
        with open(os.path.join(birds, rel), "rb") as a, open(os.path.join(again, rel), "rb") as b:
            assert a.read() == b.read(), rel  # deterministic
    synthetic.write_synthetic(again, **dict(BIRDS, seed=1))
    rel = "CUB_200_2011/bounding_boxes.txt"
    assert Path(again, rel).read_text() != Path(birds, rel).read_text()


def test_synthetic_command(tmp_path, capsys):
    out = str(tmp_path / "cmd")
    assert commands.main(["synthetic", "--out", out, "--n-train", "16", "--n-test", "8", "--seed", "5"]) == 0
    assert "Wrote 16 training and 8 test synthetic birds" in capsys.readouterr().out
    assert len(data.load_filenames(os.path.join(out, "test", layout.FILENAMES_FILE))) == 8
    assert layout.is_synthetic(out)
    with pytest.raises(UserError, match="--n-train 1"):
        commands.main(["synthetic", "--out", out, "--n-train", "1"])


def test_ensure_synthetic(tmp_path, monkeypatch):
    original, written = synthetic.write_synthetic, []

    def small(out, n_train=800, n_test=160, seed=0):
        written.append(out)
        original(out, n_train=16, n_test=8, seed=seed)

    monkeypatch.setattr(synthetic, "write_synthetic", small)
    out = str(tmp_path / "s")
    assert synthetic.ensure_synthetic(out) is True and written == [out]
    assert synthetic.ensure_synthetic(out) is False and written == [out]
    assert layout.is_synthetic(out) and not layout.missing_files(out, DATASET)
    real = tmp_path / "real"
    (real / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="not the synthetic one"):
        synthetic.ensure_synthetic(str(real))


def template_pattern(template):
    parts = re.split(r"(\{\w+\})", template)
    body = "".join(".+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + body.replace(r"a\ ", r"an?\ ").replace("^a ", "^an? ") + "$")


def test_synthetic_captions_say_colour_and_wing(birds):
    colour_words = [name for name, _ in synthetic.PALETTE]
    training = [template_pattern(t) for t in synthetic.CAPTION_TEMPLATES + synthetic.WINGLESS_TEMPLATES]
    held = [template_pattern(t) for t in synthetic.HELDOUT_TEMPLATES]
    mention, silent = [], []
    for split in layout.SPLITS:
        s = captions.load_caption_split(birds, split)
        wings = attributes.embedding_wings(s.embeddings)
        wing_axis = synthetic.code_basis()[1 + len(synthetic.PALETTE) :]
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


def test_heldout_templates_are_disjoint_and_fill(birds):
    training = set(synthetic.CAPTION_TEMPLATES) | set(synthetic.WINGLESS_TEMPLATES)
    assert not training & set(synthetic.HELDOUT_TEMPLATES)
    rng = np.random.default_rng(0)
    caps = synthetic.heldout_captions(1, 0, rng)
    assert len(caps) == len(synthetic.HELDOUT_TEMPLATES)
    assert all("orange" in c for c in caps)
    written = {
        c for split in layout.SPLITS for caps in captions.load_caption_split(birds, split).captions for c in caps
    }
    held = set()
    for colour in range(len(synthetic.PALETTE)):
        for wing in range(2):
            held |= set(synthetic.heldout_captions(colour, wing, rng))
    assert not written & held
    assert not [c for c in written | held if re.search(r"\ba [aeiou]", c)]  # 'a' -> 'an' before a vowel
    assert [c for c in written | held if re.search(r"\ban orange", c)]


def test_captions_leave_images_and_embeddings_as_they_were(birds, tmp_path):
    """The wording has its own random stream: for seed 0 the embeddings are those of the set written before
    captions existed (hashes recorded then), and a set without captions gets them back unchanged."""
    small = str(tmp_path / "small")
    synthetic.write_synthetic(small, n_train=40, n_test=16, seed=0)
    expected = {
        "train": "d8af4485e5d4eb7764932435e6fc6fc860091f02",
        "test": "9a255747869f3b44984811f8098ee8a465a4d953",
    }
    for split, digest in expected.items():
        emb = data.load_embeddings(os.path.join(small, split, layout.EMBEDDINGS_FILE))
        assert hashlib.sha1(emb.tobytes()).hexdigest() == digest
    boxes = open(os.path.join(small, CUB_DIR, "bounding_boxes.txt"), "rb").read()
    assert hashlib.sha1(boxes).hexdigest() == "9b2d4f88ddac5c6abbbf420827ebc5f146943482"

    old = tmp_path / "old"
    shutil.copytree(birds, old, ignore=shutil.ignore_patterns("cache", "text"))
    assert synthetic.ensure_synthetic(str(old)) is True  # a set written before captions: same birds + captions
    assert synthetic.ensure_synthetic(str(old)) is False
    for rel in [os.path.join("train", layout.EMBEDDINGS_FILE), "CUB_200_2011/bounding_boxes.txt"]:
        assert (old / rel).read_bytes() == open(os.path.join(birds, rel), "rb").read()
    name = data.load_filenames(os.path.join(birds, "test", layout.FILENAMES_FILE))[0]
    assert (old / "text" / f"{name}.txt").read_text() == open(DATASET.caption_path(birds, name)).read()


def test_a_bad_seed_or_a_failed_write_leaves_the_set_and_its_marker(tmp_path, monkeypatch, capsys):
    """--seed -1 is refused before anything is touched; a write that fails half way (a full disk) leaves the old set
    with its SYNTHETIC.json marker (it was deleted first, and the set then taken for real CUB)."""
    from helpers import one_line_error

    out = tmp_path / "s"
    synthetic.write_synthetic(str(out), n_train=16, n_test=8)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    err = one_line_error(commands.main, ["synthetic", "--out", str(out), "--seed", "-1"], capsys)
    assert "--seed" in err and "-1 must be 0 or more" in err
    drawn = []

    def disk_full(rng, colour, wing):
        drawn.append(colour)
        if len(drawn) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(rng, colour, wing)

    original = synthetic._draw_synthetic_bird
    monkeypatch.setattr(synthetic, "_draw_synthetic_bird", disk_full)
    err = one_line_error(commands.main, ["synthetic", "--out", str(out), "--n-train", "16", "--n-test", "8"], capsys)
    assert f"cannot write {out}: No space left on device" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files and layout.is_synthetic(str(out))


def test_synthetic_birds_never_replace_a_real_dataset(birds, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(birds, real, ignore=shutil.ignore_patterns("cache"))
    os.remove(real / layout.SYNTHETIC_MARKER)
    with pytest.raises(UserError, match="holds a dataset that is not synthetic birds"):
        synthetic.write_synthetic(str(real), n_train=16, n_test=8)
    assert len(data.load_filenames(os.path.join(real, "train", layout.FILENAMES_FILE))) == 48
