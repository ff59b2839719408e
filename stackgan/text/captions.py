"""Captions as the caption encoder reads them: normalised to Reed's alphabet, checked, augmented with word noise
for training, and turned into character indices."""

import re
import unicodedata

import numpy as np

from stackgan.cli import UserError
from stackgan.config import TEXT_ALPHABET
from stackgan.datasets.captions import clean_caption

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
