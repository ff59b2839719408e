"""Whether a generator learned its condition, on the synthetic flowers (stackgan.datasets.synthetic_flowers): the
petal-colour accuracy (the fraction of generated images whose petal colour is the one their embedding asks for; chance
1/8) and its most frequent mistakes. The same names as stackgan.metrics.attributes, the synthetic birds' reader, so
that a caller picks the module of its dataset (Dataset.attributes()).
"""

import collections
import colorsys
import functools
import os
from typing import NamedTuple

import numpy as np

from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import synthetic_flowers as flowers
from stackgan.datasets.loaders import caption_vectors

WHAT = "petal-colour accuracy"
EVAL_KEYS = ("colour",)  # the numbers of attribute_report that training logs per sampled epoch


class Asked(NamedTuple):
    """What a set's flowers have, one row per image: the petal colour (PALETTE index) its embeddings say."""

    colour: np.ndarray  # int64 (N,)

    @property
    def rows(self):
        return len(self.colour)

    def take(self, rows):
        return Asked(self.colour[np.asarray(rows)])


def split_attributes(data_dir, split="test"):
    """Asked of every flower of a split of a synthetic flowers set, in the order of its filenames.pickle."""
    from stackgan.datasets import loaders

    path = layout.split_files(data_dir, split).embeddings
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; pass the --data-dir and --split the images were generated from")
    if not layout.is_synthetic(data_dir):
        raise UserError(
            f"{data_dir} is not a synthetic flower set (no {layout.SYNTHETIC_MARKER}): petal-colour accuracy "
            f"needs the colour code of the synthetic embeddings; for Oxford-102 use `evaluate.py fid` or `is`"
        )
    return Asked(embedding_colours(loaders.load_embeddings(path)))


@functools.cache
def _palette_hues():
    return np.array([colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] for _, rgb in flowers.PALETTE], np.float32)


def embedding_colours(embeddings):
    """PALETTE index of the petal colour that each synthetic flower embedding encodes: (N, 1024) or (N, 10, 1024)
    (captions averaged) -> int (N,). Meaningless for real embeddings."""
    rows = flowers.code_basis()[1 : 1 + len(flowers.PALETTE)]
    return np.argmax(caption_vectors(embeddings) @ rows.T, axis=1).astype(np.int64)


def embedding_forms(embeddings):
    """FORMS index of the petal form that each synthetic flower embedding encodes, like embedding_colours."""
    rows = flowers.code_basis()[1 + len(flowers.PALETTE) :]
    return np.argmax(caption_vectors(embeddings) @ rows.T, axis=1).astype(np.int64)


def describe_vector(vector):
    """{'colour': petal colour, 'petals': petal form} that one caption vector (1024,) encodes, for
    StackGAN.heard()."""
    v = np.asarray(vector, np.float32)[None]
    return {
        "colour": flowers.PALETTE[int(embedding_colours(v)[0])][0],
        "petals": flowers.FORMS[int(embedding_forms(v)[0])].name,
    }


def image_colours(images, min_saturation=0.45, min_value=0.25, min_fraction=0.01):
    """PALETTE index of the petal colour in each image (N, H, W, 3), uint8 in [0, 255] or float in [-1, 1], any size:
    among the clearly coloured pixels (leaves and centres are greyish), the palette hue that most of them are
    nearest to, weighted by chroma. -1 where too few pixels are coloured (e.g. a grayscale image); -1 never matches
    an embedding."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UserError(f"images of shape {x.shape}: expected (N, height, width, 3)")
    step = max(1, int(np.ceil(max(x.shape[1], x.shape[2]) / 96)))  # enough pixels, bounded cost
    hues = _palette_hues()
    result = np.full(len(x), -1, dtype=np.int64)
    for start in range(0, len(x), 128):
        chunk = x[start : start + 128, ::step, ::step]
        if np.issubdtype(chunk.dtype, np.integer):
            f = chunk.astype(np.float32) / 255.0
        else:
            f = (np.clip(chunk.astype(np.float32), -1.0, 1.0) + 1.0) / 2.0
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
        chroma = mx - mn
        safe = np.where(chroma > 0, chroma, 1.0)
        hue = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
        hue = hue / 6.0
        coloured = (chroma >= min_saturation * np.maximum(mx, 1e-6)) & (mx >= min_value)
        d = np.abs(hue[..., None] - hues)
        nearest = np.argmin(np.minimum(d, 1.0 - d), axis=-1)
        weights = np.where(coloured, chroma, 0.0)
        owner = np.arange(len(chunk))[:, None, None] * len(hues) + nearest
        votes = np.bincount(owner.ravel(), weights.ravel(), minlength=len(chunk) * len(hues))
        votes = votes.reshape(len(chunk), len(hues))
        enough = coloured.reshape(len(chunk), -1).mean(axis=1) >= min_fraction
        result[start : start + len(chunk)] = np.where(enough, votes.argmax(axis=1), -1)
    return result


def attribute_accuracy(images, embeddings):
    """Fraction of images whose petal colour is the one their (synthetic) embeddings ask for."""
    return attribute_report(images, Asked(embedding_colours(embeddings)))["colour"]


def attribute_report(images, asked, top=3):
    """How well images (N, H, W, 3) show the petal colour their flowers have (`asked`: Asked with N rows), as a
    dict: images, colour (the fraction right) and mistakes, the `top` most frequent as dicts of asked colour, drawn
    colour (or "no colour") and count, most frequent first."""
    drawn = image_colours(images)
    if len(drawn) != len(asked.colour):
        raise UserError(f"{len(drawn)} images but {len(asked.colour)} asked colours: pass one row per image")
    wrong = drawn != asked.colour
    counts = collections.Counter(zip(asked.colour[wrong].tolist(), drawn[wrong].tolist()))
    names = [name for name, _ in flowers.PALETTE]
    mistakes = [
        dict(asked=names[a], drawn=names[d] if d >= 0 else "no colour", count=n)
        for (a, d), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    ]
    return {"images": int(len(drawn)), "colour": float(np.mean(~wrong)) if len(drawn) else 0.0, "mistakes": mistakes}


def describe(report):
    """'petal-colour accuracy 0.919' for an attribute_report."""
    return f"petal-colour accuracy {report['colour']:.3f}"


def describe_mistakes(mistakes):
    """'orange drawn as red 57, blue as purple 38' (or 'none') for attribute_report's mistakes."""
    if not mistakes:
        return "none"
    return ", ".join(
        f"{m['asked']} {'drawn ' if i == 0 else ''}as {m['drawn']} {m['count']}" for i, m in enumerate(mistakes)
    )


def wording_accuracy(predict, split, seed=0):
    """For the caption encoder on the synthetic flowers: the fraction of vectors whose petal colour and form are the
    flower's, for the test captions and for captions written with HELDOUT_TEMPLATES. predict: normalized texts ->
    vectors; split: a CaptionSplit."""
    from stackgan.text.encoder import normalize_caption

    pairs = [flowers.colour_and_form(c) for c in split.class_ids]
    colours, forms = np.array([c for c, _ in pairs]), np.array([f for _, f in pairs])
    rng = np.random.default_rng([seed, 5])
    held = [flowers.heldout_captions(int(c), int(f), rng) for c, f in pairs]
    result = {}
    for name, caps in (("test_wording", split.captions), ("heldout_wording", held)):
        rows = [(i, t) for i, texts in enumerate(caps) for t in texts]
        images = np.array([i for i, _ in rows], dtype=np.int64)
        vectors = predict([normalize_caption(t) for _, t in rows])
        result[f"{name}_colour"] = float(np.mean(embedding_colours(vectors) == colours[images]))
        result[f"{name}_petals"] = float(np.mean(embedding_forms(vectors) == forms[images]))
    return result
