"""Tests of data.py: loaders, crop, skipping, cache, input pipeline, synthetic birds, metric, CLI."""

import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data
from cli import UserError
from trainer import to_float_images
import pipeline
import prepare
import settings
import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PICKLES = (settings.FILENAMES_FILE, settings.CLASS_INFO_FILE, settings.EMBEDDINGS_FILE)


@pytest.fixture(scope="session")
def syn(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("syn") / "birds")
    synthetic.write_synthetic(out, n_train=40, n_test=16, seed=0)
    return out


@pytest.fixture
def syn_copy(syn, tmp_path):
    out = str(tmp_path / "birds")
    shutil.copytree(syn, out, ignore=shutil.ignore_patterns("cache"))
    return out


def split_paths(data_dir, split="train"):
    return [os.path.join(data_dir, split, f) for f in PICKLES]


def dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def hue_rotated(images):
    out = []
    for im in images:
        hsv = np.asarray(Image.fromarray(np.asarray(im)).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256
        out.append(np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")))
    return np.stack(out)


# ---------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------
def test_python2_pickles_need_latin1():
    """tests/fixtures/py2 holds pickles as Python 2's cPickle wrote StackGAN's files (protocol 2, byte
    strings as Python-2 str): Python 3 reads them only with encoding='latin1', as the loaders do."""
    fixtures = os.path.join(REPO, "tests", "fixtures", "py2")
    f_path, c_path, e_path = (os.path.join(fixtures, f) for f in PICKLES)
    for path in (f_path, c_path, e_path):
        with open(path, "rb") as f:
            raw = f.read()
        ops = {op.name for op, _, _ in pickletools.genops(raw)}
        assert "PROTO" in ops and ops & {"SHORT_BINSTRING", "BINSTRING"}, path
        assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}, path
        with open(path, "rb") as f, pytest.raises(UnicodeDecodeError):
            pickle.load(f)
    names = data.load_filenames(f_path)
    ids = data.load_class_ids(c_path)
    emb = data.load_embeddings(e_path)
    assert names == [
        "001.Red_Bird/Red_Bird_0001_1",
        "002.Orange_Bird/Orange_Bird_0001_2",
        "002.Orange_Bird/Orange_Bird_0002_3",
    ]
    assert all(type(c) is int for c in ids) and ids == [1, 2, 2]
    assert emb.dtype == np.float32
    np.testing.assert_array_equal(emb, np.load(os.path.join(fixtures, "expected_embeddings.npy")))


def test_synthetic_pickles_load_like_the_real_ones(syn):
    names = data.load_filenames(split_paths(syn)[0])
    ids = data.load_class_ids(split_paths(syn)[1])
    emb = data.load_embeddings(split_paths(syn)[2])
    assert len(names) == len(ids) == len(emb) == 40
    assert all(isinstance(n, str) for n in names) and names[0].startswith("001.Red_Bird/Red_Bird_")
    assert all(type(c) is int for c in ids) and sorted(set(ids)) == list(range(1, 9))
    assert emb.shape == (40, 10, 1024) and emb.dtype == np.float32


def test_load_embeddings_array_list_and_bad(tmp_path):
    arr = np.random.default_rng(0).normal(size=(3, 10, 1024)).astype(np.float64)
    dump(tmp_path / "a.pickle", arr)
    dump(tmp_path / "l.pickle", list(arr))
    dump(tmp_path / "two.pickle", arr[:, 0])
    dump(tmp_path / "ragged.pickle", [arr[0], arr[1, :5]])
    a, b = data.load_embeddings(str(tmp_path / "a.pickle")), data.load_embeddings(str(tmp_path / "l.pickle"))
    assert a.dtype == b.dtype == np.float32 and a.shape == (3, 10, 1024)
    np.testing.assert_array_equal(a, b)
    assert data.load_embeddings(str(tmp_path / "two.pickle")).shape == (3, 1, 1024)
    with pytest.raises(UserError, match="ragged.pickle"):
        data.load_embeddings(str(tmp_path / "ragged.pickle"))
    (tmp_path / "junk.pickle").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(UserError, match="junk.pickle"):
        data.load_filenames(str(tmp_path / "junk.pickle"))
    with pytest.raises(UserError, match=r"missing\.pickle not found.*python data\.py download"):
        data.load_class_ids(str(tmp_path / "missing.pickle"))


def test_load_bounding_boxes_all_rows_as_floats(tmp_path):
    cub = tmp_path / "CUB_200_2011"
    cub.mkdir()
    (cub / "images.txt").write_text("1 001.A/A_1.jpg\n2 001.A/A_2.jpg\n3 002.B/B_3.jpg\n")
    (cub / "bounding_boxes.txt").write_text("3 1.5 2.0 30.25 40.0\n1 60.0 27.0 325.0 304.0\n2 0.0 0.0 10.0 11.0\n")
    boxes = data.load_bounding_boxes(str(cub))
    assert boxes == {
        "001.A/A_1": [60.0, 27.0, 325.0, 304.0],
        "001.A/A_2": [0.0, 0.0, 10.0, 11.0],
        "002.B/B_3": [1.5, 2.0, 30.25, 40.0],
    }
    assert all(isinstance(v, float) for box in boxes.values() for v in box)
    (cub / "bounding_boxes.txt").unlink()
    with pytest.raises(UserError, match=r"bounding_boxes\.txt not found.*python data\.py download"):
        data.load_bounding_boxes(str(cub))


def coordinate_image(path, width=200, height=150):
    """PNG whose red channel is x and green channel is y: a crop shows where it came from."""
    yy, xx = np.mgrid[0:height, 0:width]
    Image.fromarray(np.stack([xx, yy, np.zeros_like(xx)], -1).astype(np.uint8)).save(path)


@pytest.mark.parametrize(
    "bbox, rect",
    [
        ([50, 40, 60, 30], (35, 10, 125, 100)),  # inside: R = 45 around (80, 55)
        ([0, 0, 100, 40], (0, 0, 125, 95)),  # touching the top-left border: clipped
        ([150, 120, 50, 30], (138, 98, 200, 150)),  # touching the bottom-right border: clipped
        ([10.6, 20.4, 33.3, 20.9], (3, 6, 51, 54)),  # float box: R = int(24.975), centre int(27.25), int(30.85)
    ],
)
def test_crop_rectangle(tmp_path, bbox, rect):
    assert data.crop_box(bbox, 200, 150) == rect
    coordinate_image(tmp_path / "c.png")
    x1, y1, x2, y2 = rect
    img = data.get_img(str(tmp_path / "c.png"), bbox, (x2 - x1, y2 - y1))  # same size: no resampling
    a = np.asarray(img)
    assert img.mode == "RGB" and a.shape == (y2 - y1, x2 - x1, 3)
    assert tuple(a[0, 0, :2]) == (x1, y1) and tuple(a[-1, -1, :2]) == (x2 - 1, y2 - 1)
    assert data.get_img(str(tmp_path / "c.png"), bbox, 64).size == (64, 64)


def test_get_img_converts_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    rgb.convert("L").save(tmp_path / "gray.jpg")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb.convert("L").save(tmp_path / "gray.png")
    rgb.convert("P").save(tmp_path / "pal.png")
    rgb.convert("RGBA").save(tmp_path / "rgba.png")
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    for name in ("gray.jpg", "cmyk.jpg", "gray.png", "pal.png", "rgba.png"):
        img = data.get_img(str(tmp_path / name), [5, 5, 20, 20], 32)
        assert img.mode == "RGB" and img.size == (32, 32), name
    g = np.asarray(data.get_img(str(tmp_path / "gray.png"), None, 16))
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()


def test_count_mismatch_names_counts_and_files(syn_copy):
    f_path, c_path, e_path = split_paths(syn_copy)
    ids = data.load_class_ids(c_path)
    dump(c_path, ids[:-1])
    with pytest.raises(UserError, match=r"class_info\.pickle has 39 class ids but .*filenames\.pickle has 40"):
        data.load_split(syn_copy, "train", 64)
    with pytest.raises(UserError, match="39 class ids"):
        data.load_dataset(f_path, c_path, os.path.join(syn_copy, "CUB_200_2011"), e_path, 64)
    dump(c_path, ids)
    dump(e_path, data.load_embeddings(e_path)[:38])
    with pytest.raises(UserError, match=r"embeddings\.pickle has 38 embeddings but .*filenames\.pickle has 40"):
        data.load_split(syn_copy, "train", 64)


def test_skips_missing_box_missing_image_and_corrupt_image(syn_copy):
    f_path, c_path, e_path = split_paths(syn_copy)
    names, ids = data.load_filenames(f_path), data.load_class_ids(c_path)
    emb = data.load_embeddings(e_path)
    cub = os.path.join(syn_copy, "CUB_200_2011")
    os.remove(os.path.join(cub, "images", names[3] + ".jpg"))
    with open(os.path.join(cub, "images", names[10] + ".jpg"), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg")
    lines = Path(cub, "images.txt").read_text().splitlines()
    box_id = next(line.split()[0] for line in lines if line.split()[1] == names[20] + ".jpg")
    box_file = Path(cub, "bounding_boxes.txt")
    box_file.write_text("".join(b + "\n" for b in box_file.read_text().splitlines() if b.split()[0] != box_id))

    pattern = r"skipped 3 of 40 images \(1 without a bounding box, 1 missing, 1 unreadable"
    for _ in range(2):  # building the cache, then reading it: both report the skipped images
        with pytest.warns(data.DataWarning, match=pattern):
            split = data.load_split(syn_copy, "train", 64)
        kept = [i for i in range(40) if i not in (3, 10, 20)]
        assert split.images.shape == (37, 64, 64, 3)
        assert split.filenames == [names[i] for i in kept]
        np.testing.assert_array_equal(split.class_ids, np.array(ids)[kept])
        np.testing.assert_array_equal(split.embeddings, emb[kept])
    with pytest.warns(data.DataWarning, match=pattern):
        X, y, e = data.load_dataset(f_path, c_path, cub, e_path, (64, 64))
    assert X.shape == (37, 64, 64, 3) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X, split.images)
    np.testing.assert_array_equal(e, emb[kept])

    shutil.rmtree(os.path.join(cub, "images"))
    os.makedirs(os.path.join(cub, "images"))
    with pytest.raises(
        UserError,
        match=r"no usable image.*skipped 40 of 40 images \(1 without a bounding box, 39 missing.*--data-dir .*birds",
    ):
        data.load_split(syn_copy, "train", 32)


def test_cache_hit_and_rebuild(syn_copy, monkeypatch):
    calls = []
    real_get_img = data.get_img

    def counting(*args):
        calls.append(args[0])
        return real_get_img(*args)

    monkeypatch.setattr(data, "get_img", counting)
    first = data.load_split(syn_copy, "train", 64)
    assert len(calls) == 40
    cache_files = sorted(os.listdir(os.path.join(syn_copy, "cache")))
    assert any(f.startswith("train_64_") and f.endswith(".cache.npy") for f in cache_files)

    def fail(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(data, "get_img", fail)
    second = data.load_split(syn_copy, "train", 64)
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    assert first.filenames == second.filenames

    monkeypatch.setattr(data, "get_img", counting)
    calls.clear()
    assert data.load_split(syn_copy, "train", 48).images.shape == (40, 48, 48, 3)  # other size: rebuilt
    assert len(calls) == 40

    f_path, c_path, e_path = split_paths(syn_copy)  # a changed file list: rebuilt
    dump(f_path, data.load_filenames(f_path)[5:])
    dump(c_path, data.load_class_ids(c_path)[5:])
    dump(e_path, data.load_embeddings(e_path)[5:])
    calls.clear()
    third = data.load_split(syn_copy, "train", 64)
    assert len(calls) == 35 and third.images.shape == (35, 64, 64, 3)
    np.testing.assert_array_equal(third.images, first.images[5:])
    assert (
        len(
            [
                f
                for f in os.listdir(os.path.join(syn_copy, "cache"))
                if f.startswith("train_64_") and f.endswith(".cache.npy")
            ]
        )
        == 1
    )  # the stale entry is gone


# ---------------------------------------------------------------------------
# input pipeline
# ---------------------------------------------------------------------------
def index_split(n=48, size=8, classes=8, captions=10):
    """Image i is filled with the value i, embedding (i, k) with 100*i + k: outputs tell where they came from."""
    images = np.repeat(np.arange(n, dtype=np.uint8), size * size * 3).reshape(n, size, size, 3)
    emb = (100.0 * np.arange(n)[:, None, None] + np.arange(captions)[None, :, None]) * np.ones((1, 1, 4))
    class_ids = np.arange(n) * classes // n + 1
    return data.Split(images, class_ids.astype(np.int64), emb.astype(np.float32), [str(i) for i in range(n)])


def as_step_input(batch):
    """The pipeline's uint8 images as the training step sees them: float32 in [-1, 1]."""
    return to_float_images(batch).numpy()


def decode_index(batch):
    return np.rint((as_step_input(batch)[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


def run_epoch(ds):
    reals, caps, wrongs = [], [], []
    for real, emb, wrong in ds:
        assert real.dtype.name == "uint8" and wrong.dtype.name == "uint8" and emb.dtype.name == "float32"
        idx = decode_index(real)
        e = emb.numpy()[:, 0]
        np.testing.assert_array_equal(np.floor(e / 100).astype(int), idx)  # the caption belongs to the image
        reals.append(idx)
        caps.append((e % 100).astype(int))
        wrongs.append(decode_index(wrong))
    return np.concatenate(reals), np.concatenate(caps), np.concatenate(wrongs)


def test_pipeline_wrong_pairs_shuffling_and_captions():
    split = index_split()
    ds = pipeline.make_dataset(split, 10, 8, augment=False, seed=3)
    assert len(ds) == 4
    epochs = [run_epoch(ds) for _ in range(3)]
    for real, cap, wrong in epochs:
        assert len(real) == 40 and len(set(real)) == 40  # drop_remainder, no repeats within an epoch
        assert (split.class_ids[real] != split.class_ids[wrong]).all()  # wrong images: another class
        assert cap.min() >= 0 and cap.max() <= 9
    assert not np.array_equal(epochs[0][0], epochs[1][0])  # every iteration reshuffles
    assert not np.array_equal(epochs[1][0], epochs[2][0])
    firsts = {}
    for real, cap, _ in epochs:
        for i, c in zip(real, cap):
            firsts.setdefault(i, set()).add(c)
    assert np.mean([len(v) > 1 for v in firsts.values()]) > 0.5  # the caption is redrawn
    same_seed = pipeline.make_dataset(split, 10, 8, augment=False, seed=3)
    again = [run_epoch(same_seed) for _ in range(2)]
    for a, b in zip(epochs, again):  # deterministic given the seed
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = run_epoch(pipeline.make_dataset(split, 10, 8, augment=False, seed=4))
    assert not np.array_equal(other[0], epochs[0][0])
    ordered = run_epoch(pipeline.make_dataset(split, 10, 8, augment=False, seed=3, shuffle=False))
    np.testing.assert_array_equal(ordered[0], np.arange(40))


def test_pipeline_augment_crop_flip_and_range():
    n, stored, size = 16, 76, 64
    ramp = np.arange(stored, dtype=np.uint8) * 3  # value = 3 * x
    images = np.broadcast_to(ramp[None, None, :, None], (n, stored, stored, 3)).copy()
    split = data.Split(
        images, np.arange(n, dtype=np.int64) % 4, np.zeros((n, 10, 1024), np.float32), [str(i) for i in range(n)]
    )
    assert settings.stored_size(64, True) == 76 and settings.stored_size(256, True) == 304
    assert settings.stored_size(64, False) == 64
    ds = pipeline.make_dataset(split, 8, size, augment=True, seed=0)
    flips, offsets = [], set()
    for _ in range(2):
        for real, emb, wrong in ds:
            assert real.shape == wrong.shape == (8, size, size, 3) and emb.shape == (8, 1024)
            for batch in (as_step_input(real), as_step_input(wrong)):
                assert batch.min() >= -1.0 and batch.max() <= 1.0
                x = np.rint((batch[:, 0, :, 0] + 1) * 127.5 / 3).astype(int)  # stored column of each pixel
                step = np.diff(x, axis=1)
                assert ((step == 1).all(axis=1) | (step == -1).all(axis=1)).all()
                flips += list(step[:, 0] == -1)
                offsets.update(x.min(axis=1))
                assert (x.max(axis=1) - x.min(axis=1) == size - 1).all()
    assert 0.2 < np.mean(flips) < 0.8 and len(offsets) > 3
    with pytest.raises(UserError, match="augment=False"):
        pipeline.make_dataset(split, 8, size, augment=False)
    with pytest.raises(UserError, match="batch size 17"):
        pipeline.make_dataset(split, 17, size)
    one_class = split._replace(class_ids=np.ones(n, dtype=np.int64))
    with pytest.raises(UserError, match="single class"):
        pipeline.make_dataset(one_class, 8, size)


def test_pipeline_is_the_same_as_before_for_a_seed_and_resumes_the_sequence():
    """tests/fixtures/pipeline holds two epochs (seed 3) of the earlier per-image Python pipeline, whose
    images code their index (red) and pixel position (green): order, captions, wrong images, crops and
    flips must come out the same, and a run resumed at epoch 1 must see epoch 1 again."""
    f = np.load(os.path.join(REPO, "tests", "fixtures", "pipeline", "seed3_two_epochs.npz"))
    split = data.Split(f["images"], f["class_ids"], f["embeddings"], [str(i) for i in range(len(f["images"]))])
    ds = pipeline.make_dataset(split, 8, 8, augment=True, seed=3)
    batches = [tuple(t.numpy() for t in batch) for _ in range(2) for batch in ds]
    for k, name in enumerate(("real", "emb", "wrong")):
        np.testing.assert_array_equal(np.stack([b[k] for b in batches]), f[name])
    resumed = pipeline.make_dataset(split, 8, 8, augment=True, seed=3, first_epoch=1)
    second = [tuple(t.numpy() for t in batch) for batch in resumed]
    for k, name in enumerate(("real", "emb", "wrong")):
        np.testing.assert_array_equal(np.stack([b[k] for b in second]), f[name][3:])


def test_pipeline_on_cached_split(syn):
    split = data.load_split(syn, "train", settings.stored_size(64, True))
    assert split.images.shape == (40, 76, 76, 3)
    real, emb, wrong = next(iter(pipeline.make_dataset(split, 16, 64, seed=0)))
    assert real.shape == (16, 64, 64, 3) and emb.shape == (16, 1024) and wrong.shape == (16, 64, 64, 3)
    real_colours = synthetic.image_colours(real.numpy())
    assert (real_colours == synthetic.embedding_colours(emb.numpy())).mean() >= 0.9
    assert (synthetic.image_colours(wrong.numpy()) != synthetic.embedding_colours(emb.numpy())).mean() >= 0.9


# ---------------------------------------------------------------------------
# synthetic birds and the colour metric
# ---------------------------------------------------------------------------
def test_synthetic_round_trip(syn, tmp_path):
    assert synthetic.is_synthetic(syn)
    cub = os.path.join(syn, "CUB_200_2011")
    boxes = data.load_bounding_boxes(cub)
    assert len(boxes) == 56
    gray = 0
    for split, n in (("train", 40), ("test", 16)):
        f_path, c_path, e_path = split_paths(syn, split)
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
        np.testing.assert_array_equal(synthetic.embedding_colours(emb), np.array(ids) - 1)  # exact on clean ones
        np.testing.assert_array_equal(synthetic.embedding_colours(emb[:, 3]), np.array(ids) - 1)
        assert np.mean(np.abs(emb) < 1) > 0.95 and emb.std() > 0.1
        split_data = data.load_split(syn, split, 64)
        assert split_data.images.shape == (n, 64, 64, 3) and split_data.images.dtype == np.uint8
        assert split_data.class_ids.dtype == np.int64
    assert gray <= 5
    again = str(tmp_path / "again")
    synthetic.write_synthetic(again, n_train=40, n_test=16, seed=0)
    for rel in [os.path.join("train", f) for f in PICKLES] + ["CUB_200_2011/bounding_boxes.txt"]:
        with open(os.path.join(syn, rel), "rb") as a, open(os.path.join(again, rel), "rb") as b:
            assert a.read() == b.read(), rel  # deterministic
    synthetic.write_synthetic(again, n_train=40, n_test=16, seed=1)
    rel = "CUB_200_2011/bounding_boxes.txt"
    assert Path(again, rel).read_text() != Path(syn, rel).read_text()


def test_colour_metric(syn):
    assert len(synthetic.PALETTE) == 8 and len({rgb for _, rgb in synthetic.PALETTE}) == 8
    for split in ("train", "test"):
        s64 = data.load_split(syn, split, 64)
        assert synthetic.attribute_accuracy(s64.images, s64.embeddings) >= 0.95
        floats = np.asarray(s64.images, np.float32) / 127.5 - 1.0
        np.testing.assert_array_equal(synthetic.image_colours(floats), synthetic.image_colours(s64.images))
        assert synthetic.attribute_accuracy(hue_rotated(s64.images), s64.embeddings) < 0.3
        wrong = np.roll(s64.embeddings, len(s64.embeddings) // 8 + 1, axis=0)  # another colour's captions
        assert (synthetic.embedding_colours(wrong) != synthetic.embedding_colours(s64.embeddings)).all()
        assert synthetic.attribute_accuracy(s64.images, wrong) < 0.3
    s256 = data.load_split(syn, "test", 256)
    assert synthetic.attribute_accuracy(s256.images, s256.embeddings[:, 0]) >= 0.95
    gray = np.full((4, 64, 64, 3), 128, np.uint8)
    assert (synthetic.image_colours(gray) == -1).all()
    flat = np.stack([np.full((32, 32, 3), rgb, np.uint8) for _, rgb in synthetic.PALETTE])
    np.testing.assert_array_equal(synthetic.image_colours(flat), np.arange(8))


def test_attribute_report_names_the_most_frequent_mistakes(syn):
    train = data.load_split(syn, "train", 64)
    colours = synthetic.embedding_colours(train.embeddings)
    one_of = {k: train.embeddings[np.flatnonzero(colours == k)[0], 0] for k in range(len(synthetic.PALETTE))}
    flat = {k: np.full((16, 16, 3), rgb, np.uint8) for k, (_, rgb) in enumerate(synthetic.PALETTE)}
    gray = np.full((16, 16, 3), 128, np.uint8)
    # asked: red, orange x3, yellow, blue; drawn: red, red x2 + orange, no colour, purple
    images = np.stack([flat[0], flat[0], flat[0], flat[1], gray, flat[6]])
    embeddings = np.stack([one_of[k] for k in (0, 1, 1, 1, 2, 5)])
    accuracy, mistakes = synthetic.attribute_report(images, embeddings)
    assert accuracy == pytest.approx(2 / 6) and accuracy == synthetic.attribute_accuracy(images, embeddings)
    assert mistakes == [
        dict(asked="orange", drawn="red", count=2),
        dict(asked="yellow", drawn="no colour", count=1),
        dict(asked="blue", drawn="purple", count=1),
    ]
    assert synthetic.attribute_report(images, embeddings, top=1)[1] == mistakes[:1]
    assert synthetic.describe_mistakes(mistakes) == "orange drawn as red 2, yellow as no colour 1, blue as purple 1"
    assert synthetic.attribute_report(images[[0, 3]], embeddings[[0, 3]]) == (1.0, [])
    assert synthetic.describe_mistakes([]) == "none"


def test_synthetic_command(tmp_path, capsys):
    out = str(tmp_path / "cmd")
    assert prepare.main(["synthetic", "--out", out, "--n-train", "16", "--n-test", "8", "--seed", "5"]) == 0
    assert "Wrote 16 training and 8 test synthetic birds" in capsys.readouterr().out
    assert len(data.load_filenames(os.path.join(out, "test", settings.FILENAMES_FILE))) == 8
    assert synthetic.is_synthetic(out)
    with pytest.raises(UserError, match="--n-train 1"):
        prepare.main(["synthetic", "--out", out, "--n-train", "1"])


def test_ensure_synthetic(tmp_path, monkeypatch):
    original, written = synthetic.write_synthetic, []

    def small(out, n_train=800, n_test=160, seed=0):
        written.append(out)
        original(out, n_train=16, n_test=8, seed=seed)

    monkeypatch.setattr(synthetic, "write_synthetic", small)
    out = str(tmp_path / "s")
    assert synthetic.ensure_synthetic(out) is True and written == [out]
    assert synthetic.ensure_synthetic(out) is False and written == [out]
    assert synthetic.is_synthetic(out) and not data.missing_files(out)
    real = tmp_path / "real"
    (real / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="not the synthetic one"):
        synthetic.ensure_synthetic(str(real))


# ---------------------------------------------------------------------------
# prepare / check / download / CLI
# ---------------------------------------------------------------------------
def make_archives(syn, tmp_path):
    cub = str(tmp_path / "CUB_200_2011.tgz")
    with tarfile.open(cub, "w:gz") as tar:
        tar.add(os.path.join(syn, "CUB_200_2011"), arcname="CUB_200_2011")
        (tmp_path / "attributes.txt").write_text("1 has_bill_shape::curved\n")
        tar.add(str(tmp_path / "attributes.txt"), arcname="attributes.txt")
    birds = str(tmp_path / "birds.zip")
    with zipfile.ZipFile(birds, "w") as zf:
        for split in ("train", "test"):
            for f in PICKLES:
                zf.write(os.path.join(syn, split, f), f"birds/{split}/{f}")
        zf.writestr("birds/example_captions.txt", "a red bird\n")
        zf.writestr("__MACOSX/birds/train/._filenames.pickle", b"junk")
    return cub, birds


def test_prepare_from_fake_archives(syn, tmp_path, capsys):
    cub, birds = make_archives(syn, tmp_path)
    out = str(tmp_path / "data" / "birds")
    assert prepare.main(["prepare", "--cub-archive", cub, "--embeddings-archive", birds, "--data-dir", out]) == 0
    assert "train: 40 images, 8 classes" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["CUB_200_2011", "test", "train"]
    assert sorted(os.listdir(os.path.join(out, "train"))) == sorted(PICKLES)
    assert not os.path.exists(os.path.join(out, "attributes.txt")) and not synthetic.is_synthetic(out)
    split = data.load_split(out, "test", 32)
    assert split.images.shape == (16, 32, 32, 3)

    bad = tmp_path / "bad.tgz"
    bad.write_bytes(os.urandom(2000))
    with pytest.raises(UserError, match="bad.tgz is not a readable CUB_200_2011.tgz"):
        prepare.prepare(str(bad), birds, out)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(Path(cub).read_bytes()[:3000])
    with pytest.raises(UserError, match="truncated.tgz"):
        prepare.prepare(str(truncated), birds, out)
    with pytest.raises(UserError, match="bad.tgz is not a readable birds.zip"):
        prepare.prepare(cub, str(bad), out)
    partial = str(tmp_path / "partial.zip")
    with zipfile.ZipFile(partial, "w") as zf:
        zf.writestr("birds/train/filenames.pickle", b"x")
    with pytest.raises(UserError, match="partial.zip has no train/class_info.pickle"):
        prepare.prepare(cub, partial, out)
    with pytest.raises(UserError, match="--cub-archive .*nothere.tgz not found.*prepare"):
        prepare.prepare(str(tmp_path / "nothere.tgz"), birds, out)
    assert data.load_split(out, "test", 32).images.shape == (16, 32, 32, 3)  # failed runs left it intact
    assert not [n for n in os.listdir(out) if n.startswith(".prepare-")]


def test_check(syn_copy, tmp_path, capsys):
    assert prepare.main(["check", "--data-dir", syn_copy]) == 0
    out = capsys.readouterr().out
    assert "synthetic birds" in out and "train: 40 images, 8 classes, embeddings (40, 10, 1024)" in out
    os.remove(os.path.join(syn_copy, "test", settings.FILENAMES_FILE))
    with pytest.raises(UserError, match=r"lacks 1 required file.*test.filenames\.pickle.*python data\.py download"):
        prepare.main(["check", "--data-dir", syn_copy])
    missing = str(tmp_path / "no_such_dir")
    run = subprocess.run(
        [sys.executable, "data.py", "check", "--data-dir", missing],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data folder") and "python data.py download" in lines[0]


def test_download_failure_says_prepare(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="could not download .*CUB_200_2011.tgz.*python data.py prepare"):
        prepare.main(["download", "--data-dir", str(tmp_path / "d")])
    assert not any(f.endswith(".part") for f in os.listdir(tmp_path / "d" / "downloads"))


@pytest.mark.parametrize("command", ["download", "prepare", "check", "synthetic"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        prepare.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: data.py {command}" in capsys.readouterr().out


def test_written_files_get_ordinary_permissions(tmp_path):
    import files

    files.write_json(str(tmp_path / "a.json"), {"x": 1})
    mode = os.stat(tmp_path / "a.json").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
