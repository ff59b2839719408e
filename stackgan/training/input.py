"""The training input, in two parts.

1. A tf.data pipeline of *plans*: NumPy plans each epoch from a seeded generator (the order, each sample's
   caption, a wrong image from another class, every crop offset and flip), and the pipeline hands them out
   one batch of indices at a time. It moves a few bytes per image, so it never holds the step back.
2. A DeviceSplit: the split's uint8 images and its embeddings kept as variables on the device (GPU memory,
   or RAM on a CPU), once per machine. Inside the compiled training step, DeviceSplit.assemble turns a plan into the batch:
   one gather of the real and wrong images, one crop + flip as two gathers over the batch, one gather of
   the captions' embeddings. Nothing image-sized crosses from the host per step.

TrainingInput makes both for one split, so that they agree on size, augmentation and batch; make_dataset runs
the same assembly inside tf.data instead, for code that wants image batches.
"""

import numpy as np

from stackgan.cli import UserError
from stackgan.config import stored_size

PLAN_KEYS = ("index", "caption", "wrong", "real_y", "real_x", "real_flip", "wrong_y", "wrong_x", "wrong_flip")


def _check(split, batch_size, size, augment):
    images, class_ids, embeddings = split.images, np.asarray(split.class_ids), split.embeddings
    n = len(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise UserError(f"split images have shape {images.shape}; expected (N, size, size, 3)")
    stored = images.shape[1]
    if augment and stored < size:
        raise UserError(
            f"images are stored at {stored}x{stored}, smaller than the {size}x{size} crops; "
            f"load the split with load_split(..., stored_size({size}, True)) = {stored_size(size, True)}"
        )
    if not augment and stored != size:
        raise UserError(
            f"images are stored at {stored}x{stored} but augment=False needs {size}x{size}; "
            f"load the split with load_split(..., {size})"
        )
    if len(class_ids) != n or len(embeddings) != n:
        raise UserError(f"split rows disagree: {n} images, {len(class_ids)} class ids, {len(embeddings)} embeddings")
    if batch_size < 1 or batch_size > n:
        raise UserError(f"batch size {batch_size} must be between 1 and the {n} images of the split")
    classes = np.unique(class_ids)
    if len(classes) < 2:
        raise UserError(
            f"the split has a single class ({classes[0] if len(classes) else 'none'}): "
            f"wrong images must come from a different class"
        )


def epoch_plan(class_ids, n_captions, batch_size, stored, size, augment, seed, epoch, shuffle=True):
    """Everything random about one epoch, as arrays with one row per batch: sample index, caption, wrong
    image (of another class), and crop rows/columns and flips for the real and the wrong images.
    The same (seed, epoch) always gives the same plan."""
    class_ids = np.asarray(class_ids)
    n = len(class_ids)
    _, class_index, counts = np.unique(class_ids, return_inverse=True, return_counts=True)
    order = np.argsort(class_index, kind="stable")  # sample indices grouped by class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(None if seed is None else [int(seed), int(epoch)])
    perm = rng.permutation(n) if shuffle else np.arange(n)
    plan = {k: [] for k in PLAN_KEYS}
    for b in range(n // batch_size):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        cls = class_index[idx]
        r = rng.integers(0, n - counts[cls])  # a position among the samples of the other classes
        plan["index"].append(idx)
        plan["wrong"].append(order[np.where(r < starts[cls], r, r + counts[cls])])
        plan["caption"].append(rng.integers(0, n_captions, len(idx)))
        for kind in ("real", "wrong"):
            if augment:
                plan[f"{kind}_y"].append(rng.integers(0, stored - size + 1, len(idx)))
                plan[f"{kind}_x"].append(rng.integers(0, stored - size + 1, len(idx)))
                plan[f"{kind}_flip"].append(rng.random(len(idx)) < 0.5)
            else:
                plan[f"{kind}_y"].append(np.zeros(len(idx), np.int64))
                plan[f"{kind}_x"].append(np.zeros(len(idx), np.int64))
                plan[f"{kind}_flip"].append(np.zeros(len(idx), bool))
    return {k: np.asarray(v, dtype=bool if k.endswith("flip") else np.int64) for k, v in plan.items()}


def make_plan_dataset(split, batch_size, image_size, augment=True, seed=None, shuffle=True, first_epoch=0):
    """A tf.data.Dataset of plan batches (dicts of PLAN_KEYS, each (batch_size,)) for one epoch per iteration.

    Batches have exactly batch_size rows (the remainder is dropped). The k-th iteration is epoch
    first_epoch + k: with a seed the sequence of epochs is the same in every run, and a resumed run
    continues it."""
    import tensorflow as tf

    size, batch_size = int(image_size), int(batch_size)
    _check(split, batch_size, size, augment)
    stored, n_captions = split.images.shape[1], split.embeddings.shape[1]
    n_batches = len(split.images) // batch_size
    next_epoch = [int(first_epoch)]

    def next_plan():
        epoch = next_epoch[0]
        next_epoch[0] += 1
        plan = epoch_plan(split.class_ids, n_captions, batch_size, stored, size, augment, seed, epoch, shuffle)
        return [plan[k] for k in PLAN_KEYS]

    def planned(_):
        # tf.numpy_function, not Dataset.from_generator: TF's generator dataset lowers glibc's
        # M_TRIM_THRESHOLD for the whole process, which halved the speed of the training step on a CPU.
        dtypes = [tf.bool if k.endswith("flip") else tf.int64 for k in PLAN_KEYS]
        arrays = tf.numpy_function(next_plan, [], dtypes, stateful=True)
        return {k: tf.ensure_shape(a, (n_batches, batch_size)) for k, a in zip(PLAN_KEYS, arrays)}

    ds = tf.data.Dataset.range(1).map(planned)  # one plan per iteration of the dataset: one epoch
    ds = ds.flat_map(tf.data.Dataset.from_tensor_slices)
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))
    return ds.prefetch(tf.data.AUTOTUNE)


def crop_and_flip(images, y, x, flip, size):
    """uint8 (B, T, T, 3) -> (B, size, size, 3): image i cropped at rows y[i].., columns x[i].., mirrored
    left-right where flip[i]. Two gathers over the whole batch."""
    import tensorflow as tf

    steps = tf.range(size, dtype=tf.int64)
    rows = y[:, None] + steps
    cols = tf.where(flip[:, None], x[:, None] + (size - 1) - steps, x[:, None] + steps)
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


class DeviceSplit:
    """A split's uint8 images and float32 embeddings as variables on the default device (a GPU if there is
    one), and the assembly of a plan into a training batch."""

    def __init__(self, split, image_size, augment=True):
        import tensorflow as tf

        self.size, self.augment = int(image_size), augment
        self.images = tf.Variable(np.asarray(split.images), trainable=False, name="split_images")
        n, self.n_captions, dim = split.embeddings.shape
        # One row per (image, caption): a caption is then one plain gather, which XLA compiles.
        captions = np.asarray(split.embeddings, np.float32).reshape(n * self.n_captions, dim)
        self.embeddings = tf.Variable(captions, trainable=False, name="split_captions")

    def assemble(self, plan):
        """A plan batch -> (real uint8 (B, S, S, 3), embeddings float32 (B, D), wrong uint8 (B, S, S, 3))."""
        import tensorflow as tf

        both = tf.gather(self.images, tf.concat([plan["index"], plan["wrong"]], 0))
        if self.augment:
            y = tf.concat([plan["real_y"], plan["wrong_y"]], 0)
            x = tf.concat([plan["real_x"], plan["wrong_x"]], 0)
            both = crop_and_flip(both, y, x, tf.concat([plan["real_flip"], plan["wrong_flip"]], 0), self.size)
        real, wrong = tf.split(both, 2)
        embeddings = tf.gather(self.embeddings, plan["index"] * self.n_captions + plan["caption"])
        return real, embeddings, wrong


def make_dataset(split, batch_size, image_size, augment=True, seed=None, shuffle=True, first_epoch=0):
    """A tf.data.Dataset of (images, embeddings, wrong_images) batches for one epoch per iteration: the plans
    of make_plan_dataset assembled inside tf.data. images and wrong_images are uint8 (B, S, S, 3), per
    sample a real image of a different class for the wrong ones; embeddings float32 (B, D), one of each
    sample's captions drawn at random every step. augment=True: split.images are larger than S
    (stored_size) and each image is randomly cropped to S and flipped half the time; augment=False:
    split.images must already be S x S."""
    import tensorflow as tf

    plans = make_plan_dataset(split, batch_size, image_size, augment, seed, shuffle, first_epoch)
    source = DeviceSplit(split, image_size, augment)
    return plans.map(source.assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class TrainingInput:
    """The training batches of one split for a run: a DeviceSplit and the plan dataset that indexes it, made
    together from one set of settings. `steps` batches per epoch; iterator() gives one iterator for the whole run
    (a fresh iterator of a distributed dataset costs about 3 s per epoch)."""

    def __init__(self, split, image_size, batch_size, augment, seed, first_epoch=0, steps_per_epoch=None):
        # The images and embeddings go once onto the machine's first device (outside any strategy scope: no copy
        # to broadcast between workers); the replicas gather their batches from it.
        self.source = DeviceSplit(split, image_size, augment)
        self.plans = make_plan_dataset(
            split, batch_size, image_size, augment=augment, seed=seed, first_epoch=first_epoch
        )
        self.steps = len(self.plans) if steps_per_epoch is None else min(len(self.plans), steps_per_epoch)
        if self.steps < len(self.plans):
            self.plans = self.plans.take(self.steps)

    def iterator(self, strategy):
        import tensorflow as tf

        options = tf.data.Options()  # plans come from a generator: shard by element, not by file
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return iter(strategy.experimental_distribute_dataset(self.plans.repeat().with_options(options)))
