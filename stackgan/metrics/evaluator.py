"""The R-precision evaluator: a dual encoder trained apart from the GAN, contrastively, on the real training images of
a dataset and their captions' char-CNN-RNN embeddings (the dataset's own 1024-d vectors, the space that the caption
encoder maps new sentences into). It never sees a generated image, and no generator ever sees it.

Image side: a small CNN (strided 4x4 convolutions, batch norm, leaky ReLU, global average pooling, a linear
projection). Text side: the caption embedding, standardised with the training split's mean and scale, through a
two-layer perceptron. Both end in `dim`-d vectors compared by cosine. The loss is DAMSM's sentence loss (AttnGAN):
the cosine scores times GAMMA, cross-entropy over the batch in both directions, with the other images of the same
class left out of the negatives (R-precision draws its negatives from other classes too). Training images are
flipped and shifted at random; each step reads one of an image's captions at random.

A trained evaluator is cached as <evaluator dir>/rprecision-<key>.weights.h5 with a .json beside it (written last:
its presence says the pair is complete); <key> hashes the training split's files and the settings, so a changed
dataset or setting trains a new one. It computes in float32 whatever the process's dtype policy is.
"""

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.runtime import dtype_policy

VERSION = 1
GAMMA = 10.0  # DAMSM's gamma3: the inverse temperature of the cosine scores
SHIFT = 8  # training images are shifted by up to size / SHIFT pixels
RETRAIN_FLAG = "--retrain-evaluator"


@dataclasses.dataclass(frozen=True)
class EvaluatorSettings:
    """What an evaluator is (architecture) and how it is trained; the defaults fit CUB on a GPU."""

    image_size: int = 128
    width: int = 32
    dim: int = 256
    text_hidden: int = 512
    epochs: int = 40
    batch_size: int = 64
    lr: float = 5e-4
    seed: int = 0

    def replace(self, **changes):
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# 'cub': the defaults. 'small': the synthetic birds, trained in seconds on 2 CPU cores (docs/experiments.md).
PRESETS = {
    "cub": EvaluatorSettings(),
    "small": EvaluatorSettings(image_size=64, width=16, dim=64, text_hidden=128, epochs=30, lr=2e-3),
}


def settings_for(data_dir, preset="auto", **overrides):
    """The settings of `preset` ('auto': 'small' on a synthetic set, else 'cub') with the given overrides (None keeps
    the preset's value), checked."""
    if preset == "auto":
        preset = "small" if layout.is_synthetic(data_dir) else "cub"
    if preset not in PRESETS:
        raise UserError(f"evaluator preset {preset!r}: use one of auto, {', '.join(PRESETS)}")
    s = PRESETS[preset].replace(**overrides)
    if not 16 <= s.image_size <= 512:
        raise UserError(f"--evaluator-size {s.image_size}: use 16 to 512 pixels")
    for name in ("width", "dim", "text_hidden", "epochs", "batch_size"):
        if getattr(s, name) < 1:
            raise UserError(f"evaluator {name} {getattr(s, name)} must be at least 1")
    if s.batch_size < 2:
        raise UserError("the evaluator's batch needs at least 2 images (a contrastive loss compares them)")
    return s


# ---------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------
def image_blocks(image_size):
    """Strided blocks down to about 4x4 pixels: 4 at 64, 5 at 128."""
    return max(1, round(math.log2(image_size / 4)))


def build_dual_encoder(settings, embedding_dim):
    """One Keras model, float32 whatever the global policy: [uint8-range images scaled to [-1, 1] (N, S, S, 3),
    standardised embeddings (N, D)] -> [image vectors (N, dim), text vectors (N, dim)], not normalised."""
    import keras
    from keras import layers

    s = settings
    with dtype_policy("off"):
        images = keras.Input((s.image_size, s.image_size, 3), name="images")
        h = images
        for i in range(image_blocks(s.image_size)):
            h = layers.Conv2D(s.width * 2 ** min(i, 3), 4, strides=2, padding="same", use_bias=False, name=f"conv{i}")(
                h
            )
            h = layers.BatchNormalization(name=f"bn{i}")(h)
            h = layers.LeakyReLU(negative_slope=0.2, name=f"act{i}")(h)
        h = layers.GlobalAveragePooling2D(name="pool")(h)
        image_vectors = layers.Dense(s.dim, name="image_projection")(h)

        texts = keras.Input((embedding_dim,), name="embeddings")
        t = layers.Dense(s.text_hidden, name="text_hidden")(texts)
        t = layers.LeakyReLU(negative_slope=0.2, name="text_act")(t)
        text_vectors = layers.Dense(s.dim, name="text_projection")(t)
        return keras.Model([images, texts], [image_vectors, text_vectors], name="rprecision_evaluator")


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


class Evaluator:
    """A trained dual encoder: image_features() and text_features() give unit float32 vectors whose dot product is
    the cosine score of an image and a caption."""

    def __init__(self, model, settings, text_mean, text_scale, path=None, trained_s=None):
        self.model, self.settings = model, settings
        self.text_mean = np.asarray(text_mean, np.float32)
        self.text_scale = float(text_scale)
        self.path, self.trained_s = path, trained_s  # trained_s: seconds, when trained by this process
        self._image_net = self._text_net = None

    @property
    def image_size(self):
        return self.settings.image_size

    def _nets(self):
        import keras

        if self._image_net is None:
            m = self.model
            self._image_net = keras.Model(m.inputs[0], m.outputs[0])
            self._text_net = keras.Model(m.inputs[1], m.outputs[1])
        return self._image_net, self._text_net

    def standardise(self, embeddings):
        return (np.asarray(embeddings, np.float32) - self.text_mean) / self.text_scale

    def image_features(self, images, batch_size=256):
        """uint8 images (N, H, W, 3) of any one size -> unit (N, dim); resized (bilinear) to the evaluator's size."""
        net = self._nets()[0]
        out = []
        for start in range(0, len(images), batch_size):
            batch = io.resize_batch(np.asarray(images[start : start + batch_size]), self.image_size)
            x = batch.astype(np.float32) / 127.5 - 1.0
            out.append(np.asarray(net(x, training=False), np.float32))
        return _unit(np.concatenate(out)) if out else np.zeros((0, self.settings.dim), np.float32)

    def text_features(self, embeddings, batch_size=4096):
        """Caption embeddings (..., D) -> unit (..., dim)."""
        e = np.asarray(embeddings, np.float32)
        flat = e.reshape(-1, e.shape[-1])
        net = self._nets()[1]
        out = [
            np.asarray(net(self.standardise(flat[s : s + batch_size]), training=False), np.float32)
            for s in range(0, len(flat), batch_size)
        ]
        features = np.concatenate(out) if out else np.zeros((0, self.settings.dim), np.float32)
        return _unit(features).reshape(e.shape[:-1] + (self.settings.dim,))


# ---------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------
def default_dir(data_dir):
    return os.path.join(data_dir, "evaluator")


def data_key(data_dir, settings):
    """Hash of what an evaluator depends on: the training split's three pickles, the files that decide the crops (CUB's
    tables) and the settings."""
    from stackgan.datasets import dataset_of
    from stackgan.datasets.cache import file_digest

    dataset = dataset_of(data_dir)
    files = list(layout.split_files(data_dir, "train")) + list(dataset.key_files(data_dir))
    for path in files:
        if not os.path.isfile(path):
            raise UserError(f"{path} not found: the R-precision evaluator trains on it; {dataset.data_hint(data_dir)}")
    payload = [VERSION, dataclasses.asdict(settings), [file_digest(p) for p in files]]
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_files(evaluator_dir, key):
    """(weights, json) of the evaluator with this key."""
    stem = os.path.join(evaluator_dir, f"rprecision-{key}")
    return stem + ".weights.h5", stem + ".json"


def load_or_train(data_dir, settings, evaluator_dir=None, retrain=False, log=print):
    """The evaluator for data_dir and settings: read from the cache, or trained (and cached) when missing or when
    `retrain`. A damaged cache entry is refused in one line naming --retrain-evaluator."""
    evaluator_dir = evaluator_dir or default_dir(data_dir)
    key = data_key(data_dir, settings)
    weights, meta_path = cache_files(evaluator_dir, key)
    if not retrain and os.path.isfile(meta_path):
        return _read(weights, meta_path, key, settings)
    return _train_and_cache(data_dir, settings, weights, meta_path, key, log)


def _damaged(path, why):
    return UserError(
        f"{path} is a damaged R-precision evaluator ({why}); pass {RETRAIN_FLAG} to train it again, or delete it"
    )


def _read(weights, meta_path, key, settings):
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        mean, scale = np.asarray(meta["text_mean"], np.float32), float(meta["text_scale"])
        checks = (
            (meta["version"] == VERSION, f"version {meta['version']}, not {VERSION}"),
            (meta["key"] == key, "its key does not match its name"),
            (meta["settings"] == dataclasses.asdict(settings), "its settings do not match its name"),
            (mean.ndim == 1 and len(mean) > 0 and np.isfinite(mean).all(), "no usable text mean"),
            (np.isfinite(scale) and scale > 0, f"text scale {scale}"),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _damaged(meta_path, f"{type(err).__name__}: {str(err)[:80]}") from None
    for ok, why in checks:
        if not ok:
            raise _damaged(meta_path, why)
    if not os.path.isfile(weights):
        raise _damaged(meta_path, f"its weights {os.path.basename(weights)} are missing")
    model = build_dual_encoder(settings, len(mean))
    try:
        with warnings.catch_warnings():  # Keras warns about each layer a wrong file lacks
            warnings.simplefilter("ignore")
            model.load_weights(weights)
    except Exception as err:  # noqa: BLE001 - h5py/Keras raise many types for a damaged file
        raise _damaged(weights, type(err).__name__) from None
    return Evaluator(model, settings, mean, scale, path=weights)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def augment(images, rng):
    """uint8 (N, S, S, 3) -> float32 in [-1, 1]: each image flipped left-right with probability 1/2 and shifted by up
    to S / SHIFT pixels each way (edges repeated)."""
    n, size = len(images), images.shape[1]
    pad = max(1, size // SHIFT)
    padded = np.pad(np.asarray(images), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * pad + 1, (2, n))
    out = np.stack([padded[i, dy[i] : dy[i] + size, dx[i] : dx[i] + size] for i in range(n)])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out.astype(np.float32) / 127.5 - 1.0


def damsm_loss(image_vectors, text_vectors, class_ids):
    """DAMSM's sentence loss on a batch: cosine scores times GAMMA, cross-entropy image -> caption and caption ->
    image, the other pairs of the same class masked out of the negatives."""
    import tensorflow as tf

    i = tf.math.l2_normalize(image_vectors, axis=-1)
    t = tf.math.l2_normalize(text_vectors, axis=-1)
    logits = GAMMA * tf.matmul(i, t, transpose_b=True)
    n = tf.shape(logits)[0]
    same = tf.equal(class_ids[:, None], class_ids[None, :])
    masked = tf.logical_and(same, tf.logical_not(tf.eye(n, dtype=tf.bool)))
    logits = tf.where(masked, tf.constant(-1e4, logits.dtype), logits)
    labels = tf.range(n)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits
    return tf.reduce_mean(ce(labels, logits)) + tf.reduce_mean(ce(labels, tf.transpose(logits)))


def _train_and_cache(data_dir, settings, weights, meta_path, key, log):
    import keras
    import tensorflow as tf

    from stackgan.datasets.cache import load_dataset

    s = settings
    train = load_dataset(data_dir, "train", s.image_size)
    n = len(train.images)
    if len(np.unique(train.class_ids)) < 2:
        raise UserError(f"the training split of {data_dir} has one class; the evaluator needs at least two")
    embeddings = np.asarray(train.embeddings, np.float32)
    mean = embeddings.reshape(-1, embeddings.shape[-1]).mean(axis=0)
    scale = float(np.sqrt(np.mean(np.square(embeddings - mean)))) or 1.0
    keras.utils.set_random_seed(s.seed)
    model = build_dual_encoder(s, embeddings.shape[-1])
    batch = min(s.batch_size, n)
    steps = s.epochs * (n // batch)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(s.lr, steps))
    evaluator = Evaluator(model, s, mean, scale, path=weights)
    log(
        f"Training the R-precision evaluator on the {n} real training images of {data_dir} and their captions "
        f"({s.image_size}x{s.image_size}, width {s.width}, {s.dim}-d, {s.epochs} epochs, "
        f"{model.count_params():,} parameters); it is cached in {os.path.dirname(weights) or '.'}"
    )

    @tf.function(reduce_retracing=True)
    def step(images, texts, classes):
        with tf.GradientTape() as tape:
            image_vectors, text_vectors = model([images, texts], training=True)
            loss = damsm_loss(image_vectors, text_vectors, classes)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng([s.seed, 31])
    started = time.time()
    for epoch in range(s.epochs):
        order = rng.permutation(n)
        losses = []
        for first in range(0, n - batch + 1, batch):  # whole batches: batch norm and the loss compare them
            rows = np.sort(order[first : first + batch])  # sorted: memory-mapped reads in file order
            images = augment(train.images[rows], rng)
            captions = embeddings[rows, rng.integers(0, embeddings.shape[1], len(rows))]
            classes = np.asarray(train.class_ids[rows], np.int64)
            losses.append(float(step(images, evaluator.standardise(captions), classes)))
        if epoch == 0 or (epoch + 1) % max(1, s.epochs // 5) == 0 or epoch + 1 == s.epochs:
            took = time.time() - started
            left = took / (epoch + 1) * (s.epochs - epoch - 1)
            log(
                f"  evaluator epoch {epoch + 1}/{s.epochs}: loss {np.mean(losses):.3f} ({took:.0f} s"
                + (f", about {left:.0f} s to go)" if left else ")")
            )
    evaluator.trained_s = time.time() - started
    try:
        io.save_weights(model, weights)
        io.write_json(
            meta_path,
            {
                "version": VERSION,
                "key": key,
                "settings": dataclasses.asdict(s),
                "text_mean": [round(float(v), 6) for v in mean],
                "text_scale": scale,
                "data_dir": os.path.abspath(data_dir),
                "train_images": n,
                "final_loss": float(np.mean(losses)),
                "trained_s": round(evaluator.trained_s, 1),
            },
        )
    except io.WriteError as err:  # a read-only or full folder: the evaluator still scores, it is just not kept
        print(f"warning: the R-precision evaluator is not cached ({err})", file=sys.stderr)
        evaluator.path = None
    evaluator.text_mean = np.asarray([round(float(v), 6) for v in mean], np.float32)  # as a later read gets it
    return evaluator
