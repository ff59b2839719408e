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
make_dataset runs the same assembly inside tf.data instead, for code that wants image batches. Where the images live
follows from what the run will hold in memory (plan_input, below), and the host path reads rows of the cache with
RowReader (at the end).
"""

import dataclasses
import math
import os

import numpy as np

from stackgan.cli import UserError
from stackgan.runtime import PRECISION_LABELS, format_bytes
from stackgan.config import stored_size

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
            f"load the split with load_dataset(..., stored_size({size}, True)) = {stored_size(size, True)}"
        )
    if not augment and stored != size:
        raise UserError(
            f"images are stored at {stored}x{stored} but augment=False needs {size}x{size}; "
            f"load the split with load_dataset(..., {size})"
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
    plans that index it, made from one set of settings. `steps` batches per epoch; dataset(first_epoch) is what the
    step takes (source.assemble makes the batch of each element), from that epoch on (a resumed run continues the
    sequence of epochs); iterator() gives one iterator for the whole run (a fresh iterator of a distributed dataset
    costs about 3 s per epoch)."""

    def __init__(
        self,
        split,
        image_size,
        batch_size,
        augment,
        seed,
        steps_per_epoch=None,
        placement="device",
        hard_wrong=0.0,
        mix_conditions=0.0,
    ):
        # A DeviceSplit goes once onto the machine's first device (outside any strategy scope: no copy to broadcast
        # between workers); the replicas gather their batches from it.
        _check(split, int(batch_size), int(image_size), augment)
        self.split, self.image_size, self.augment, self.seed = split, int(image_size), augment, seed
        self.batch_size = int(batch_size)
        self.placement = placement
        self.source = make_source(split, image_size, augment, placement)
        self.hard_wrong, self.mix_conditions = hard_wrong, mix_conditions
        batches = len(split.images) // int(batch_size)
        self.steps = batches if steps_per_epoch is None else min(batches, steps_per_epoch)

    def dataset(self, first_epoch=0):
        plans = make_plan_dataset(
            self.split,
            self.batch_size,
            self.image_size,
            augment=self.augment,
            seed=self.seed,
            first_epoch=first_epoch,
            hard_wrong=self.hard_wrong,
            mix_conditions=self.mix_conditions,
        )
        if self.steps < len(plans):
            plans = plans.take(self.steps)
        return source_dataset(plans, self.source)

    def iterator(self, strategy, first_epoch=0):
        import tensorflow as tf

        options = tf.data.Options()  # plans come from a generator: shard by element, not by file
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = self.dataset(first_epoch).repeat().with_options(options)
        if self.placement == "host" and strategy.num_replicas_in_sync == 1 and tf.config.list_logical_devices("GPU"):
            # One GPU without a strategy: copy the next batches there while the step runs (a distributed dataset
            # prefetches to every replica's device itself).
            dataset = dataset.apply(tf.data.experimental.prefetch_to_device("/gpu:0", HOST_BATCHES_ON_DEVICE))
        return iter(strategy.experimental_distribute_dataset(dataset))


# ---------------------------------------------------------------------------
# Where the images live (--input): what a run will hold in its device's memory
#
# What a run will hold in its device's memory, said in one line before the first step, and where its training
# images go (--input auto|device|host).
# #
# # The estimate adds up, per replica, from the built networks and optimizers:
# - weights: every variable of the networks (the frozen Stage-I generator's too), at its own dtype;
# - gradients: one per trainable weight, float32;
# - optimizer: the optimizers' variables as built (Adam's two slots per weight, a third for the generator with --g-ema);
# - activations: the forward outputs that the backward pass keeps, counted as every layer's output (the models'
#   inputs included) from the built models' output shapes, at the dtype each layer computes in: the generator's for
#   the replica's batch, the discriminator's for three times it (it sees the real, wrong and fake images in one call).
#   The frozen Stage-I generator's outputs are not kept (nothing is differentiated through it);
# - input: with --input device the split's images and embeddings (one copy per replica); with --input host the
#   HOST_BATCHES_ON_DEVICE batches prefetched to the device, at their stored size.
# TensorFlow needs more than this (convolution workspace, the backward pass's temporaries, casts, its allocator's
# slack): on this project's 2-core Xeon the resident memory grew during the first steps by 1.6-2.8x the activations
# and gradients counted here (Stage-I and Stage-II, float32 and bf16, XLA on and off). So the estimate is a floor: a
# run whose estimate does not fit in the device's free memory cannot run, and is refused before it starts.
# ---------------------------------------------------------------------------
# --input auto keeps the images on the device only where their copies take at most this share of its free memory.
DEVICE_SHARE = 0.5


def variable_bytes(variables):
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)


def activation_bytes_per_example(model):
    """Bytes of every layer output of a built Keras model for one example, at each output's dtype."""
    import keras

    total = 0
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.output):
            total += math.prod(tensor.shape[1:]) * np.dtype(tensor.dtype).itemsize
    return total


def split_bytes(split):
    """What a DeviceSplit holds: the uint8 images and the float32 embeddings."""
    return split.images.nbytes + math.prod(split.embeddings.shape) * 4


def host_batch_bytes(split, batch):
    """One gathered host batch: real and wrong images at their stored size, and the embeddings."""
    return batch * (2 * math.prod(split.images.shape[1:]) + split.embeddings.shape[-1] * 4)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Bytes per replica."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    input: int
    placement: str
    batch: int  # per replica
    precision: str
    replicas: int = 1

    @property
    def total(self):
        return self.weights + self.gradients + self.optimizer + self.activations + self.input

    def needed(self, memory):
        """Bytes the run needs of `memory`: replicas on a CPU share its RAM, GPUs each hold their own."""
        return self.total * (self.replicas if memory is not None and memory.kind == "RAM" else 1)

    def parts(self):
        images = "the images on the device" if self.placement == "device" else f"{HOST_BATCHES_ON_DEVICE} host batches"
        return (
            f"weights {format_bytes(self.weights)}, gradients {format_bytes(self.gradients)}, "
            f"optimizer {format_bytes(self.optimizer)}, activations {format_bytes(self.activations)} "
            f"(batch {self.batch}, {PRECISION_LABELS[self.precision]}), input {format_bytes(self.input)} ({images})"
        )

    def line(self, memory):
        """The start-up's memory line."""
        scope = f" per replica x {self.replicas}" if self.replicas > 1 else ""
        where = "free memory unknown" if memory is None else memory.describe()
        return f"Memory estimate: at least {format_bytes(self.total)}{scope} ({self.parts()}) | {where}"


def estimate(trainer, split, placement, replicas=1):
    """The Estimate of a StackGANTrainer's run on `split` with --input `placement`."""
    gen, dis = trainer.gen, trainer.dis
    networks = [gen, dis] + ([trainer.stage1_gen] if trainer.stage1_gen is not None else [])
    batch = -(-trainer.global_batch_size // replicas)
    activations = (activation_bytes_per_example(gen) + 3 * activation_bytes_per_example(dis)) * batch
    return Estimate(
        weights=sum(variable_bytes(m.weights) for m in networks),
        gradients=variable_bytes(gen.trainable_variables) + variable_bytes(dis.trainable_variables),
        optimizer=variable_bytes(trainer.g_opt.variables) + variable_bytes(trainer.d_opt.variables),
        activations=activations,
        input=split_bytes(split) if placement == "device" else HOST_BATCHES_ON_DEVICE * host_batch_bytes(split, batch),
        placement=placement,
        batch=batch,
        precision=trainer.runtime.precision,
        replicas=replicas,
    )


def choose_placement(requested, on_device, memory):
    """(device or host, reason) for --input `requested`, given the Estimate with the images on the device and the
    device's DeviceMemory (None: unknown)."""
    if requested in ("device", "host"):
        return requested, "requested"
    if requested != "auto":
        raise UserError(f"unknown --input {requested!r}: expected auto, device or host")
    if memory is None:
        return "host", "auto: the device's free memory is unknown"
    copies = on_device.input * on_device.replicas
    what = f"the {format_bytes(copies)} of images and embeddings" + (
        f" ({on_device.replicas} copies)" if on_device.replicas > 1 else ""
    )
    free = f"{format_bytes(memory.free)} free {memory.where}"
    if copies > DEVICE_SHARE * memory.free:
        return "host", f"auto: {what} would take more than half of the {free}"
    if on_device.needed(memory) > memory.free:
        needed = format_bytes(on_device.needed(memory))
        return "host", f"auto: with them on the device the run would need at least {needed} of the {free}"
    return "device", f"auto: {what} fit in half of the {free}"


def check_fits(chosen, memory):
    """Refuse, in one line, a run whose estimate does not fit in the device's known free memory."""
    if memory is None or chosen.needed(memory) <= memory.free:
        return
    where = "GPU memory" if memory.kind == "GPU" else "RAM"
    host = "--input host (the images stay on the host), " if chosen.placement == "device" else ""
    raise UserError(
        f"the run needs at least {format_bytes(chosen.needed(memory))} of {where} ({chosen.parts()}) but "
        f"{format_bytes(memory.free)} is free: pass a smaller --batch-size, {host}or smaller --gf-dim/--df-dim"
    )


def plan_input(requested, trainer, split, memory, replicas=1):
    """(placement, reason, Estimate) of a run: where its images go (--input `requested`) and what it will hold."""
    on_device = estimate(trainer, split, "device", replicas)
    placement, reason = choose_placement(requested, on_device, memory)
    chosen = on_device if placement == "device" else estimate(trainer, split, "host", replicas)
    return placement, reason, chosen


# ---------------------------------------------------------------------------
# Rows of a cached array read by index, without mapping the file into the process
#
# Rows of a cached array read by index, without mapping the file into the process.
# #
# # A split's cache is a memory-mapped .npy. Indexing the memmap maps every page it reads into the process: after an
# epoch of random batches the whole file counts as resident memory (2.4 GB for CUB's Stage-II cache, 22 GB for
# MS-COCO's), although the kernel could drop those pages at any time. RowReader reads the rows a batch needs with
# os.preadv straight into the batch's own array instead, so the process holds a batch, and the page cache the rest.
# preadv releases the GIL, so several threads read in parallel.
# ---------------------------------------------------------------------------
# TensorFlow takes a NumPy array returned to it (tf.numpy_function) without a copy only when its data starts on a
# 64-byte boundary; NumPy's own arrays start 16 bytes past one, which costs a copy of every batch (6 ms for a
# Stage-II batch of 64 real and 64 wrong images on this host's CPU).
ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) whose data starts on an ALIGNMENT-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


def backing_file(array):
    """(path, byte offset of row 0) of the .npy file behind a C-contiguous np.memmap that spans its whole data, or
    None for any other array (in memory, a view of part of a file, a strided view) and where the OS has no preadv
    (Windows): those are indexed."""
    if not hasattr(os, "preadv") or not isinstance(array, np.memmap) or not array.flags.c_contiguous:
        return None
    try:
        path = os.fspath(array.filename)
        size = os.path.getsize(path)
    except (OSError, TypeError):
        return None
    # A view of part of a memmap keeps its parent's offset: only an array spanning the file to its end is read.
    return (path, int(array.offset)) if size == array.offset + array.nbytes else None


class RowReader:
    """take(rows) -> a new array of array[rows], read with one preadv per row from the file behind a memmap, or
    indexed from an array in memory; range(start, stop) -> array[start:stop] in one read. Both return new arrays
    that start on an ALIGNMENT-byte boundary."""

    def __init__(self, array):
        self.array = array
        self.row_shape, self.dtype = tuple(array.shape[1:]), array.dtype
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * array.dtype.itemsize
        source = backing_file(array)
        self.path, self.offset = source if source else (None, 0)
        self._file = open(self.path, "rb", buffering=0) if self.path else None

    def __len__(self):
        return len(self.array)

    def take(self, rows):
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = aligned_empty((len(rows),) + self.row_shape, self.dtype)
        if self._file is None:
            np.take(self.array, rows, axis=0, out=out)
            return out
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.array)):
            raise IndexError(f"rows {rows.min()}..{rows.max()} outside the {len(self.array)} rows of {self.path}")
        view, size = memoryview(out.reshape(-1).view(np.uint8)), self.row_bytes
        # One preadv per row, straight into its place in `out`; the loop is kept lean, it runs for every image.
        for k, position in enumerate((self.offset + rows * size).tolist()):
            if os.preadv(self._file.fileno(), [view[k * size : (k + 1) * size]], position) != size:
                self._read(out[k], int(rows[k]), 1)  # a short read: read on from where it stopped
        return out

    def range(self, start, stop):
        """array[start:stop] as a new array, in one read."""
        out = aligned_empty((stop - start,) + self.row_shape, self.dtype)
        if self._file is None:
            out[...] = self.array[start:stop]
            return out
        self._read(out, start, stop - start)
        return out

    def _read(self, out, row, count):
        view = memoryview(out.reshape(-1).view(np.uint8))
        position, done = self.offset + row * self.row_bytes, 0
        while done < count * self.row_bytes:  # preadv may return less than asked
            got = os.preadv(self._file.fileno(), [view[done:]], position + done)
            if got == 0:
                raise OSError(
                    f"{self.path} ended at row {row} of {len(self.array)}: the cache was truncated or replaced "
                    "during the run; delete it and rerun"
                )
            done += got
