"""Whether a generator drew what the sentence said, on the synthetic birds: the body colour and the wing shade read
back from each image, each right or wrong against the attributes its bird has, both right together, and both right
on the (hue, shade) pairs that training never saw; the most frequent mistakes (a folder of generate.py's images:
stackgan.metrics.generated).

What each bird has comes from the set's own files (attributes.txt and CUB_200_2011/attributes/
image_attribute_labels.txt, the hues, shades and unseen pairs of its SYNTHETIC.json), never from its embeddings:
the readers work for any synthetic set, whatever its embedding projection. Training never reads these files.
"""

import collections
import colorsys
import os
from typing import NamedTuple

import numpy as np

from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import birds, synthetic
from stackgan.datasets.loaders import caption_vectors

# Pixel classes: a pixel is coloured when its chroma is at least MIN_SATURATION of its value and its value at least
# MIN_VALUE (backgrounds, wings, beaks and legs are greyish).
MIN_SATURATION = 0.45
MIN_VALUE = 0.25
# A wing is the uncoloured region inside the bird's coloured body (between coloured pixels along its row and along
# its column); at least MIN_WING_SHARE of the bird (body + enclosed) must be such pixels, else no wing is read.
MIN_WING_SHARE = 0.04
READ_SIZE = 96  # images are read at about this many pixels a side (a stride over larger ones)
WHAT = "attributes"
EVAL_KEYS = ("body", "wing", "both", "both_unseen")  # attribute_report's numbers that training logs


class Attributes(NamedTuple):
    """What a set's birds have, one row per image: the set's hue names and their RGB, its shade names and their
    value levels (HSV value in [0, 1]), each image's body hue and wing shade (indices into those) and whether its
    pair was held out of training."""

    hues: tuple
    hue_rgb: np.ndarray  # (hues, 3) uint8
    shades: tuple
    shade_levels: np.ndarray  # (shades,) float
    body: np.ndarray  # int64 (N,)
    wing: np.ndarray  # int64 (N,)
    unseen: np.ndarray  # bool (N,)

    @property
    def rows(self):
        return len(self.body)

    def take(self, rows):
        rows = np.asarray(rows)
        return self._replace(body=self.body[rows], wing=self.wing[rows], unseen=self.unseen[rows])

    def pair_names(self, body, wing):
        """'green/black' (or 'no colour', 'no wing' for -1) for index arrays or ints."""
        return f"{self.hues[body] if body >= 0 else 'no colour'}/{self.shades[wing] if wing >= 0 else 'no wing'}"


def default_attributes(body, wing, unseen=None):
    """Attributes of the default design (synthetic.SetDesign()) for given body and wing indices: for images made
    by hand (tests) rather than read from a set."""
    design = synthetic.SetDesign()
    body, wing = np.asarray(body, np.int64), np.asarray(wing, np.int64)
    if unseen is None:
        pairs = set(design.unseen)
        unseen = np.array([(design.hues[b], design.shades[w]) in pairs for b, w in zip(body, wing)], bool)
    return _with_design(design, body, wing, np.asarray(unseen, bool))


def _with_design(design, body, wing, unseen):
    return Attributes(
        hues=design.hues,
        hue_rgb=np.array([synthetic.COLOURS[h] for h in design.hues], np.uint8),
        shades=design.shades,
        shade_levels=np.array([synthetic.SHADES[s][1] for s in design.shades], np.float32),
        body=body,
        wing=wing,
        unseen=unseen,
    )


def set_attributes(data_dir, filenames):
    """Attributes of the images `filenames` (filenames.pickle names) of a synthetic set, from its attribute files."""
    design, _ = synthetic.read_design(data_dir)
    if not layout.is_synthetic(data_dir):
        raise UserError(
            f"{data_dir} is not a synthetic birds set (no {layout.SYNTHETIC_MARKER}): the attribute metric reads "
            f"the hues and wing shades recorded there; for CUB use `evaluate.py fid` or `is`"
        )
    names_path, labels_path = birds.DATASET.attribute_files(data_dir)
    if design is None or not os.path.isfile(names_path) or not os.path.isfile(labels_path):
        raise UserError(
            f"{data_dir} was written before wing shades were recorded (its {layout.SYNTHETIC_MARKER} has no design "
            f"or {labels_path} is missing); write it again with `python data.py synthetic --out {data_dir}`"
        )
    ids = _image_ids(birds.DATASET.tables(data_dir)[0])
    attribute_names = _attribute_names(names_path)
    present = _present_attributes(labels_path, attribute_names)
    body, wing = [], []
    for name in filenames:
        uid = ids.get(name.strip())
        labels = present.get(uid, ())
        hue = [n.split("::", 1)[1] for n in labels if n.startswith(synthetic.BODY_ATTRIBUTE + "::")]
        shade = [n.split("::", 1)[1] for n in labels if n.startswith(synthetic.WING_ATTRIBUTE + "::")]
        if len(hue) != 1 or len(shade) != 1 or hue[0] not in design.hues or shade[0] not in design.shades:
            raise UserError(
                f"{labels_path} gives image {name} no single body hue and wing shade of the set's design; "
                f"write the set again with `python data.py synthetic --out {data_dir}`"
            )
        body.append(design.hues.index(hue[0]))
        wing.append(design.shades.index(shade[0]))
    unseen = {(design.hues.index(h), design.shades.index(s)) for h, s in design.unseen}
    unseen_rows = np.array([(b, w) in unseen for b, w in zip(body, wing)], bool)
    return _with_design(design, np.array(body, np.int64), np.array(wing, np.int64), unseen_rows)


def split_attributes(data_dir, split="test"):
    """Attributes of every image of a split of a synthetic set, in the order of its filenames.pickle."""
    from stackgan.datasets import loaders

    path = layout.split_files(data_dir, split).filenames
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; pass the --data-dir of a synthetic birds set")
    return set_attributes(data_dir, loaders.load_filenames(path))


def _image_ids(images_txt):
    ids = {}
    with open(images_txt, encoding="utf-8") as f:
        for line in f:
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                name = parts[1].strip()
                ids[name[:-4] if name.endswith(".jpg") else name] = int(parts[0])
    return ids


def _attribute_names(path):
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                names[int(parts[0])] = parts[1].strip()
    return names


def _present_attributes(path, names):
    """{image id: [names of the attributes present]} of image_attribute_labels.txt (CUB's columns: image id,
    attribute id, present, certainty, time; CUB's own file has a few lines with extra columns)."""
    present = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "1" and int(parts[1]) in names:
                present[int(parts[0])].append(names[int(parts[1])])
    return present


# ---------------------------------------------------------------------------
# Reading the attributes from images
# ---------------------------------------------------------------------------
def _hues_of(rgb):
    return np.array([colorsys.rgb_to_hsv(*(c / 255 for c in col))[0] for col in np.asarray(rgb)], np.float32)


def _as_unit_float(images):
    """(N, H, W, 3) images, uint8 in [0, 255] or float in [-1, 1], as float32 in [0, 1] read at about READ_SIZE."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UserError(f"images of shape {x.shape}: expected (N, height, width, 3)")
    step = max(1, int(np.ceil(max(x.shape[1], x.shape[2]) / READ_SIZE)))  # enough pixels, bounded cost
    return x[:, ::step, ::step]


def _unit(chunk):
    if np.issubdtype(chunk.dtype, np.integer):
        return chunk.astype(np.float32) / 255.0
    return (np.clip(chunk.astype(np.float32), -1.0, 1.0) + 1.0) / 2.0


def _pixel_classes(f, hues):
    """Per pixel of f (n, h, w, 3) in [0, 1]: value, chroma, whether coloured, nearest hue index."""
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chroma = mx - mn
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    d = np.abs(hue[..., None] / 6.0 - hues)
    nearest = np.argmin(np.minimum(d, 1.0 - d), axis=-1)
    coloured = (chroma >= MIN_SATURATION * np.maximum(mx, 1e-6)) & (mx >= MIN_VALUE)
    return mx, chroma, coloured, nearest


def _between(mask, axis):
    """Pixels with a mask pixel on both sides of them along an axis (the mask's own pixels included)."""
    forward = np.maximum.accumulate(mask, axis=axis)
    backward = np.flip(np.maximum.accumulate(np.flip(mask, axis=axis), axis=axis), axis=axis)
    return forward & backward


def read_images(images, hue_rgb=None, shade_levels=None, min_fraction=0.01):
    """(body, wing) read from each image (N, H, W, 3), uint8 in [0, 255] or float in [-1, 1], any size:
    - body: the index of the hue (among hue_rgb's, default the default design's) that most clearly coloured pixels
      are nearest to, weighted by chroma; -1 where too few pixels are coloured (a grayscale image);
    - wing: the index of the shade level (default the default design's) nearest to the median value of the
      uncoloured pixels enclosed by the body (pixels of the body hue before and after them in their row and in
      their column); -1 where there is no body or such pixels are under MIN_WING_SHARE of the bird.
    -1 never matches an asked attribute."""
    hue_rgb = np.array([rgb for _, rgb in synthetic.PALETTE]) if hue_rgb is None else hue_rgb
    if shade_levels is None:
        shade_levels = np.array([synthetic.SHADES[s][1] for s in synthetic.WING_SHADES], np.float32)
    hues = _hues_of(hue_rgb)
    levels = np.asarray(shade_levels, np.float32)
    x = _as_unit_float(images)
    body = np.full(len(x), -1, dtype=np.int64)
    wing = np.full(len(x), -1, dtype=np.int64)
    for start in range(0, len(x), 128):
        f = _unit(x[start : start + 128])
        n = len(f)
        value, chroma, coloured, nearest = _pixel_classes(f, hues)
        weights = np.where(coloured, chroma, 0.0)
        owner = np.arange(n)[:, None, None] * len(hues) + nearest
        votes = np.bincount(owner.ravel(), weights.ravel(), minlength=n * len(hues)).reshape(n, len(hues))
        enough = coloured.reshape(n, -1).mean(axis=1) >= min_fraction
        drawn = np.where(enough, votes.argmax(axis=1), -1)
        body[start : start + n] = drawn
        # the body: pixels of the drawn hue with at least two such neighbours (specks elsewhere are left out)
        own = coloured & (nearest == drawn[:, None, None]) & (drawn[:, None, None] >= 0)
        padded = np.pad(own, ((0, 0), (1, 1), (1, 1))).astype(np.int8)
        h, w = own.shape[1:]
        neighbours = sum(padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        own &= neighbours >= 3
        enclosed = _between(own, 1) & _between(own, 2) & ~own & ~coloured
        share = enclosed.reshape(n, -1).sum(axis=1) / np.maximum((enclosed | own).reshape(n, -1).sum(axis=1), 1)
        for i in np.flatnonzero((drawn >= 0) & (share >= MIN_WING_SHARE)):
            median = float(np.median(value[i][enclosed[i]]))
            wing[start + i] = int(np.argmin(np.abs(levels - median)))
    return body, wing


def image_colours(images, hue_rgb=None, min_fraction=0.01):
    """The body hue index read from each image (read_images' body)."""
    return read_images(images, hue_rgb, min_fraction=min_fraction)[0]


def attribute_report(images, asked, top=3):
    """How well images (N, H, W, 3) show what their birds have (`asked`: Attributes with N rows), as a dict:
    images, unseen_images (how many were asked for a pair never seen in training), body, wing, both (fractions of
    images with the body hue / the wing shade / both right), both_seen and both_unseen (both right among the images
    of seen / unseen pairs; None where there are none), mistakes: the `top` most frequent wrong drawings as dicts
    of asked pair, drawn pair ('green/black', 'no colour', 'no wing') and count, most frequent first."""
    body, wing = read_images(images, asked.hue_rgb, asked.shade_levels)
    if len(body) != len(asked.body):
        raise UserError(f"{len(body)} images but {len(asked.body)} asked attributes: pass one row per image")
    body_ok, wing_ok = body == asked.body, wing == asked.wing
    both = body_ok & wing_ok
    unseen = asked.unseen

    def share(hits):
        return float(np.mean(hits)) if len(hits) else None

    wrong = ~both
    counts = collections.Counter(
        zip(asked.body[wrong].tolist(), asked.wing[wrong].tolist(), body[wrong].tolist(), wing[wrong].tolist())
    )
    mistakes = [
        dict(asked=asked.pair_names(ab, aw), drawn=asked.pair_names(db, dw), count=n)
        for (ab, aw, db, dw), n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    ]
    return {
        "images": int(len(body)),
        "unseen_images": int(unseen.sum()),
        "body": share(body_ok) or 0.0,
        "wing": share(wing_ok) or 0.0,
        "both": share(both) or 0.0,
        "both_seen": share(both[~unseen]),
        "both_unseen": share(both[unseen]),
        "mistakes": mistakes,
    }


def describe(report):
    """'body 0.931, wing 0.874, both 0.850 (seen pairs 0.901, unseen pairs 0.748)' for an attribute_report."""

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    return (
        f"body {fmt(report['body'])}, wing {fmt(report['wing'])}, both {fmt(report['both'])} "
        f"(seen pairs {fmt(report['both_seen'])}, unseen pairs {fmt(report['both_unseen'])})"
    )


def describe_mistakes(mistakes):
    """'green/black drawn as green/grey 57, blue/grey as blue/white 38' (or 'none') for attribute_report's
    mistakes."""
    if not mistakes:
        return "none"
    return ", ".join(
        f"{m['asked']} {'drawn ' if i == 0 else ''}as {m['drawn']} {m['count']}" for i, m in enumerate(mistakes)
    )


# ---------------------------------------------------------------------------
# What an embedding of our own synthetic sets says (their fixed code; meaningless for other embeddings)
# ---------------------------------------------------------------------------
def _decode(embeddings, names):
    return np.argmax(caption_vectors(embeddings) @ synthetic.code_rows(names).T, axis=1).astype(np.int64)


def embedding_colours(embeddings, hues=synthetic.DEFAULT_HUES):
    """Index into `hues` of the body colour that each embedding of our synthetic sets encodes: (N, 1024) or
    (N, 10, 1024) (captions averaged) -> int (N,)."""
    return _decode(embeddings, hues)


def embedding_wings(embeddings, shades=synthetic.DEFAULT_SHADES):
    """Index into `shades` of the wing shade that each embedding of our synthetic sets encodes."""
    return _decode(embeddings, shades)


class EmbeddingProbe:
    """The body hue and wing shade that a caption vector says, read by a linear map (ridge regression onto one-hot
    attributes) fitted on a split's caption embeddings and attribute labels: works for any set whose embeddings
    say the attributes linearly, whatever its projection, also for pairs the fit never saw."""

    def __init__(self, embeddings, asked, ridge=1.0):
        e = np.asarray(embeddings, np.float64)
        per_image = e.shape[1] if e.ndim == 3 else 1
        x = e.reshape(-1, e.shape[-1])
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        n_hues = len(asked.hues)
        y = np.zeros((len(asked.body), n_hues + len(asked.shades)))
        y[np.arange(len(y)), asked.body] = 1.0
        y[np.arange(len(y)), n_hues + asked.wing] = 1.0
        y = np.repeat(y, per_image, axis=0)
        self.n_hues = n_hues
        self.weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)

    def read(self, vectors):
        """(body, wing) indices of (N, D) vectors."""
        v = np.asarray(vectors, np.float64)
        scores = np.concatenate([v, np.ones((len(v), 1))], axis=1) @ self.weights
        return scores[:, : self.n_hues].argmax(axis=1), scores[:, self.n_hues :].argmax(axis=1)
