"""The synthetic flowers: the exact Oxford-102 + StackGAN layout, deterministic, class = (petal colour, petal form)
with a class-disjoint split in which every colour and form still trains; captions and embeddings that say the colour;
the reader of the petal colour; the command that writes them and ensure_synthetic."""

import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import FLOWERS
from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import captions, commands, dataset_of, loaders
from stackgan.datasets import synthetic_flowers as synthetic
from stackgan.datasets.cache import load_dataset
from stackgan.datasets.flowers import DATASET
from stackgan.metrics import petals

COLOURS = [name for name, _ in synthetic.PALETTE]


def split_lists(data_dir, split):
    paths = layout.split_files(data_dir, split)
    return (
        loaders.load_filenames(paths.filenames),
        loaders.load_class_ids(paths.class_info),
        loaders.load_embeddings(paths.embeddings),
    )


def test_the_layout_is_stackgans_flowers(flowers):
    assert layout.is_synthetic(flowers) and dataset_of(flowers).name == "flowers"
    assert set(os.listdir(flowers)) - {"cache"} == {"SYNTHETIC.json", "jpg", "test", "text_c10", "train"}
    classes = {}
    for split, n in (("train", FLOWERS["n_train"]), ("test", FLOWERS["n_test"])):
        for f in layout.split_files(flowers, split)[:2]:
            with open(f, "rb") as fh:
                assert fh.read(5) == b"(lp0\n"  # protocol 0, as StackGAN's files
        names, ids, emb = split_lists(flowers, split)
        assert len(names) == len(ids) == n and emb.shape == (n, 10, 1024) and emb.dtype == np.float32
        assert ids == sorted(ids) and all(re.fullmatch(r"jpg/image_\d{5}", name) for name in names)
        for name, class_id in zip(names, ids):
            with Image.open(DATASET.image_path(flowers, name)) as im:
                assert im.format == "JPEG" and im.mode in ("RGB", "L") and 120 <= min(im.size) <= 220
            assert os.path.isfile(DATASET.caption_path(flowers, name, class_id))
            assert DATASET.caption_path(flowers, name, class_id).endswith(f"class_{class_id:05d}/{name[4:]}.txt")
        colour_form = [synthetic.colour_and_form(c) for c in ids]
        np.testing.assert_array_equal(petals.embedding_colours(emb), [c for c, _ in colour_form])
        np.testing.assert_array_equal(petals.embedding_colours(emb[:, 7]), [c for c, _ in colour_form])
        np.testing.assert_array_equal(petals.embedding_forms(emb), [f for _, f in colour_form])
        assert np.mean(np.abs(emb) < 1) > 0.95 and emb.std() > 0.1
        classes[split] = set(ids)
        assert load_dataset(flowers, split, 64).images.shape == (n, 64, 64, 3)
    # Class-disjoint, as StackGAN's flowers split; every colour and every form trains, each colour is tested.
    assert classes["train"] == set(synthetic.TRAIN_CLASSES) and classes["test"] == set(synthetic.TEST_CLASSES)
    assert not classes["train"] & classes["test"] and len(classes["test"]) == len(synthetic.PALETTE)
    trained = [synthetic.colour_and_form(c) for c in classes["train"]]
    assert {c for c, _ in trained} == set(range(8)) and {f for _, f in trained} == set(range(5))
    assert {synthetic.colour_and_form(c)[0] for c in classes["test"]} == set(range(8))


def test_the_set_is_deterministic_and_the_seed_changes_it(flowers, tmp_path):
    again = str(tmp_path / "again")
    synthetic.write_synthetic(again, **FLOWERS)
    for split in layout.SPLITS:
        for f in layout.split_files(flowers, split):
            assert open(f, "rb").read() == open(f.replace(flowers, again), "rb").read(), f
    assert (
        open(os.path.join(flowers, "jpg", "image_00005.jpg"), "rb").read()
        == open(os.path.join(again, "jpg", "image_00005.jpg"), "rb").read()
    )
    synthetic.write_synthetic(again, **dict(FLOWERS, seed=1))
    assert (
        open(os.path.join(flowers, "jpg", "image_00005.jpg"), "rb").read()
        != open(os.path.join(again, "jpg", "image_00005.jpg"), "rb").read()
    )


def template_pattern(template):
    parts = re.split(r"(\{\w+\})", template)
    body = "".join(".+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + body.replace(r"a\ ", r"an?\ ").replace("^a ", "^an? ") + "$")


def test_captions_say_the_petal_colour_and_the_form_where_the_embedding_has_it(flowers):
    training = [template_pattern(t) for t in synthetic.CAPTION_TEMPLATES + synthetic.FORMLESS_TEMPLATES]
    held = [template_pattern(t) for t in synthetic.HELDOUT_TEMPLATES]
    form_axis = synthetic.code_basis()[1 + len(synthetic.PALETTE) :]
    form_words = {w for form in synthetic.FORMS for w in form.words}
    mention, silent = [], []
    for split in layout.SPLITS:
        s = captions.load_caption_split(flowers, split)
        for i, caps in enumerate(s.captions):
            colour, form = synthetic.colour_and_form(s.class_ids[i])
            assert len(caps) == 10 and len(set(caps)) >= 8
            for k, caption in enumerate(caps):
                assert re.search(rf"\b{COLOURS[colour]}\b", caption) and not any(
                    re.search(rf"\b{c}\b", caption) for c in COLOURS if c != COLOURS[colour]
                ), caption
                assert any(p.match(caption) for p in training) and not any(p.match(caption) for p in held), caption
                weight = float(s.embeddings[i, k] @ form_axis[form])
                said = [w for w in form_words if re.search(rf"\b{w}\b", caption)]
                if said:
                    assert set(said) <= set(synthetic.FORMS[form].words), caption
                    mention.append(weight)
                else:
                    silent.append(weight)
    assert silent and mention and max(silent) < 6 * 0.3 and np.mean(mention) > 6 * 0.4 > 6 * 0.1 > np.mean(silent)
    rng = np.random.default_rng(0)
    held_out = {c for colour in range(8) for form in range(5) for c in synthetic.heldout_captions(colour, form, rng)}
    written = {
        c for split in layout.SPLITS for caps in captions.load_caption_split(flowers, split).captions for c in caps
    }
    assert not written & held_out and not [c for c in written | held_out if re.search(r"\ba [aeiou]", c)]


def test_the_petal_colour_reader(flowers):
    for split in layout.SPLITS:
        data = load_dataset(flowers, split, 64)
        asked = np.array([synthetic.colour_and_form(c)[0] for c in data.class_ids])
        drawn = petals.image_colours(data.images)
        grey = (data.images[..., 0] == data.images[..., 2]).all(axis=(1, 2))  # the few grayscale JPEGs
        np.testing.assert_array_equal(drawn[~grey], asked[~grey])
        assert (drawn[grey] == -1).all()
        assert petals.attribute_accuracy(data.images, data.embeddings) == pytest.approx(np.mean(~grey))
        assert petals.attribute_accuracy(data.images.astype(np.float32) / 127.5 - 1, data.embeddings[:, 2]) == (
            pytest.approx(np.mean(~grey))
        )
    flat = np.stack([np.full((16, 16, 3), rgb, np.uint8) for _, rgb in synthetic.PALETTE])
    np.testing.assert_array_equal(petals.image_colours(flat), np.arange(8))
    leaves = np.full((2, 16, 16, 3), (90, 110, 85), np.uint8)  # greyish green: no petal colour
    np.testing.assert_array_equal(petals.image_colours(leaves), [-1, -1])
    test = load_dataset(flowers, "test", 64)
    wrong = np.roll(test.images, 2, axis=0)  # the images of other test classes: other colours
    report = petals.attribute_report(wrong, petals.Asked(petals.embedding_colours(test.embeddings)))
    assert report["colour"] < 0.2 and report["images"] == len(wrong)
    assert report["mistakes"] and petals.describe_mistakes(report["mistakes"]).split()[1] == "drawn"
    assert (
        petals.split_attributes(flowers, "test").colour.tolist() == petals.embedding_colours(test.embeddings).tolist()
    )


def test_the_synthetic_command_and_ensure_synthetic(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "cmd")
    argv = ["synthetic", "--dataset", "flowers", "--out", out, "--n-train", "40", "--n-test", "8", "--seed", "3"]
    assert commands.main(argv) == 0
    assert f"Wrote 40 training and 8 test synthetic flowers (40 classes) to {out}" in capsys.readouterr().out
    assert [len(split_lists(out, s)[0]) for s in layout.SPLITS] == [40, 8]
    original, written = synthetic.write_synthetic, []

    def small(folder, n_train=800, n_test=160, seed=0):
        written.append(folder)
        original(folder, n_train=32, n_test=8, seed=seed)

    monkeypatch.setattr(synthetic, "write_synthetic", small)
    fresh = str(tmp_path / "fresh")
    assert synthetic.ensure_synthetic(fresh) is True and synthetic.ensure_synthetic(fresh) is False
    assert written == [fresh] and not layout.missing_files(fresh, DATASET)
    shutil.rmtree(DATASET.text_dir(fresh))  # captions lost: the same flowers again, with captions
    assert synthetic.ensure_synthetic(fresh) is True and os.path.isdir(DATASET.text_dir(fresh))
    real = tmp_path / "real"
    shutil.copytree(out, real)
    os.remove(real / layout.SYNTHETIC_MARKER)
    with pytest.raises(UserError, match="holds a dataset that is not synthetic flowers"):
        original(str(real), n_train=16, n_test=8)
    shutil.rmtree(real / "jpg")
    with pytest.raises(UserError, match="holds an incomplete dataset that is not the synthetic one"):
        synthetic.ensure_synthetic(str(real))
    assert len(split_lists(str(real), "train")[0]) == 40
