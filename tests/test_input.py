"""The training input (stackgan.training.input): per-epoch plans, wrong pairs from another class, captions redrawn,
random crops and flips, the same batches as the earlier pipeline for a seed, and a resumed sequence of epochs; the
same batches with the images on the device or on the host; rows read from a memory-mapped cache
(stackgan.datasets.rows)."""

import os

import numpy as np
import pytest

from helpers import REPO
from stackgan.cli import UserError
from stackgan.config import stored_size
from stackgan.datasets.cache import Split, load_dataset
from stackgan.datasets.rows import ALIGNMENT, RowReader
from stackgan.metrics import attributes
from stackgan.training import input as training_input
from stackgan.training.step import to_float_images


def index_split(n=48, size=8, classes=8, captions=10):
    """Image i is filled with the value i, embedding (i, k) with 100*i + k: outputs tell where they came from."""
    images = np.repeat(np.arange(n, dtype=np.uint8), size * size * 3).reshape(n, size, size, 3)
    emb = (100.0 * np.arange(n)[:, None, None] + np.arange(captions)[None, :, None]) * np.ones((1, 1, 4))
    class_ids = np.arange(n) * classes // n + 1
    return Split(images, class_ids.astype(np.int64), emb.astype(np.float32), [str(i) for i in range(n)])


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
    ds = training_input.make_dataset(split, 10, 8, augment=False, seed=3)
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
    same_seed = training_input.make_dataset(split, 10, 8, augment=False, seed=3)
    again = [run_epoch(same_seed) for _ in range(2)]
    for a, b in zip(epochs, again):  # deterministic given the seed
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    other = run_epoch(training_input.make_dataset(split, 10, 8, augment=False, seed=4))
    assert not np.array_equal(other[0], epochs[0][0])
    ordered = run_epoch(training_input.make_dataset(split, 10, 8, augment=False, seed=3, shuffle=False))
    np.testing.assert_array_equal(ordered[0], np.arange(40))


def test_pipeline_augment_crop_flip_and_range():
    n, stored, size = 16, 76, 64
    ramp = np.arange(stored, dtype=np.uint8) * 3  # value = 3 * x
    images = np.broadcast_to(ramp[None, None, :, None], (n, stored, stored, 3)).copy()
    split = Split(
        images, np.arange(n, dtype=np.int64) % 4, np.zeros((n, 10, 1024), np.float32), [str(i) for i in range(n)]
    )
    assert stored_size(64, True) == 76 and stored_size(256, True) == 304
    assert stored_size(64, False) == 64
    ds = training_input.make_dataset(split, 8, size, augment=True, seed=0)
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
        training_input.make_dataset(split, 8, size, augment=False)
    with pytest.raises(UserError, match="batch size 17"):
        training_input.make_dataset(split, 17, size)
    one_class = split._replace(class_ids=np.ones(n, dtype=np.int64))
    with pytest.raises(UserError, match="single class"):
        training_input.make_dataset(one_class, 8, size)


@pytest.mark.parametrize("placement", ["device", "host"])
def test_pipeline_is_the_same_as_before_for_a_seed_and_resumes_the_sequence(placement):
    """tests/fixtures/pipeline holds two epochs (seed 3) of the earlier per-image Python pipeline, whose
    images code their index (red) and pixel position (green): order, captions, wrong images, crops and
    flips must come out the same, and a run resumed at epoch 1 must see epoch 1 again."""
    f = np.load(os.path.join(REPO, "tests", "fixtures", "pipeline", "seed3_two_epochs.npz"))
    split = Split(f["images"], f["class_ids"], f["embeddings"], [str(i) for i in range(len(f["images"]))])
    ds = training_input.make_dataset(split, 8, 8, augment=True, seed=3, placement=placement)
    batches = [tuple(t.numpy() for t in batch) for _ in range(2) for batch in ds]
    for k, name in enumerate(("real", "emb", "wrong")):
        np.testing.assert_array_equal(np.stack([b[k] for b in batches]), f[name])
    resumed = training_input.make_dataset(split, 8, 8, augment=True, seed=3, first_epoch=1, placement=placement)
    second = [tuple(t.numpy() for t in batch) for batch in resumed]
    for k, name in enumerate(("real", "emb", "wrong")):
        np.testing.assert_array_equal(np.stack([b[k] for b in second]), f[name][3:])


def test_pipeline_on_cached_split(birds):
    split = load_dataset(birds, "train", stored_size(64, True))
    assert split.images.shape == (48, 76, 76, 3)
    real, emb, wrong = next(iter(training_input.make_dataset(split, 16, 64, seed=0)))
    assert real.shape == (16, 64, 64, 3) and emb.shape == (16, 1024) and wrong.shape == (16, 64, 64, 3)
    real_colours = attributes.image_colours(real.numpy())
    assert (real_colours == attributes.embedding_colours(emb.numpy())).mean() >= 0.9
    assert (attributes.image_colours(wrong.numpy()) != attributes.embedding_colours(emb.numpy())).mean() >= 0.9


def memmapped_split(directory, n=40, stored=12, captions=3, dim=6):
    """A split as load_dataset gives it: random uint8 images and float32 embeddings memory-mapped from .npy files."""
    rng = np.random.default_rng(7)
    images = np.lib.format.open_memmap(str(directory / "images.npy"), "w+", np.uint8, (n, stored, stored, 3))
    images[:] = rng.integers(0, 256, images.shape)
    embeddings = np.lib.format.open_memmap(str(directory / "emb.npy"), "w+", np.float32, (n, captions, dim))
    embeddings[:] = rng.normal(size=embeddings.shape)
    del images, embeddings
    return Split(
        np.load(directory / "images.npy", mmap_mode="r"),
        np.arange(n, dtype=np.int64) % 5,
        np.load(directory / "emb.npy", mmap_mode="r"),
        [str(i) for i in range(n)],
    )


def training_batches(split, placement, first_epoch, count, steps_per_epoch=None):
    """The first `count` batches a run's step would assemble, as NumPy (real, embeddings, wrong)."""
    import tensorflow as tf

    batches = training_input.TrainingInput(
        split, 8, 6, True, seed=5, first_epoch=first_epoch, steps_per_epoch=steps_per_epoch, placement=placement
    )
    iterator = batches.iterator(tf.distribute.get_strategy())
    return [tuple(t.numpy() for t in batches.source.assemble(next(iterator))) for _ in range(count)]


def test_host_and_device_input_give_the_same_batches_epochs_and_resume(tmp_path):
    split = memmapped_split(tmp_path)  # 40 images: 6 batches of 6 per epoch
    assert training_input.HostSplit(split, 8).images.path  # the host reads the file itself
    device = training_batches(split, "device", 0, 12)
    host = training_batches(split, "host", 0, 12)
    for d, h in zip(device, host):
        for a, b in zip(d, h):
            np.testing.assert_array_equal(a, b)
    assert device[0][0].shape == (6, 8, 8, 3) and device[0][1].shape == (6, 6)
    assert not np.array_equal(device[0][0], device[6][0])  # the second epoch is another one
    for placement in ("device", "host"):  # a run resumed at epoch 1 sees what the first run saw in its epoch 1
        for d, r in zip(device[6:], training_batches(split, placement, 1, 6)):
            for a, b in zip(d, r):
                np.testing.assert_array_equal(a, b)
    capped = training_batches(split, "host", 0, 4, steps_per_epoch=2)  # --steps-per-epoch: the next epoch's start
    np.testing.assert_array_equal(capped[2][0], device[6][0])
    # The batches hold the split's rows: the first real image is a crop of the image its plan names.
    plan = training_input.epoch_plan(split.class_ids, 3, 6, 12, 8, True, 5, 0)
    i, y, x, flip = (plan[k][0][0] for k in ("index", "real_y", "real_x", "real_flip"))
    crop = split.images[i, y : y + 8, x : x + 8]
    np.testing.assert_array_equal(device[0][0][0], crop[:, ::-1] if flip else crop)
    np.testing.assert_array_equal(device[0][1][0], split.embeddings[i, plan["caption"][0][0]])


def test_row_reader_reads_a_memmap_without_mapping_it(tmp_path):
    split = memmapped_split(tmp_path)
    reader = RowReader(split.images)
    assert reader.path == os.fspath(split.images.filename)  # read with preadv, not through the mapping
    rows = [39, 0, 7, 7]
    np.testing.assert_array_equal(reader.take(rows), split.images[rows])
    np.testing.assert_array_equal(reader.range(3, 9), split.images[3:9])
    assert reader.take(rows).ctypes.data % ALIGNMENT == 0  # TensorFlow takes such arrays without a copy
    with pytest.raises(IndexError, match="outside the 40 rows"):
        reader.take([40])
    part = RowReader(split.images[5:])  # a view of part of the file: indexed, at its own rows
    assert part.path is None
    np.testing.assert_array_equal(part.take([0, 34]), split.images[[5, 39]])
    in_memory = RowReader(np.asarray(split.embeddings).copy())
    np.testing.assert_array_equal(in_memory.take([2, 1]), split.embeddings[[2, 1]])
    with open(split.images.filename, "r+b") as f:  # a cache cut short under the run
        f.truncate(os.path.getsize(split.images.filename) - 100)
    with pytest.raises(OSError, match="ended at row 39 of 40"):
        reader.take([39])


def test_device_split_holds_the_whole_split(tmp_path):
    split = memmapped_split(tmp_path)
    training_input.UPLOAD_CHUNK_BYTES, saved = 1000, training_input.UPLOAD_CHUNK_BYTES  # many chunks: 2 rows each
    try:
        source = training_input.DeviceSplit(split, 8)
    finally:
        training_input.UPLOAD_CHUNK_BYTES = saved
    import tensorflow as tf

    np.testing.assert_array_equal(tf.gather(source.images, tf.range(40)).numpy(), split.images)
    np.testing.assert_array_equal(tf.gather(source.embeddings, tf.range(120)).numpy(), split.embeddings.reshape(120, 6))


def test_unknown_placement_is_one_line():
    with pytest.raises(UserError, match="unknown input placement 'disk'"):
        training_input.TrainingInput(index_split(), 8, 8, False, 0, placement="disk")
