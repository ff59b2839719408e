"""A Keras char-CNN-RNN text encoder: captions -> 1024-d vectors in the space of the char-CNN-RNN embeddings
that the birds archive ships (Reed et al. 2016), so a generator trained on those embeddings draws new text.

    python text_encoder.py train    [--data-dir data/birds --results-dir results --epochs 60 ...] [--demo]
    python text_encoder.py evaluate [--data-dir data/birds --results-dir results] [--json]
    python text_encoder.py evaluate --demo --generated-stage 2     # held-out wording -> images -> colour

The network follows Reed's HybridCNNLong: characters of Reed's alphabet (lowercased, at most max_length)
-> a character embedding -> Conv1D + ReLU blocks, max-pooled by 3 between them -> a GRU -> the average of its
outputs over the caption -> Dense to 1024. It learns by regression onto the archive's embeddings: caption k of
an image onto embedding k of that image ('aligned', as StackGAN pairs them) or onto the mean of its ten
embeddings ('mean'). Padding is masked everywhere, so a caption's vector does not depend on its batch.
Training writes <results>/text_encoder.weights.h5 and text_encoder_config.json (everything needed to rebuild
the network), checkpoints in <results>/text_encoder_ckpt (resumed by default) and TensorBoard scalars in
<logs>/text_encoder.
"""

import json
import os
import re
import shutil
import sys
import time
import unicodedata

import numpy as np

import cli
import data
import files
import hardware
import settings
import synthetic
from cli import UserError, positive_int
from settings import (
    DEMO_DIRS,
    EMBEDDING_DIM,
    TEXT_ALPHABET,
    TEXT_ENCODER_DEFAULTS,
    TEXT_ENCODER_DEMO,
    text_encoder_checkpoint_dir,
    text_encoder_config_path,
    text_encoder_log_dir,
    text_encoder_weights_path,
)

CALIBRATION_MAX_GAIN = 1.25  # measured on the synthetic birds' held-out wording (README)
KERNEL = 4  # Reed's TemporalConvolution width
POOL = 3  # Reed's TemporalMaxPooling(3, 3)
ARCHITECTURE_KEYS = ("alphabet", "max_length", "char_dim", "conv_dims", "rnn_dim", "embedding_dim")
LOSSES = ("mse", "cosine")
TARGETS = ("aligned", "mean")


# ---------------------------------------------------------------------------
# Text -> characters
# ---------------------------------------------------------------------------
def vocabulary(alphabet):
    """{character: index}, indices from 1 (0 is padding); a character listed twice keeps its first place."""
    return {ch: i + 1 for i, ch in enumerate(dict.fromkeys(alphabet))}


def normalize_caption(text, alphabet=TEXT_ALPHABET):
    """The caption the encoder reads: cleaned as data.clean_caption does, lowercased, accents removed, every
    character outside the alphabet made a space, runs of spaces made one."""
    text = unicodedata.normalize("NFKD", data.clean_caption(text).lower())
    known = set(alphabet)
    text = "".join(ch if ch in known else " " for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())


def check_captions(captions, max_length, alphabet=TEXT_ALPHABET, labels=None):
    """Normalized captions, or a UserError naming the first bad one: empty, without a letter, or longer than
    max_length characters (refused rather than cut, so that no part of a description is silently lost).
    labels name each caption in the message (default 'caption 1', 'caption 2', ...)."""
    if not captions:
        raise UserError("no caption given; pass a sentence such as --caption 'a small yellow bird with dark wings'")
    result = []
    for i, text in enumerate(captions):
        label = labels[i] if labels else f"caption {i + 1}"
        if not isinstance(text, str):
            raise UserError(f"{label} is not text ({type(text).__name__})")
        norm = normalize_caption(text, alphabet)
        if not norm:
            raise UserError(f"{label} is empty; describe the bird, e.g. 'a small yellow bird with dark wings'")
        if not re.search("[a-z]", norm):
            raise UserError(f"{label} ({text.strip()[:40]!r}) has no letters; describe the bird in words")
        if len(norm) > max_length:
            raise UserError(
                f"{label} has {len(norm)} characters but the text encoder reads at most {max_length}; shorten it"
            )
        result.append(norm)
    return result


def augment_captions(texts, rng, rate):
    """Word noise that teaches the encoder to read wordings it never saw: before each word a made-up word
    (3-9 random letters) is inserted with probability rate, each word is dropped with probability rate / 2
    (a caption keeps at least one word), and with probability rate the caption is rotated to start at a later
    word. rate 0 returns texts unchanged."""
    if rate <= 0:
        return list(texts)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out = []
    for text in texts:
        words = text.split()
        insert = rng.random(len(words)) < rate
        keep = rng.random(len(words)) >= rate / 2
        if not keep.any():
            keep[rng.integers(len(words))] = True
        noisy = []
        for word, add, kept in zip(words, insert, keep):
            if add:
                noisy.append("".join(rng.choice(letters, rng.integers(3, 10))))
            if kept:
                noisy.append(word)
        if len(noisy) > 2 and rng.random() < rate:  # say it in another order: the end first
            cut = int(rng.integers(1, len(noisy)))
            noisy = noisy[cut:] + noisy[:cut]
        out.append(" ".join(noisy))
    return out


def length_multiple(config):
    """Token arrays are padded to a multiple of this, so that every max-pooling window sees the same characters
    whatever the padding."""
    return POOL ** (len(config["conv_dims"]) - 1)


def tokenize(texts, config, width=None):
    """Normalized captions -> int32 (N, width) character indices, right-padded with 0 and cut at max_length.
    width defaults to the longest caption rounded up to length_multiple."""
    vocab, limit, m = vocabulary(config["alphabet"]), int(config["max_length"]), length_multiple(config)
    rows = [[vocab[ch] for ch in t[:limit] if ch in vocab] for t in texts]
    if width is None:
        width = max([len(r) for r in rows] + [1])
    width = -(-width // m) * m
    tokens = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return tokens


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------
def make_config(char_dim, conv_dims, rnn_dim, max_length, loss, target, embedding_dim=EMBEDDING_DIM):
    return dict(
        alphabet=TEXT_ALPHABET,
        max_length=int(max_length),
        char_dim=int(char_dim),
        conv_dims=[int(w) for w in conv_dims],
        rnn_dim=int(rnn_dim),
        embedding_dim=int(embedding_dim),
        loss=loss,
        target=target,
        kernel=KERNEL,
        pool=POOL,
    )


def build_encoder(config):
    """The char-CNN-RNN as a Keras functional model: int32 (batch, length) -> float32 (batch, embedding_dim)."""
    import keras
    from keras import layers, ops

    tokens = keras.Input((None,), dtype="int32", name="characters")
    mask = ops.expand_dims(ops.cast(ops.not_equal(tokens, 0), "float32"), -1)
    x = layers.Embedding(len(vocabulary(config["alphabet"])) + 1, config["char_dim"], name="char_embedding")(tokens)
    x = x * mask
    for i, width in enumerate(config["conv_dims"]):
        if i:
            x = layers.MaxPooling1D(POOL, name=f"pool{i}")(x)
            mask = layers.MaxPooling1D(POOL, name=f"mask_pool{i}")(mask)
        x = layers.Conv1D(width, KERNEL, padding="same", activation="relu", name=f"conv{i + 1}")(x) * mask
    h = layers.GRU(config["rnn_dim"], return_sequences=True, name="gru")(x, mask=ops.cast(mask[..., 0], "bool"))
    h = ops.sum(h * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)  # average over the caption's steps
    out = layers.Dense(config["embedding_dim"], name="projection")(h)
    return keras.Model(tokens, out, name="char_cnn_rnn")


def train_command(results_dir):
    if os.path.normpath(results_dir) == os.path.normpath(TEXT_ENCODER_DEMO["results_dir"]):
        return "python text_encoder.py train --demo"
    return f"python text_encoder.py train --results-dir {results_dir}"


def read_config(results_dir):
    """The JSON config written beside the weights; a UserError naming the training command when absent."""
    path, weights = text_encoder_config_path(results_dir), text_encoder_weights_path(results_dir)
    for p in (path, weights):
        if not os.path.isfile(p):
            raise UserError(
                f"{p} not found: no trained text encoder in {results_dir}; run `{train_command(results_dir)}`"
            )
    try:
        with open(path) as f:
            config = json.load(f)
        for key in ARCHITECTURE_KEYS + ("loss",):
            config[key]  # noqa: B018 - a KeyError for an incomplete config
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a readable text encoder config ({type(err).__name__}: {err}); "
            f"run `{train_command(results_dir)} --fresh`"
        ) from None
    return config


_LOADED = {}


def load_encoder(results_dir):
    """(model, config) of the trained encoder in results_dir, rebuilt from its config (cached per file version)."""
    config = read_config(results_dir)
    weights = text_encoder_weights_path(results_dir)
    key = (os.path.abspath(weights), os.stat(weights).st_mtime_ns, json.dumps(config, sort_keys=True))
    if key not in _LOADED:
        model = build_encoder(config)
        try:
            model.load_weights(weights)
        except Exception as err:  # noqa: BLE001 - h5py/Keras raise many types for a wrong or damaged file
            raise UserError(
                f"{weights} does not fit the encoder described by {text_encoder_config_path(results_dir)} "
                f"({type(err).__name__}); run `{train_command(results_dir)} --fresh`"
            ) from None
        _LOADED.clear()
        _LOADED[key] = model
    return _LOADED[key], config


def encode(model, config, texts, batch_size=256, calibrate=True):
    """Normalized captions -> float32 (N, embedding_dim). A cosine-trained encoder's vectors are scaled to the
    mean length of the embeddings it learned from, which the generators expect; then calibrated() when the
    config holds a calibration (every trained encoder does)."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenize(texts[start : start + batch_size], config)
        out.append(np.asarray(model(tokens, training=False), dtype=np.float32))
    vectors = np.concatenate(out) if out else np.zeros((0, config["embedding_dim"]), np.float32)
    if config["loss"] == "cosine":
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
        vectors = vectors / norms * float(config["output_norm"])
    if calibrate and "calibration" in config:
        vectors = calibrated(vectors, config["calibration"])
    return vectors.astype(np.float32)


def calibrated(vectors, calibration):
    """Undo the shrinkage of regression on unfamiliar wording. A regression net that is unsure of a caption
    answers near the mean of the embeddings, and a generator draws such a vector as a vaguer, greyer bird. A
    vector closer to the mean than the encoder's typical training-caption vector ('spread') is pushed out along
    its own direction from the mean, by at most max_gain."""
    mean = np.asarray(calibration["mean"], np.float32)
    offset = vectors - mean
    distance = np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-8)
    gain = np.clip(float(calibration["spread"]) / distance, 1.0, float(calibration["max_gain"]))
    return mean + offset * gain


def calibration_of(model, config, texts, targets, max_gain=CALIBRATION_MAX_GAIN, sample=2000):
    """{'mean', 'spread', 'max_gain'} for calibrated(): the mean target embedding and the mean distance from it of
    the encoder's vectors for (up to `sample` of) its training captions, read without word noise."""
    mean = np.asarray(targets, np.float32).mean(axis=0)
    pick = np.linspace(0, len(texts) - 1, min(sample, len(texts))).astype(int)
    vectors = encode(model, config, [texts[i] for i in pick], calibrate=False)
    spread = float(np.linalg.norm(vectors - mean, axis=1).mean())
    return {"mean": [round(float(v), 6) for v in mean], "spread": spread, "max_gain": float(max_gain)}


def encode_captions(captions, results_dir, labels=None):
    """Captions (strings) -> float32 (N, 1024) vectors from the encoder trained into results_dir. UserError for a
    bad caption (see check_captions) or when no encoder was trained there (naming the command that trains one)."""
    config = read_config(results_dir)
    texts = check_captions(list(captions), int(config["max_length"]), config["alphabet"], labels)
    model, config = load_encoder(results_dir)
    return encode(model, config, texts)


# ---------------------------------------------------------------------------
# Training data: each caption with its regression target
# ---------------------------------------------------------------------------
def caption_rows(split_captions):
    """Flatten a split's captions: (captions, image index, caption index) over all images."""
    texts, images, indices = [], [], []
    for i, caps in enumerate(split_captions):
        for k, c in enumerate(caps):
            texts.append(c)
            images.append(i)
            indices.append(k)
    return texts, np.asarray(images, np.int64), np.asarray(indices, np.int64)


def targets_for(embeddings, images, indices, target):
    """Regression targets (N, D): 'aligned' is embedding k of the caption's image (the mean where an image has
    more captions than embeddings), 'mean' the mean of the image's embeddings."""
    means = np.asarray(embeddings, np.float32).mean(axis=1)
    out = means[images]
    if target == "aligned":
        ok = indices < embeddings.shape[1]
        out[ok] = embeddings[images[ok], indices[ok]]
    return out


def training_pairs(split, config):
    """(normalized captions, targets) of a CaptionSplit; captions without a letter are left out, longer ones cut."""
    texts, images, indices = caption_rows(split.captions)
    norm = [normalize_caption(t, config["alphabet"]) for t in texts]
    keep = np.array([bool(re.search("[a-z]", t)) for t in norm], dtype=bool)
    norm = [t for t, k in zip(norm, keep) if k]
    return norm, targets_for(split.embeddings, images[keep], indices[keep], config["target"])


# ---------------------------------------------------------------------------
# Metrics and the bag-of-words baseline
# ---------------------------------------------------------------------------
def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def retrieval_metrics(pred, embeddings, images, indices, ks=(1, 10)):
    """Held-out quality of caption vectors pred (N, D) of captions (images[n], indices[n]): mean cosine to the
    caption's own embedding ('cosine'; the image mean where an image has more captions than embeddings), to
    the image's mean embedding ('cosine_mean'), the caption -> image retrieval recall R@k among all images
    ranked by cosine to their mean embedding, and 'alignment_gain': the mean cosine to embedding k minus that
    to the image's other embeddings (near 0 when caption k and embedding k are unrelated)."""
    pred = _unit(pred)
    emb = _unit(embeddings)
    means = _unit(np.asarray(embeddings, np.float32).mean(axis=1))
    own = targets_for(np.asarray(embeddings), images, indices, "aligned")
    cos_own = np.sum(pred * _unit(own), axis=1)
    per_caption = np.einsum("nd,ncd->nc", pred, emb[images])  # cosine to each of the image's embeddings
    c = emb.shape[1]
    aligned = indices < c
    cos_k = per_caption[np.arange(len(pred)), np.minimum(indices, c - 1)]
    others = (per_caption.sum(axis=1) - cos_k) / max(c - 1, 1)
    gain = float((cos_k - others)[aligned].mean()) if c > 1 and aligned.any() else 0.0
    ranks = np.empty(len(pred), np.int64)
    for start in range(0, len(pred), 2048):
        scores = pred[start : start + 2048] @ means.T
        mine = scores[np.arange(len(scores)), images[start : start + 2048]]
        ranks[start : start + 2048] = (scores > mine[:, None]).sum(axis=1)
    result = {
        "captions": int(len(pred)),
        "images": int(len(embeddings)),
        "cosine": float(cos_own.mean()),
        "cosine_mean": float(np.sum(pred * means[images], axis=1).mean()),
        "alignment_gain": gain,
    }
    for k in ks:
        result[f"R@{k}"] = float((ranks < k).mean())
    return result


class BagOfWords:
    """The trivial baseline: which words a caption holds (binary, the vocab_size most frequent training words)
    + a linear map to the embeddings fitted by ridge regression."""

    def __init__(self, vocab_size=5000, ridge=1.0):
        self.vocab_size, self.ridge = vocab_size, ridge

    @staticmethod
    def words(text):
        return re.findall(r"[a-z0-9]+", text)

    def features(self, texts):
        x = np.zeros((len(texts), len(self.vocab) + 1), np.float32)
        x[:, -1] = 1.0  # bias
        for i, t in enumerate(texts):
            for w in self.words(t):
                j = self.vocab.get(w)
                if j is not None:
                    x[i, j] = 1.0
        return x

    def fit(self, texts, targets):
        counts = {}
        for t in texts:
            for w in set(self.words(t)):
                counts[w] = counts.get(w, 0) + 1
        common = sorted(counts, key=lambda w: (-counts[w], w))[: self.vocab_size]
        self.vocab = {w: i for i, w in enumerate(common)}
        n = len(self.vocab) + 1
        xtx, xty = np.zeros((n, n), np.float64), np.zeros((n, targets.shape[1]), np.float64)
        for start in range(0, len(texts), 4096):  # in chunks: the real training split has 88,550 captions
            x = self.features(texts[start : start + 4096]).astype(np.float64)
            xtx += x.T @ x
            xty += x.T @ targets[start : start + 4096]
        self.weights = np.linalg.solve(xtx + self.ridge * np.eye(n), xty).astype(np.float32)
        return self

    def predict(self, texts):
        return np.concatenate(
            [self.features(texts[s : s + 4096]) @ self.weights for s in range(0, len(texts), 4096)]
            or [np.zeros((0, self.weights.shape[1]), np.float32)]
        )


def synthetic_wording_accuracy(predict, split, seed=0):
    """On the synthetic birds: the fraction of vectors whose body colour (and wing shade) is the bird's, for the
    test captions and for captions written with HELDOUT_TEMPLATES. predict: normalized texts -> vectors."""
    colours = np.asarray(split.class_ids) - 1
    wings = synthetic.embedding_wings(split.embeddings)
    rng = np.random.default_rng([seed, 5])
    held = [synthetic.heldout_captions(int(c), int(w), rng) for c, w in zip(colours, wings)]
    result = {}
    for name, caps in (("test_wording", split.captions), ("heldout_wording", held)):
        texts, images, _ = caption_rows(caps)
        vectors = predict([normalize_caption(t) for t in texts])
        result[f"{name}_colour"] = float(np.mean(synthetic.embedding_colours(vectors) == colours[images]))
        result[f"{name}_wing"] = float(np.mean(synthetic.embedding_wings(vectors) == wings[images]))
    return result


def evaluate_encoder(results_dir, data_dir):
    """Held-out numbers on the test split for the trained encoder and for the bag-of-words baseline (fitted on
    the training split with the encoder's target): {'encoder': {...}, 'baseline': {...}, 'data_dir', ...}."""
    model, config = load_encoder(results_dir)
    train_split = data.load_caption_split(data_dir, "train")
    test = data.load_caption_split(data_dir, "test")
    texts, images, indices = caption_rows(test.captions)
    norm = [normalize_caption(t, config["alphabet"]) for t in texts]
    baseline = BagOfWords().fit(*training_pairs(train_split, config))
    predictors = {
        "encoder": lambda ts: encode(model, config, [t[: config["max_length"]] for t in ts]),
        "baseline": baseline.predict,
    }
    report = {"data_dir": data_dir, "results_dir": results_dir, "loss": config["loss"], "target": config["target"]}
    for name, predict in predictors.items():
        report[name] = retrieval_metrics(predict(norm), test.embeddings, images, indices)
        if synthetic.is_synthetic(data_dir):
            report[name].update(synthetic_wording_accuracy(predict, test))
    return report


# ---------------------------------------------------------------------------
# Held-out wording -> images: does a generator draw the colour that new sentences ask for?
# ---------------------------------------------------------------------------
def heldout_caption_accuracy(results_dir, data_dir, stage, batch_size=64, seed=0):
    """For every synthetic test bird, one caption per held-out template (synthetic.HELDOUT_TEMPLATES, never in
    the caption files nor in training) for its colour and wing shade, encoded by the encoder in results_dir and
    drawn by the trained Stage-1 (stage 1) or Stage-I + Stage-II (stage 2) generators there. Returns
    {'caption_accuracy': attribute accuracy of those images, 'embedding_accuracy': the same generators drawing
    the bird's own embeddings (embedding k for template k) with the same noise, 'images', 'stage'}."""
    import keras

    import sampling

    if not synthetic.is_synthetic(data_dir):
        raise UserError(f"{data_dir} is not the synthetic bird set; held-out wording needs it (use --demo)")
    split_dir = os.path.join(data_dir, "test")
    class_ids = np.asarray(data.load_class_ids(os.path.join(split_dir, settings.CLASS_INFO_FILE)))
    embeddings = data.load_embeddings(os.path.join(split_dir, settings.EMBEDDINGS_FILE))
    colours, wings = class_ids - 1, synthetic.embedding_wings(embeddings)
    rng = np.random.default_rng([seed, 11])
    texts = [t for c, w in zip(colours, wings) for t in synthetic.heldout_captions(int(c), int(w), rng)]
    per = len(synthetic.HELDOUT_TEMPLATES)
    birds = np.repeat(np.arange(len(colours)), per)
    own = embeddings[birds, np.tile(np.arange(per), len(colours)) % embeddings.shape[1]]
    from_text = encode_captions(texts, results_dir)

    keras.utils.set_random_seed(seed)
    generators, _ = sampling.load_generators(results_dir, stage, needed_by="heldout_caption_accuracy")
    z = rng.standard_normal((len(texts), int(generators[0].inputs[1].shape[-1]))).astype(np.float32)
    wanted = synthetic.embedding_colours(embeddings[birds])
    hits = {"caption_accuracy": 0, "embedding_accuracy": 0}
    for start in range(0, len(texts), batch_size):
        part = slice(start, start + batch_size)
        for key, vectors in (("caption_accuracy", from_text), ("embedding_accuracy", own)):
            images = sampling.sample_images(generators, vectors[part], z[part], batch_size)[-1]
            hits[key] += int(np.sum(synthetic.image_colours(images) == wanted[part]))
    result = {k: v / len(texts) for k, v in hits.items()}
    result.update(images=len(texts), stage=int(stage))
    return result


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
def _loss_fn(name):
    from keras import ops

    if name == "mse":
        return lambda pred, y: ops.mean(ops.square(pred - y))
    return lambda pred, y: 1.0 - ops.mean(ops.sum(_ops_unit(pred) * _ops_unit(y), axis=-1))


def _ops_unit(x):
    from keras import ops

    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-8)


def _check_resume(ckpt_dir, config):
    """The architecture and objective a checkpoint was made with must be the ones asked for now."""
    path = os.path.join(ckpt_dir, "config.json")
    if not os.path.isfile(path):
        return
    with open(path) as f:
        saved = json.load(f)
    keys = ARCHITECTURE_KEYS + ("loss", "target")
    diff = [k for k in keys if saved.get(k) != config[k]]
    if diff:
        k = diff[0]
        raise UserError(
            f"the checkpoint in {ckpt_dir} was made with {k} = {saved.get(k)}, not {config[k]}; "
            f"pass the same settings to resume, or --fresh to start over"
        )


def train(
    data_dir=TEXT_ENCODER_DEFAULTS["data_dir"],
    results_dir=TEXT_ENCODER_DEFAULTS["results_dir"],
    log_dir=TEXT_ENCODER_DEFAULTS["log_dir"],
    epochs=TEXT_ENCODER_DEFAULTS["epochs"],
    batch_size=TEXT_ENCODER_DEFAULTS["batch_size"],
    lr=TEXT_ENCODER_DEFAULTS["lr"],
    char_dim=TEXT_ENCODER_DEFAULTS["char_dim"],
    conv_dims=TEXT_ENCODER_DEFAULTS["conv_dims"],
    rnn_dim=TEXT_ENCODER_DEFAULTS["rnn_dim"],
    max_length=TEXT_ENCODER_DEFAULTS["max_length"],
    loss=TEXT_ENCODER_DEFAULTS["loss"],
    target=TEXT_ENCODER_DEFAULTS["target"],
    augment=TEXT_ENCODER_DEFAULTS["augment"],
    seed=TEXT_ENCODER_DEFAULTS["seed"],
    fresh=False,
    log=print,
):
    """Train the encoder on data_dir's training captions (resuming from <results_dir>/text_encoder_ckpt unless
    fresh) and write its weights and config into results_dir. Returns the config, with 'test_cosine' (mean cosine
    to the true test embeddings) when the test split has captions."""
    import keras
    import tensorflow as tf

    if loss not in LOSSES or target not in TARGETS:
        raise UserError(f"loss {loss!r} / target {target!r}: use a loss in {LOSSES} and a target in {TARGETS}")
    if not 0.0 <= float(augment) <= 1.0:
        raise UserError(f"--augment {augment}: the word noise rate is a probability; use a value from 0 to 1")
    config = make_config(char_dim, conv_dims, rnn_dim, max_length, loss, target)
    config["augment"] = float(augment)
    train_split = data.load_caption_split(data_dir, "train")
    texts, targets = training_pairs(train_split, config)
    if not texts:
        raise UserError(
            f"no caption with a letter in {os.path.join(data_dir, settings.TEXT_DIR)}; {data.captions_hint(data_dir)}"
        )
    config["embedding_dim"] = int(targets.shape[1])
    config["output_norm"] = float(np.linalg.norm(targets, axis=1).mean())
    try:
        test = data.load_caption_split(data_dir, "test")
        test_rows = caption_rows(test.captions)
        test_texts = [normalize_caption(t)[: config["max_length"]] for t in test_rows[0]]
    except UserError:
        test = None

    ckpt_dir = text_encoder_checkpoint_dir(results_dir)
    if fresh and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    _check_resume(ckpt_dir, config)
    keras.utils.set_random_seed(seed)
    model = build_encoder(config)
    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"Resumed from {manager.latest_checkpoint} at epoch {int(epoch.numpy())}")
    os.makedirs(ckpt_dir, exist_ok=True)
    files.write_json(os.path.join(ckpt_dir, "config.json"), config)

    m = length_multiple(config)

    def epoch_dataset(e):
        """Epoch e's batches: its own word noise and order (so a resumed run sees what an unbroken one would)."""
        rng = np.random.default_rng([seed, e])
        tokens = tokenize(augment_captions(texts, rng, augment), config, width=config["max_length"])
        return (
            tf.data.Dataset.from_tensor_slices((tokens, targets))
            .shuffle(len(texts), seed=int(rng.integers(2**31)))
            .batch(batch_size)
            .map(lambda t, y: (t[:, : _trimmed_width(t, m)], y))  # each batch only as long as its longest caption
            .prefetch(2)
        )

    loss_fn = _loss_fn(loss)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None, config["embedding_dim"]], tf.float32),
        ]
    )
    def step(t, y):
        with tf.GradientTape() as tape:
            value = loss_fn(model(t, training=True), y)
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
        return value

    writer = tf.summary.create_file_writer(text_encoder_log_dir(log_dir))
    log(
        f"Training the text encoder on {len(texts)} captions of {data_dir} ({loss} onto {target} embeddings, "
        f"{model.count_params():,} parameters) for {epochs} epochs"
    )
    start_epoch = int(epoch.numpy())
    for e in range(start_epoch, epochs):
        started = time.time()
        losses = [float(step(t, y)) for t, y in epoch_dataset(e)]
        epoch.assign(e + 1)
        metrics = {"train_loss": float(np.mean(losses))}
        if test is not None:
            metrics["test_cosine"] = retrieval_metrics(
                encode(model, config, test_texts, calibrate=False), test.embeddings, *test_rows[1:]
            )["cosine"]
        with writer.as_default():
            for name, value in metrics.items():
                tf.summary.scalar(name, value, step=e + 1)
        manager.save()
        config.update(metrics, epochs_trained=e + 1, calibration=calibration_of(model, config, texts, targets))
        _export(model, config, results_dir)
        took = time.time() - started
        log(f"  epoch {e + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + f" ({took:.1f} s)")
    if start_epoch >= epochs:
        log(f"{ckpt_dir} already holds {start_epoch} epochs (--epochs {epochs}); use --fresh to train again")
        config.update(epochs_trained=start_epoch, calibration=calibration_of(model, config, texts, targets))
        _export(model, config, results_dir)
    writer.flush()
    log(f"Wrote {text_encoder_weights_path(results_dir)} and {text_encoder_config_path(results_dir)}")
    return config


def _trimmed_width(t, m):
    import tensorflow as tf

    longest = tf.reduce_max(tf.reduce_sum(tf.cast(t > 0, tf.int32), axis=1))
    return tf.maximum((longest + m - 1) // m * m, m)


def _export(model, config, results_dir):
    files.save_weights(model, text_encoder_weights_path(results_dir))
    files.write_json(text_encoder_config_path(results_dir), config)
    _LOADED.clear()


def train_demo_encoder(data_dir=settings.SYNTHETIC_DATA_DIR, results_dir="results/demo", log_dir="logs/demo"):
    """Train the demo encoder on the synthetic birds (written, or given captions, if needed) with the small
    TEXT_ENCODER_DEMO settings; skips the work when results_dir already holds one trained that far."""
    synthetic.ensure_synthetic(data_dir)
    opts = {k: v for k, v in TEXT_ENCODER_DEMO.items() if k not in DEMO_DIRS}
    return train(data_dir, results_dir, log_dir, **opts)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def build_parser(demo=False):
    preset = dict(TEXT_ENCODER_DEFAULTS, **(TEXT_ENCODER_DEMO if demo else {}))
    parser = cli.ArgumentParser(
        prog="text_encoder.py",
        description="A Keras char-CNN-RNN text encoder: captions -> the 1024-d char-CNN-RNN embedding space "
        "that StackGAN's generators are conditioned on.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    t = sub.add_parser(
        "train",
        help="train the encoder by regression onto the archive's embeddings",
        description="Train on DATA_DIR/text captions and DATA_DIR/train embeddings; resumes from "
        "RESULTS_DIR/text_encoder_ckpt unless --fresh. --demo: the synthetic birds and small settings "
        "(explicit flags win).",
        formatter_class=cli.DefaultsHelpFormatter,
    )
    t.add_argument(
        "--demo", action="store_true", default=None, help="synthetic birds in data/synthetic, results/demo, logs/demo"
    )
    t.add_argument("--data-dir", default=preset["data_dir"], help="dataset with text/ captions")
    t.add_argument("--results-dir", default=preset["results_dir"], help="where the weights and config go")
    t.add_argument("--log-dir", default=preset["log_dir"], help="TensorBoard scalars go to LOG_DIR/text_encoder")
    t.add_argument("--epochs", type=positive_int, default=preset["epochs"], help="total epochs")
    t.add_argument("--batch-size", type=positive_int, default=preset["batch_size"], help="captions per step")
    t.add_argument("--lr", type=float, default=preset["lr"], help="Adam learning rate")
    t.add_argument("--char-dim", type=positive_int, default=preset["char_dim"], help="character embedding width")
    t.add_argument(
        "--conv-dims",
        type=_widths,
        default=",".join(str(w) for w in preset["conv_dims"]),
        help="widths of the Conv1D blocks, comma-separated (max-pooled by 3 between them)",
    )
    t.add_argument("--rnn-dim", type=positive_int, default=preset["rnn_dim"], help="GRU width")
    t.add_argument("--max-length", type=positive_int, default=preset["max_length"], help="characters read per caption")
    t.add_argument("--loss", choices=LOSSES, default=preset["loss"], help="regression loss")
    t.add_argument(
        "--target",
        choices=TARGETS,
        default=preset["target"],
        help="caption k -> embedding k of its image (aligned) or -> the mean of its image's embeddings",
    )
    t.add_argument(
        "--augment",
        type=float,
        default=preset["augment"],
        help="word noise rate: made-up words inserted (and half as many words dropped) per word, and captions "
        "rotated to start later, so the encoder reads wordings it never saw; 0 turns it off",
    )
    t.add_argument("--seed", type=int, default=preset["seed"], help="weights and data order")
    t.add_argument("--fresh", action="store_true", default=None, help="ignore an existing checkpoint")
    e = sub.add_parser(
        "evaluate",
        help="held-out quality on the test split, against a bag-of-words baseline",
        description="Mean cosine to the true test embeddings and caption->image retrieval R@1/R@10, for the encoder "
        "and for bag of words + ridge regression. With --generated-stage (synthetic birds): the attribute "
        "accuracy of images that the trained generators draw from held-out wording.",
        formatter_class=cli.DefaultsHelpFormatter,
    )
    e.add_argument("--demo", action="store_true", default=None, help="data/synthetic and results/demo")
    e.add_argument("--data-dir", default=preset["data_dir"], help="dataset with text/ captions")
    e.add_argument("--results-dir", default=preset["results_dir"], help="holds the trained encoder (and generators)")
    e.add_argument(
        "--generated-stage",
        type=int,
        choices=(1, 2),
        default=None,
        help="also generate images from held-out wording with the Stage-1 or Stage-1+2 generators in RESULTS_DIR",
    )
    e.add_argument("--batch-size", type=positive_int, default=64, help="images per generator pass")
    e.add_argument("--json", action="store_true", default=None, help="print the numbers as JSON")
    return parser


def _widths(text):
    import argparse

    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one width, each at least 1")
    return widths


def print_report(report):
    """The evaluate numbers as a small table: one row per metric, one column per model."""
    enc, base = report["encoder"], report["baseline"]
    print(
        f"{report['data_dir']} test split: {enc['captions']} captions of {enc['images']} images; "
        f"encoder: {report['loss']} onto {report['target']} embeddings"
    )
    print(f"{'':24}{'text encoder':>14}{'bag of words + ridge':>22}")
    for key in [k for k in enc if k not in ("captions", "images")]:
        print(f"{key:24}{enc[key]:>14.3f}{base[key]:>22.3f}")
    if "generated" in report:
        g = report["generated"]
        print(
            f"Stage-{g['stage']} images from held-out wording: attribute accuracy {g['caption_accuracy']:.3f} "
            f"({g['images']} images); from the birds' own embeddings {g['embedding_accuracy']:.3f}"
        )


def main(argv=None):
    import argparse

    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--demo", action="store_true")
    args = build_parser(first.parse_known_args(argv)[0].demo).parse_args(argv)
    hardware.import_tensorflow()
    if args.command == "train":
        if args.demo:
            synthetic.ensure_synthetic(args.data_dir)
        train(
            args.data_dir,
            args.results_dir,
            args.log_dir,
            args.epochs,
            args.batch_size,
            args.lr,
            args.char_dim,
            args.conv_dims,
            args.rnn_dim,
            args.max_length,
            args.loss,
            args.target,
            args.augment,
            args.seed,
            bool(args.fresh),
        )
        return 0
    report = evaluate_encoder(args.results_dir, args.data_dir)
    if args.generated_stage:
        report["generated"] = heldout_caption_accuracy(
            args.results_dir, args.data_dir, args.generated_stage, args.batch_size
        )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
