"""The training input, in two parts.

1. A tf.data pipeline of *plans*: NumPy plans each epoch from a seeded generator (the order, each sample's
   caption, a wrong image from another class, every crop offset and flip), and the pipeline hands them out
   one batch of indices at a time. It moves a few bytes per image, so it never holds the step back.
2. A source that turns a plan into the batch, in one of two places (--input):
   - DeviceSplit (`device`): the split's uint8 images and its embeddings kept as variables on the device (GPU
     memory, or RAM on a CPU), once per machine. Inside the compiled training step, DeviceSplit.assemble gathers
     the real and wrong images, crops + flips them as two gathers over the batch, and gathers the captions'
     embeddings. Nothing image-sized crosses from the host per step.
   - HostSplit (`host`): the images stay memory-mapped on the host. tf.data reads each batch's real and wrong
     images at their stored size and its embeddings, several batches in parallel, and prefetches them to the
     device; inside the step HostSplit.assemble crops and flips them. Host memory stays a few batches,
     whatever the size of the split.
   For the same plan both give the same batch.

TrainingInput makes the source and the plans for one split, so that they agree on size, augmentation and batch;
make_dataset runs the same assembly inside tf.data instead, for code that wants image batches.
"""

import numpy as np

from stackgan.cli import UserError
from stackgan.config import stored_size
from stackgan.datasets.rows import RowReader

PLACEMENTS = ("device", "host")
# Batches the host path keeps prefetched on the device (also what the memory estimate counts for it).
HOST_BATCHES_ON_DEVICE = 2
# Bytes per copy while DeviceSplit fills its variables from the cache.
UPLOAD_CHUNK_BYTES = 64 << 20
CROP_KEYS = ("real_y", "real_x", "real_flip", "wrong_y", "wrong_x", "wrong_flip")
# The fake's condition is e[mix_b] + e[mix_c] - e[index] (each at its caption): the sample's own caption unless the
# plan mixes its condition (mix_b = mix_c = index then).
MIX_KEYS = ("mix_b", "mix_b_caption", "mix_c", "mix_c_caption")
PLAN_KEYS = ("index", "caption", "wrong") + CROP_KEYS + MIX_KEYS


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


def epoch_plan(
    class_ids, n_captions, batch_size, stored, size, augment, seed, epoch, shuffle=True, hard=None, mixing=None
):
    """Everything random about one epoch, as arrays with one row per batch: sample index, caption, wrong
    image (of another class), crop rows/columns and flips for the real and the wrong images, and the fake's condition.
    hard: (table, fraction): that fraction of the wrong images comes instead from the sample's row of the
    (N, k) table of hard wrong images (stackgan.training.neighbours; -1: none, the other-class one stays).
    mixing: (table, fraction): that fraction of the fakes is drawn from a mixed condition e_b + e_c - e_index, (b, c)
    from the sample's row of the (N, m, 2) table of stackgan.training.neighbours.mixed_conditions (-1: none, the
    sample's own caption stays), each at a random caption.
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
        wrong = order[np.where(r < starts[cls], r, r + counts[cls])]
        if hard is not None and hard[1] > 0:
            table, fraction = hard
            candidate = table[idx, rng.integers(0, table.shape[1], len(idx))]
            wrong = np.where((rng.random(len(idx)) < fraction) & (candidate >= 0), candidate, wrong)
        plan["wrong"].append(wrong)
        mix_b, mix_c = idx, idx
        mix_b_caption = mix_c_caption = caption = rng.integers(0, n_captions, len(idx))
        plan["caption"].append(caption)
        if mixing is not None and mixing[1] > 0:
            table, fraction = mixing
            count = (table[idx, :, 0] >= 0).sum(axis=1)  # valid entries come first in each row
            pair = table[idx, (rng.random(len(idx)) * count).astype(np.int64)]
            mixed = (rng.random(len(idx)) < fraction) & (pair[:, 0] >= 0)
            mix_b, mix_c = np.where(mixed, pair[:, 0], idx), np.where(mixed, pair[:, 1], idx)
            mix_b_caption = np.where(mixed, rng.integers(0, n_captions, len(idx)), caption)
            mix_c_caption = np.where(mixed, rng.integers(0, n_captions, len(idx)), caption)
        plan["mix_b"].append(mix_b)
        plan["mix_b_caption"].append(mix_b_caption)
        plan["mix_c"].append(mix_c)
        plan["mix_c_caption"].append(mix_c_caption)
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


def make_plan_dataset(
    split,
    batch_size,
    image_size,
    augment=True,
    seed=None,
    shuffle=True,
    first_epoch=0,
    hard_wrong=0.0,
    mix_conditions=0.0,
):
    """A tf.data.Dataset of plan batches (dicts of PLAN_KEYS, each (batch_size,)) for one epoch per iteration.
    hard_wrong: the fraction of wrong images drawn from each sample's hard wrong images (hard_negatives of the
    split's embeddings) instead of a random other class; mix_conditions: the fraction of fakes drawn from mixed
    conditions (stackgan.training.neighbours).

    Batches have exactly batch_size rows (the remainder is dropped). The k-th iteration is epoch
    first_epoch + k: with a seed the sequence of epochs is the same in every run, and a resumed run
    continues it."""
    import tensorflow as tf

    size, batch_size = int(image_size), int(batch_size)
    _check(split, batch_size, size, augment)
    stored, n_captions = split.images.shape[1], split.embeddings.shape[1]
    n_batches = len(split.images) // batch_size
    next_epoch = [int(first_epoch)]
    hard = mixing = None
    if hard_wrong > 0 or mix_conditions > 0:
        from stackgan.training.neighbours import hard_negatives, mixed_conditions

        neighbours = hard_negatives(split.embeddings)
        hard = (neighbours, float(hard_wrong))
        if mix_conditions > 0:
            mixing = (mixed_conditions(split.embeddings, neighbours, seed=seed or 0), float(mix_conditions))

    def next_plan():
        epoch = next_epoch[0]
        next_epoch[0] += 1
        plan = epoch_plan(
            split.class_ids, n_captions, batch_size, stored, size, augment, seed, epoch, shuffle, hard, mixing
        )
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


def crop_pair(real, wrong, plan, size):
    """The real and wrong images of a batch (uint8 (B, T, T, 3) each) cropped to size and flipped as the plan says."""
    real = crop_and_flip(real, plan["real_y"], plan["real_x"], plan["real_flip"], size)
    return real, crop_and_flip(wrong, plan["wrong_y"], plan["wrong_x"], plan["wrong_flip"], size)


def device_variable(array, name):
    """A non-trainable tf.Variable on the default device holding `array` (N, ...), filled from it a chunk at a time:
    neither the host nor the device ever holds a second whole copy, and a memory-mapped cache is read without being
    mapped (RowReader)."""
    import tensorflow as tf

    reader = RowReader(array)
    # From a callable, the zeros' buffer becomes the variable's own; an initial value still referenced elsewhere
    # would make the first update copy the whole variable.
    variable = tf.Variable(lambda: tf.zeros(array.shape, tf.as_dtype(array.dtype)), trainable=False, name=name)
    chunk = max(1, UPLOAD_CHUNK_BYTES // max(reader.row_bytes, 1))
    for start in range(0, len(array), chunk):
        stop = min(start + chunk, len(array))
        # scatter_update writes in place; a slice assignment would first read (and so copy) the variable. After it,
        # a dense read of the variable copies it: assemble only gathers from it.
        variable.scatter_update(tf.IndexedSlices(reader.range(start, stop), tf.range(start, stop)))
    return variable


def caption_rows(embeddings):
    """(N, captions, D) embeddings as float32 (N * captions, D), one row per (image, caption), without a copy for
    a float32 cache: a caption is then one plain gather, which XLA compiles."""
    n, n_captions, dim = embeddings.shape
    if embeddings.dtype != np.float32:
        embeddings = embeddings.astype(np.float32)
    return embeddings.reshape(n * n_captions, dim)  # a memmap stays one


class DeviceSplit:
    """A split's uint8 images and float32 embeddings as variables on the default device (a GPU if there is
    one), and the assembly of a plan into a training batch."""

    def __init__(self, split, image_size, augment=True):
        self.size, self.augment = int(image_size), augment
        self.n_captions = split.embeddings.shape[1]
        self.images = device_variable(split.images, "split_images")
        self.embeddings = device_variable(caption_rows(split.embeddings), "split_captions")

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

    def fake_embeddings(self, plan):
        """The condition each fake of a plan batch is drawn from: float32 (B, D)."""
        import tensorflow as tf

        rows = [plan[k] * self.n_captions + plan[f"{k}_caption"] for k in ("mix_b", "mix_c")]
        rows.append(plan["index"] * self.n_captions + plan["caption"])
        b, c, a = tf.split(tf.gather(self.embeddings, tf.concat(rows, 0)), 3)
        return b + c - a


class HostSplit:
    """A split left memory-mapped on the host: gather (in tf.data) reads a plan's real and wrong images at their
    stored size and its captions' embeddings; assemble (in the step) crops and flips them."""

    def __init__(self, split, image_size, augment=True):
        self.size, self.augment = int(image_size), augment
        self.stored = split.images.shape[1]
        self.n_captions = split.embeddings.shape[1]
        self.images = RowReader(split.images)
        self.captions = RowReader(caption_rows(split.embeddings))

    def read(self, index, wrong, caption, mix_b, mix_b_caption, mix_c, mix_c_caption):
        """NumPy, in tf.data's threads: (real images, wrong images, embeddings, the fakes' conditions) of one batch."""
        embeddings = self.captions.take(index * self.n_captions + caption)
        mixed = (
            self.captions.take(mix_b * self.n_captions + mix_b_caption)
            + self.captions.take(mix_c * self.n_captions + mix_c_caption)
            - embeddings
        )
        return self.images.take(index), self.images.take(wrong), embeddings, mixed.astype(np.float32)

    def gather(self, plan):
        """A plan batch -> the batch the step assembles: its real and wrong uint8 images (B, T, T, 3), embeddings
        float32 (B, D), and the plan's crops and flips."""
        import tensorflow as tf

        real, wrong, embeddings, mixed = tf.numpy_function(
            self.read,
            [plan["index"], plan["wrong"], plan["caption"]] + [plan[k] for k in MIX_KEYS],
            [tf.uint8, tf.uint8, tf.float32, tf.float32],
            stateful=False,
        )
        batch = plan["index"].shape[0]
        images = (batch, self.stored, self.stored, 3)
        gathered = {k: plan[k] for k in CROP_KEYS + ("index",) + MIX_KEYS}
        gathered.update(
            real=tf.ensure_shape(real, images),
            wrong=tf.ensure_shape(wrong, images),
            embedding=tf.ensure_shape(embeddings, (batch, self.captions.row_shape[0])),
            fake_embedding=tf.ensure_shape(mixed, (batch, self.captions.row_shape[0])),
        )
        return gathered

    def assemble(self, batch):
        """A gathered batch -> (real uint8 (B, S, S, 3), embeddings float32 (B, D), wrong uint8 (B, S, S, 3))."""
        real, wrong = batch["real"], batch["wrong"]
        if self.augment:
            real, wrong = crop_pair(real, wrong, batch, self.size)
        return real, batch["embedding"], wrong

    def fake_embeddings(self, batch):
        """The condition each fake of a gathered batch is drawn from: float32 (B, D)."""
        return batch["fake_embedding"]


def make_source(split, image_size, augment, placement):
    """The DeviceSplit or HostSplit of --input device|host."""
    if placement not in PLACEMENTS:
        raise UserError(f"unknown input placement {placement!r}: expected device or host")
    return (DeviceSplit if placement == "device" else HostSplit)(split, image_size, augment)


def source_dataset(plans, source):
    """What the step takes from a source: the plans themselves for a DeviceSplit, for a HostSplit the batches that
    tf.data gathers from them, several at a time, in order."""
    import tensorflow as tf

    if isinstance(source, DeviceSplit):
        return plans
    return plans.map(source.gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_dataset(
    split, batch_size, image_size, augment=True, seed=None, shuffle=True, first_epoch=0, placement="device"
):
    """A tf.data.Dataset of (images, embeddings, wrong_images) batches for one epoch per iteration: the plans
    of make_plan_dataset assembled inside tf.data. images and wrong_images are uint8 (B, S, S, 3), per
    sample a real image of a different class for the wrong ones; embeddings float32 (B, D), one of each
    sample's captions drawn at random every step. augment=True: split.images are larger than S
    (stored_size) and each image is randomly cropped to S and flipped half the time; augment=False:
    split.images must already be S x S. placement: where the images are gathered from (the same batches)."""
    import tensorflow as tf

    plans = make_plan_dataset(split, batch_size, image_size, augment, seed, shuffle, first_epoch)
    source = make_source(split, image_size, augment, placement)
    batches = source_dataset(plans, source)
    return batches.map(source.assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class TrainingInput:
    """The training batches of one split for a run: a source (DeviceSplit or HostSplit, as placement says) and the
    plan dataset that indexes it, made together from one set of settings. `steps` batches per epoch; `dataset` is
    what the step takes (source.assemble makes the batch of each element); iterator() gives one iterator for the
    whole run (a fresh iterator of a distributed dataset costs about 3 s per epoch)."""

    def __init__(
        self,
        split,
        image_size,
        batch_size,
        augment,
        seed,
        first_epoch=0,
        steps_per_epoch=None,
        placement="device",
        hard_wrong=0.0,
        mix_conditions=0.0,
    ):
        # A DeviceSplit goes once onto the machine's first device (outside any strategy scope: no copy to broadcast
        # between workers); the replicas gather their batches from it.
        self.placement = placement
        self.source = make_source(split, image_size, augment, placement)
        self.plans = make_plan_dataset(
            split,
            batch_size,
            image_size,
            augment=augment,
            seed=seed,
            first_epoch=first_epoch,
            hard_wrong=hard_wrong,
            mix_conditions=mix_conditions,
        )
        self.steps = len(self.plans) if steps_per_epoch is None else min(len(self.plans), steps_per_epoch)
        if self.steps < len(self.plans):
            self.plans = self.plans.take(self.steps)
        self.dataset = source_dataset(self.plans, self.source)

    def iterator(self, strategy):
        import tensorflow as tf

        options = tf.data.Options()  # plans come from a generator: shard by element, not by file
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = self.dataset.repeat().with_options(options)
        if self.placement == "host" and strategy.num_replicas_in_sync == 1 and tf.config.list_logical_devices("GPU"):
            # One GPU without a strategy: copy the next batches there while the step runs (a distributed dataset
            # prefetches to every replica's device itself).
            dataset = dataset.apply(tf.data.experimental.prefetch_to_device("/gpu:0", HOST_BATCHES_ON_DEVICE))
        return iter(strategy.experimental_distribute_dataset(dataset))
