"""The caption encoder's training data: each caption of a split with its regression target."""

import re

import numpy as np

from stackgan.text.encoder import normalize_caption


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
