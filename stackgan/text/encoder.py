"""The caption encoder: how it reads a caption (cleaned, normalised to Reed's alphabet, checked, augmented with
word noise for training, turned into character indices), and the network, a Keras char-CNN-RNN after Reed's
HybridCNNLong, from captions to 1024-d vectors in the
space of the char-CNN-RNN embeddings that the birds archive ships (Reed et al. 2016), so that a generator trained
on those embeddings draws new text.

Characters of Reed's alphabet (lowercased, at most max_length) -> a character embedding -> Conv1D + ReLU
blocks, max-pooled by 3 between them -> a GRU -> the average of its outputs over the caption -> Dense to 1024.
Padding is masked everywhere, so a caption's vector does not depend on its batch. A trained encoder is
<results>/text_encoder.weights.h5 with text_encoder_config.json beside it (everything that rebuilds it).
"""

import json
import os
import re
import unicodedata

import numpy as np

from stackgan import layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM, TEXT_ALPHABET, demo_flags
from stackgan.runtime import dtype_policy


# ---------------------------------------------------------------------------
# Captions as the encoder reads them
# ---------------------------------------------------------------------------
def clean_caption(line):
    """One caption line as the encoder reads it: each run of U+FFFD (the replacement character, which some
    files hold in pairs where a space was; undecodable bytes become it too) is a space, as in AttnGAN; runs
    of whitespace become one space; no leading or trailing space."""
    return " ".join(re.sub("\ufffd+", " ", line).split())


KERNEL = 4  # Reed's TemporalConvolution width
POOL = 3  # Reed's TemporalMaxPooling(3, 3)


def vocabulary(alphabet):
    """{character: index}, indices from 1 (0 is padding); a character listed twice keeps its first place."""
    return {ch: i + 1 for i, ch in enumerate(dict.fromkeys(alphabet))}


def normalize_caption(text, alphabet=TEXT_ALPHABET):
    """The caption the encoder reads: cleaned as clean_caption does, lowercased, accents removed, every
    character outside the alphabet made a space, runs of spaces made one."""
    text = unicodedata.normalize("NFKD", clean_caption(text).lower())
    known = set(alphabet)
    text = "".join(ch if ch in known else " " for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())


def check_captions(captions, max_length, alphabet=TEXT_ALPHABET, labels=None):
    """Normalized captions, or a UserError naming the first bad one: empty, without a letter the encoder reads, or
    longer than max_length characters (refused rather than cut, so that no part of a description is silently lost).
    labels name each caption in the message (default 'caption 1', 'caption 2', ...)."""
    if not captions:
        raise UserError("no caption given; pass a sentence such as --caption 'a small yellow bird with dark wings'")
    result = []
    for i, text in enumerate(captions):
        label = labels[i] if labels else f"caption {i + 1}"
        if not isinstance(text, str):
            raise UserError(f"{label} is not text ({type(text).__name__})")
        norm = normalize_caption(text, alphabet)
        if not clean_caption(text):
            raise UserError(f"{label} is empty; describe the bird, e.g. 'a small yellow bird with dark wings'")
        if not re.search("[a-z]", norm):  # digits and signs only, or no character of the alphabet (emoji)
            raise UserError(
                f"{label} ({text.strip()[:40]!r}) has no letters the encoder reads; describe the bird in words"
            )
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


def unknown_words(text, alphabet=TEXT_ALPHABET):
    """The words of a caption with characters the encoder cannot read (outside its alphabet once accents are
    removed): they reach the encoder as spaces, so a user should be told rather than have them dropped silently."""
    known = set(alphabet)
    found = []
    for word in clean_caption(text).split():
        plain = unicodedata.normalize("NFKD", word.lower())
        if any(ch not in known for ch in plain if not unicodedata.combining(ch)) and word not in found:
            found.append(word)
    return found


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------
CALIBRATION_MAX_GAIN = 1.25  # measured on the synthetic birds' held-out wording (docs/experiments.md)
ARCHITECTURE_KEYS = ("alphabet", "max_length", "char_dim", "conv_dims", "rnn_dim", "embedding_dim")
LOSSES = ("mse", "cosine")
TARGETS = ("aligned", "mean")


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
    """The char-CNN-RNN as a Keras functional model: int32 (batch, length) -> float32 (batch, embedding_dim); with
    rnn_dim 0 a char-CNN (Reed et al. compare both), whose vector is a sum over windows of the caption."""
    import keras
    from keras import layers, ops

    with dtype_policy("off"):  # float32 whatever policy the process holds (a bf16 GAN run, say)
        tokens = keras.Input((None,), dtype="int32", name="characters")
        mask = ops.expand_dims(ops.cast(ops.not_equal(tokens, 0), "float32"), -1)
        x = layers.Embedding(len(vocabulary(config["alphabet"])) + 1, config["char_dim"], name="char_embedding")(tokens)
        x = x * mask
        for i, width in enumerate(config["conv_dims"]):
            if i:
                x = layers.MaxPooling1D(POOL, name=f"pool{i}")(x)
                mask = layers.MaxPooling1D(POOL, name=f"mask_pool{i}")(mask)
            x = layers.Conv1D(width, KERNEL, padding="same", activation="relu", name=f"conv{i + 1}")(x) * mask
        h = x  # rnn_dim 0: a char-CNN, its last block's features averaged
        if config["rnn_dim"]:
            h = layers.GRU(config["rnn_dim"], return_sequences=True, name="gru")(x, mask=ops.cast(mask[..., 0], "bool"))
        h = ops.sum(h * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)  # average over the caption's steps
        out = layers.Dense(config["embedding_dim"], name="projection")(h)
        return keras.Model(tokens, out, name="char_cnn_rnn")


def train_command(results_dir):
    return f"python text_encoder.py train {demo_flags(results_dir) or f'--results-dir {results_dir}'}"


def read_encoder_config(results_dir, path=None, weights=None):
    """The JSON config written beside the weights; a UserError naming the training command when either is absent."""
    if path is None:
        path, weights = layout.text_encoder_files(results_dir)
    for p in (path, weights):
        if not os.path.isfile(p):
            raise UserError(
                f"{p} not found: no trained text encoder in {results_dir}; run `{train_command(results_dir)}`"
            )
    try:
        with open(path) as f:
            config = json.load(f)
        for key in ARCHITECTURE_KEYS + ("loss",):
            config[key]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a readable text encoder config ({type(err).__name__}: {err}); "
            f"run `{train_command(results_dir)} --fresh`"
        ) from None
    return config


_LOADED = {}


def load_encoder(results_dir):
    """(model, config) of the trained encoder in results_dir, rebuilt from its config (cached per file version)."""
    path, weights = layout.text_encoder_files(results_dir)
    config = read_encoder_config(results_dir, path, weights)
    key = (os.path.abspath(weights), os.stat(weights).st_mtime_ns, json.dumps(config, sort_keys=True))
    if key not in _LOADED:
        model = build_encoder(config)
        try:
            model.load_weights(weights)
        except Exception as err:
            raise UserError(
                f"{weights} does not fit the encoder described by {path} "
                f"({type(err).__name__}); run `{train_command(results_dir)} --fresh`"
            ) from None
        _LOADED.clear()
        _LOADED[key] = model
    return _LOADED[key], config


def forget_loaded():
    """Drop the cached encoder (after training wrote new weights)."""
    _LOADED.clear()


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


class TextEncoder:
    """A trained caption encoder, read once from its results folder: check() and encode() captions."""

    def __init__(self, results_dir):
        self.results_dir = results_dir
        self.model, self.config = load_encoder(results_dir)

    @property
    def max_length(self):
        return int(self.config["max_length"])

    @property
    def embedding_dim(self):
        return int(self.config["embedding_dim"])

    def check(self, captions, labels=None):
        """Normalized captions, or a UserError naming the first bad one (see check_captions)."""
        return check_captions(list(captions), self.max_length, self.config["alphabet"], labels)

    def encode(self, captions, labels=None):
        """Captions (strings) -> float32 (N, embedding_dim) vectors."""
        return encode(self.model, self.config, self.check(captions, labels))


def encode_captions(captions, results_dir, labels=None):
    """Captions (strings) -> float32 (N, 1024) vectors from the encoder trained into results_dir. UserError for a
    bad caption (see check_captions) or when no encoder was trained there (naming the command that trains one)."""
    return TextEncoder(results_dir).encode(captions, labels)
