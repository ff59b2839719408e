"""data.py, the chapter's loaders: Python-2 pickles, embeddings, bounding boxes, the chapter's crop, RGB images,
counts that must agree, and images skipped with a warning."""

import os
import pickle
import pickletools
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data
from stackgan.datasets import loaders, synthetic
from helpers import PICKLES, REPO, dump, split_paths
from stackgan import layout, safe_pickle
from stackgan.cli import UserError
from stackgan.datasets.birds import DATASET
from stackgan.datasets.cache import load_dataset

PY2 = os.path.join(REPO, "tests", "fixtures", "py2")


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


def test_synthetic_pickles_load_like_the_real_ones(birds):
    names = data.load_filenames(split_paths(birds)[0])
    ids = data.load_class_ids(split_paths(birds)[1])
    emb = data.load_embeddings(split_paths(birds)[2])
    assert len(names) == len(ids) == len(emb) == 48
    assert all(isinstance(n, str) for n in names) and names[0].startswith("001.Red_Bird/Red_Bird_")
    assert all(type(c) is int for c in ids) and sorted(set(ids)) == list(range(1, len(synthetic.DEFAULT_HUES) + 1))
    assert emb.shape == (48, 10, 1024) and emb.dtype == np.float32


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
    assert loaders.crop_box(bbox, 200, 150) == rect
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


def test_count_mismatch_names_counts_and_files(birds_copy):
    f_path, c_path, e_path = split_paths(birds_copy)
    ids = data.load_class_ids(c_path)
    dump(c_path, ids[:-1])
    with pytest.raises(UserError, match=r"class_info\.pickle has 47 class ids but .*filenames\.pickle has 48"):
        load_dataset(birds_copy, "train", 64)
    dump(c_path, ids)
    dump(e_path, data.load_embeddings(e_path)[:46])
    with pytest.raises(UserError, match=r"embeddings\.pickle has 46 embeddings but .*filenames\.pickle has 48"):
        load_dataset(birds_copy, "train", 64)


def test_skips_missing_box_missing_image_and_corrupt_image(birds_copy):
    f_path, c_path, e_path = split_paths(birds_copy)
    names, ids = data.load_filenames(f_path), data.load_class_ids(c_path)
    emb = data.load_embeddings(e_path)
    cub = os.path.join(birds_copy, "CUB_200_2011")
    os.remove(os.path.join(cub, "images", names[3] + ".jpg"))
    with open(os.path.join(cub, "images", names[10] + ".jpg"), "wb") as f:
        f.write(b"\xff\xd8 this is not a jpeg")
    lines = Path(cub, "images.txt").read_text().splitlines()
    box_id = next(line.split()[0] for line in lines if line.split()[1] == names[20] + ".jpg")
    box_file = Path(cub, "bounding_boxes.txt")
    box_file.write_text("".join(b + "\n" for b in box_file.read_text().splitlines() if b.split()[0] != box_id))

    pattern = r"skipped 3 of 48 images \(1 without a bounding box, 1 missing, 1 unreadable"
    for _ in range(2):  # building the cache, then reading it: both report the skipped images
        with pytest.warns(loaders.DataWarning, match=pattern):
            split = load_dataset(birds_copy, "train", 64)
        kept = [i for i in range(48) if i not in (3, 10, 20)]
        assert split.images.shape == (45, 64, 64, 3)
        assert split.filenames == [names[i] for i in kept]
        np.testing.assert_array_equal(split.class_ids, np.array(ids)[kept])
        np.testing.assert_array_equal(split.embeddings, emb[kept])
    assert split.images.dtype == np.uint8 and split.class_ids.dtype == np.int64

    shutil.rmtree(os.path.join(cub, "images"))
    os.makedirs(os.path.join(cub, "images"))
    with pytest.raises(
        UserError,
        match=r"no usable image.*skipped 48 of 48 images \(1 without a bounding box, 47 missing.*--data-dir .*birds",
    ):
        load_dataset(birds_copy, "train", 32)


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
    raw = open(os.path.join(PY2, layout.EMBEDDINGS_FILE), "rb").read()
    damaged = tmp_path / layout.EMBEDDINGS_FILE
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
        with pytest.raises(UserError, match=r"evil\.pickle is refused: it names '(posix|os)\.system'") as err:
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
    obj = safe_pickle.loads(pickle.dumps((1, 2.5, "s", b"b", np.float32(3)), 2))
    assert obj == (1, 2.5, "s", b"b", np.float32(3))


def test_embeddings_that_training_cannot_use_are_refused_in_one_line(tmp_path):
    """inf or NaN (training would diverge and blame the learning rate) and no caption per image."""
    emb = np.zeros((5, 10, 1024), np.float32)
    emb[3, 7, 100] = np.inf
    dump(tmp_path / "inf.pickle", list(emb))
    with pytest.raises(UserError, match=r"inf\.pickle: the embeddings of row 3 \(of 5\) are not finite"):
        data.load_embeddings(str(tmp_path / "inf.pickle"))
    dump(tmp_path / "empty.pickle", np.zeros((5, 0, 1024), np.float32))
    with pytest.raises(UserError, match=r"empty\.pickle: embeddings of shape \(5, 0, 1024\)"):
        data.load_embeddings(str(tmp_path / "empty.pickle"))


def test_boxes_must_be_finite_and_positive_and_nan_is_a_value(tmp_path):
    """pandas read 'nan' as a missing field, so the message named a short line; it is now a box that is refused."""
    cub = tmp_path / "CUB_200_2011"
    cub.mkdir()
    (cub / "images.txt").write_text("1 001.A/A_1.jpg\n2 001.A/A_2.jpg\n")
    for line, message in (
        ("2 1.0 2.0 nan 4.0", r"the box of image 2 \(1\.0 2\.0 nan 4\.0\) is not a finite box"),
        ("2 1.0 2.0 0 4.0", r"the box of image 2 \(1\.0 2\.0 0 4\.0\) is not a finite box of positive width"),
        ("2 1.0 inf 3.0 4.0", r"the box of image 2 \(1\.0 inf 3\.0 4\.0\) is not a finite box"),
        ("2 1.0 2.0 3.0", r"the line '2 1\.0 2\.0 3\.0' has fewer than 5 fields"),
    ):
        (cub / "bounding_boxes.txt").write_text(f"1 0.0 0.0 10.0 11.0\n{line}\n")
        with pytest.raises(UserError, match=message):
            data.load_bounding_boxes(str(cub))


def test_a_decompression_bomb_is_skipped_as_unreadable(birds_copy):
    """An image over PIL's pixel bound (here 9500x9500, 11 kB as a 1-bit PNG) is not decoded."""
    names = data.load_filenames(split_paths(birds_copy)[0])
    Image.new("1", (9500, 9500)).save(DATASET.image_path(birds_copy, names[5]), format="PNG")
    with pytest.warns(Image.DecompressionBombWarning):  # PIL's, at open; the image is refused all the same
        assert "DecompressionBomb" in loaders.verify_image(DATASET.image_path(birds_copy, names[5]))
    with pytest.warns(loaders.DataWarning, match=r"skipped 1 of 48 images \(1 unreadable; e\.g\. .*DecompressionBomb"):
        split = load_dataset(birds_copy, "train", 64)
    assert split.images.shape == (47, 64, 64, 3) and names[5] not in split.filenames
