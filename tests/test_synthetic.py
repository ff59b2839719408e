"""The synthetic birds: the exact CUB + StackGAN layout, deterministic, class = body colour; the command that writes
them and ensure_synthetic."""

import errno
import hashlib
import json
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
        assert set(ids) == set(range(1, len(synthetic.DEFAULT_HUES) + 1))
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
    said = capsys.readouterr().out
    assert (
        "Wrote 16 training and 8 test synthetic birds (6 colours x 3 wing shades, 6 pairs only in the test split"
        in said
    )
    assert len(data.load_filenames(os.path.join(out, "test", layout.FILENAMES_FILE))) == 8
    assert layout.is_synthetic(out)
    with pytest.raises(UserError, match="--n-train 1"):
        commands.main(["synthetic", "--out", out, "--n-train", "1"])


def test_the_compositional_split(tmp_path, capsys):
    """The training split never holds a held-out (colour, shade) pair, the test split holds every pair; every colour
    and every shade is still seen in training; the attribute files say each image's pair in CUB's layout; the
    design (colours, shades, unseen pairs, what a class is) is the writer's to choose."""
    out = str(tmp_path / "pairs")
    argv = ["synthetic", "--out", out, "--n-train", "60", "--n-test", "36", "--hues", "red,green,blue,yellow"]
    argv += ["--unseen", "red/white,green/black", "--classes", "pair"]
    assert commands.main(argv) == 0
    assert "(4 colours x 3 wing shades, 2 pairs only in the test split, 12 classes)" in capsys.readouterr().out
    train, test = (attributes.split_attributes(out, s) for s in layout.SPLITS)
    pairs = {s: set(zip(a.body.tolist(), a.wing.tolist())) for s, a in (("train", train), ("test", test))}
    unseen = {(0, 2), (1, 0)}  # red/white, green/black
    assert pairs["test"] == {(b, w) for b in range(4) for w in range(3)} and not pairs["train"] & unseen
    assert pairs["train"] == pairs["test"] - unseen
    assert test.unseen.sum() == 6 and not train.unseen.any()  # 36 test birds over 12 pairs
    assert (test.unseen == [p in unseen for p in zip(test.body.tolist(), test.wing.tolist())]).all()
    assert test.hues == ("red", "green", "blue", "yellow") and test.shades == ("black", "grey", "white")
    # class = pair: the class id names the pair, and the class folders say it
    names, ids = (
        data.load_filenames(layout.split_files(out, "test").filenames),
        data.load_class_ids(layout.split_files(out, "test").class_info),
    )
    assert all(n.startswith("%03d." % c) for n, c in zip(names, ids)) and len(set(ids)) == 12
    assert (np.array(ids) - 1 == test.body * 3 + test.wing).all()
    assert any(n.split("/")[0].endswith("Red_Bird_Black_Wings") for n in names)
    with open(DATASET.attribute_files(out)[0]) as f:
        assert f.read().splitlines()[:1] + f.read().splitlines()[-1:] in (["1 has_primary_color::red"], [])
    labels = open(DATASET.attribute_files(out)[1]).read().splitlines()
    assert len(labels) == 96 * 7 and labels[0].split()[2:] == ["1", "4", "0.0"]  # CUB's five columns
    # the captions name the body and the wings of each bird, unseen pairs too
    caps = captions.load_caption_split(out, "test")
    for b, w, lines in zip(test.body, test.wing, caps.captions):
        for line in lines:
            assert re.search(rf"\b{test.hues[b]}\b", line), line
            assert any(re.search(rf"\b{word}\b", line) for word in synthetic._WING_WORDS[test.shades[w]]), line
    # a design that leaves a shade out of training, or names unknown colours, is refused in one line
    every_black = ["--hues", "red,green", "--unseen", "red/black,green/black"]
    for bad, said in ((every_black, "leave a hue or a shade out"), (["--hues", "red,magenta"], "magenta")):
        with pytest.raises(UserError, match=said):
            commands.main(["synthetic", "--out", str(tmp_path / "bad"), "--n-train", "8", *bad])
    assert not os.path.exists(tmp_path / "bad")


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
    colour_words = list(synthetic.COLOURS)
    training = [template_pattern(t) for t in synthetic.CAPTION_TEMPLATES]
    held = [template_pattern(t) for t in synthetic.HELDOUT_TEMPLATES]
    for split in layout.SPLITS:
        s = captions.load_caption_split(birds, split)
        asked = attributes.set_attributes(birds, s.filenames)
        for i, caps in enumerate(s.captions):
            assert len(caps) == 10 and len(set(caps)) >= 8  # varied wording
            colour, shade = asked.hues[asked.body[i]], asked.shades[asked.wing[i]]
            for caption in caps:
                assert re.search(rf"\b{colour}\b", caption) and not any(
                    re.search(rf"\b{c}\b", caption) for c in colour_words if c != colour
                ), caption
                assert any(p.match(caption) for p in training), caption
                assert not any(p.match(caption) for p in held), caption
                assert any(re.search(rf"\b{w}\b", caption) for w in synthetic._WING_WORDS[shade]), caption
        # every embedding says the wing as plainly as the colour: each caption's weights on both are 0.8-1.2
        basis = synthetic.code_rows(asked.hues + asked.shades)
        weights = np.einsum("ncd,kd->nck", s.embeddings, basis) / 6.0
        body_w = np.take_along_axis(weights[:, :, : len(asked.hues)], asked.body[:, None, None], 2)
        wing_w = np.take_along_axis(weights[:, :, len(asked.hues) :], asked.wing[:, None, None], 2)
        assert 0.7 < body_w.min() and body_w.max() < 1.3 and 0.7 < wing_w.min() and wing_w.max() < 1.3


def test_heldout_templates_are_disjoint_and_fill(birds):
    training = set(synthetic.CAPTION_TEMPLATES)
    assert not training & set(synthetic.HELDOUT_TEMPLATES)
    rng = np.random.default_rng(0)
    caps = synthetic.heldout_captions("yellow", "black", rng)
    assert len(caps) == len(synthetic.HELDOUT_TEMPLATES)
    assert all("yellow" in c for c in caps)
    written = {
        c for split in layout.SPLITS for caps in captions.load_caption_split(birds, split).captions for c in caps
    }
    held = set()
    for colour in synthetic.COLOURS:
        for shade in synthetic.SHADES:
            held |= set(synthetic.heldout_captions(colour, shade, rng))
    assert not written & held
    assert not [c for c in written | held if re.search(r"\ba [aeiou]", c)]  # 'a' -> 'an' before a vowel
    assert [c for c in written | held if re.search(r"\ban orange", c)]


def test_captions_leave_images_and_embeddings_as_they_were(birds, tmp_path):
    """The wording has its own random stream: for seed 0 the embeddings and boxes are those recorded when the
    default design (6 hues x 3 shades) was made (2026-12-04), and a set without captions gets them back unchanged; a
    set written by the older design (8 colours, dark or light wings, no attribute files) is written again."""
    small = str(tmp_path / "small")
    synthetic.write_synthetic(small, n_train=40, n_test=16, seed=0)
    expected = {
        "train": "6aa851dc93a787c2784d828ffb74003b6b95a40c",
        "test": "dc22b5bce97303b200833ad172c1e1be4dd0f392",
    }
    for split, digest in expected.items():
        emb = data.load_embeddings(os.path.join(small, split, layout.EMBEDDINGS_FILE))
        assert hashlib.sha1(emb.tobytes()).hexdigest() == digest
    boxes = open(os.path.join(small, CUB_DIR, "bounding_boxes.txt"), "rb").read()
    assert hashlib.sha1(boxes).hexdigest() == "0eecbb7594c4f5c299c8780cd715b857e0c6efb4"
    marker = json.loads(Path(small, layout.SYNTHETIC_MARKER).read_text())
    Path(small, layout.SYNTHETIC_MARKER).write_text(json.dumps(dict(marker, version=1, seed=3)))
    os.remove(DATASET.attribute_files(small)[1])
    assert synthetic.ensure_synthetic(small) is True
    assert os.path.isfile(DATASET.attribute_files(small)[1]) and synthetic.read_design(small)[1]["seed"] == 3

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
