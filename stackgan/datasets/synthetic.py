"""Synthetic birds in the exact CUB + StackGAN layout (`python data.py synthetic`, and what --demo trains on).

Each bird has a body hue and a wing shade (by default 6 hues x black / grey / white); its ten 1024-d "caption
embeddings" are a fixed projection of both plus noise, and its ten captions name both in words (training
templates; HELDOUT_TEMPLATES are kept apart for evaluation). Some (hue, shade) pairs never occur in training: the
test split holds birds of every pair, so that a generator can be asked for pairs it never saw together (a
compositional split, as C-CUB's test_unseen). Each image's attributes are written in CUB's own files
(attributes.txt, CUB_200_2011/attributes/image_attribute_labels.txt) and the set's hues, shades and unseen pairs in
its SYNTHETIC.json marker; stackgan.metrics.attributes reads them, training never does.
"""

import colorsys
import functools
import json
import os
import re
import shutil

import numpy as np
from PIL import Image, ImageDraw

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM
from stackgan.datasets import loaders
from stackgan.datasets.birds import ATTRIBUTE_NAMES_FILE, CUB_DIR, DATASET, TEXT_DIR
from stackgan.layout import (
    SPLITS,
    SYNTHETIC_MARKER,
)

# Body colours a set may use, far apart in hue so that a classifier separates them reliably.
COLOURS = {
    "red": (230, 30, 30),
    "orange": (230, 123, 30),
    "yellow": (230, 210, 30),
    "green": (30, 200, 46),
    "cyan": (30, 210, 230),
    "blue": (30, 80, 230),
    "purple": (136, 30, 230),
    "pink": (230, 30, 156),
}
# Wing shades a set may use: the range of HSV value they are drawn with (saturation at most 0.06) and the level a
# reader compares a wing with (the middle of the range, as the body's shading leaves it).
SHADES = {
    "black": ((0.08, 0.2), 0.14),
    "grey": ((0.45, 0.6), 0.5),
    "white": ((0.88, 0.97), 0.88),
}
DEFAULT_HUES = ("red", "yellow", "green", "cyan", "blue", "purple")
DEFAULT_SHADES = ("black", "grey", "white")
# (hue, shade) pairs of the default set that only the test split holds: one per hue, two per shade, so that every
# hue and every shade is still seen in training (with the other shades and hues).
DEFAULT_UNSEEN = (
    ("red", "grey"),
    ("yellow", "white"),
    ("green", "black"),
    ("cyan", "grey"),
    ("blue", "black"),
    ("purple", "white"),
)
CLASS_KINDS = ("hue", "pair")  # what class_info.pickle numbers: the body hue (default) or the (hue, shade) pair
# The default set's palette and shades, as (name, RGB) and names.
PALETTE = [(name, COLOURS[name]) for name in DEFAULT_HUES]
WING_SHADES = DEFAULT_SHADES
# The attribute names written to attributes.txt, CUB's own.
BODY_ATTRIBUTE = "has_primary_color"
WING_ATTRIBUTE = "has_wing_color"
MARKER_VERSION = 2  # 2: hues, shades, unseen pairs and the attribute files (1: 8 hues, dark/light wings)

N_CAPTIONS = 10
_EMBEDDING_SCALE = 6.0
_CODE_SEED = 20170823  # fixed: the same text code for every synthetic set, whatever --seed
_CODE_NAMES = ("bird",) + tuple(COLOURS) + tuple(SHADES)


@functools.cache
def code_basis():
    """Unit 1024-d directions, one per name of _CODE_NAMES: 'a bird', every colour, every shade."""
    g = np.random.default_rng(_CODE_SEED).standard_normal((len(_CODE_NAMES), EMBEDDING_DIM))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


def code_rows(names):
    """The rows of code_basis() for these colour or shade names, (len(names), 1024)."""
    return code_basis()[[_CODE_NAMES.index(n) for n in names]]


def _synthetic_embeddings(rng, hue, shade):
    """Ten 'captions' of one bird: a fixed projection of its body hue and wing shade (names), each caption weighting
    them a little differently (every caption names both, as most real captions name the wings), plus per-image and
    per-caption noise. (10, 1024) float32."""
    bird, body, wing = code_rows(("bird", hue, shade))
    w_body = rng.uniform(0.8, 1.2, (N_CAPTIONS, 1))
    w_wing = rng.uniform(0.8, 1.2, (N_CAPTIONS, 1))
    code = bird + w_body * body + w_wing * wing
    noise = rng.normal(0, 0.03, EMBEDDING_DIM) + rng.normal(0, 0.05, (N_CAPTIONS, EMBEDDING_DIM))
    return (_EMBEDDING_SCALE * code + noise).astype(np.float32)


# ---------------------------------------------------------------------------
# Captions: ten sentences per bird, in the text/<class>/<image>.txt layout of Reed's text_c10
# ---------------------------------------------------------------------------
# {c}: body colour, {w}: wing shade, {size}: a size word. Every caption names both attributes.
CAPTION_TEMPLATES = (
    "this bird is mostly {c} with {w} wings",
    "a {size} bird with a {c} body and {w} wings",
    "this {size} bird has {w} wings and a {c} belly",
    "the bird has a {c} breast, a {c} crown and {w} wings",
    "{w} wings and a {c} body on this {size} bird",
    "a {c} bird with {w} wings and a short beak",
    "this is a {c} bird with {w} wing feathers",
    "the {size} bird is {c} all over except for its {w} wings",
    "a bird with {w} wings, a {c} head and a {c} chest.",
    "this bird has a {c} crown, {c} nape and {w} secondaries",
    "{c} bird, {w} wings, pointed beak",
    "a {size} {c} bird whose wings are {w}",
    "this bird has {w} wings and its body is {c}.",
    "a {c} {size} bird with {w} coverts and a {c} throat",
)
# Never written to the caption files nor used in training: new sentence structures for evaluating the text
# encoder on wording it has not seen (text_encoder.heldout_caption_accuracy).
HELDOUT_TEMPLATES = (
    "an entirely {c} bird with {w} wings perched on a branch",
    "look at this {c} creature, its wings are {w}",
    "{w} winged {size} bird with {c} plumage",
    "here is a {c} bird that has {w} wings",
    "the plumage is {c} and the wings are {w}",
    "my bird: {c} body, {w} wings",
)
_COLOUR_MODIFIERS = ("", "", "", "bright ", "vivid ", "deep ")
_WING_WORDS = {
    "black": ("black", "dark", "jet black", "blackish", "charcoal", "sooty"),
    "grey": ("grey", "gray", "ash grey", "slate grey", "greyish", "mid grey"),
    "white": ("white", "pale", "snow white", "whitish", "milky", "creamy white"),
}
_SIZE_WORDS = ("small", "tiny", "little", "medium sized", "plump", "large")
_CAPTION_SALT = 271828  # the wording has its own random stream: images and embeddings stay as they were


def fill_template(template, hue, shade, rng):
    """One sentence from a template for a body hue and a wing shade (names), the words drawn with rng ('a' becomes
    'an' before a vowel)."""
    sentence = template.format(
        c=rng.choice(_COLOUR_MODIFIERS) + hue,
        w=rng.choice(_WING_WORDS[shade]),
        size=rng.choice(_SIZE_WORDS),
    )
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", sentence)


def bird_captions(hue, shade, rng):
    """Ten captions of one bird, templates drawn without repeats, so the wording and word order vary."""
    order = rng.permutation(len(CAPTION_TEMPLATES))
    return [fill_template(CAPTION_TEMPLATES[order[k]], hue, shade, rng) for k in range(N_CAPTIONS)]


def heldout_captions(hue, shade, rng):
    """One caption per held-out template for a bird of this body hue and wing shade (names)."""
    return [fill_template(t, hue, shade, rng) for t in HELDOUT_TEMPLATES]


def _rotated_ellipse(cx, cy, a, b, angle=0.0, n=40):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _bird_parts(rng):
    """Polygons of a bird facing +x in units of its body length, centred on the body: [(name, points)]."""
    head_y = rng.uniform(-0.32, -0.2)
    head_r = rng.uniform(0.15, 0.19)
    hx = rng.uniform(0.38, 0.46)
    tail_up = rng.uniform(-0.2, 0.1)
    return [
        ("leg", np.array([[-0.06, 0.2], [-0.03, 0.2], [-0.05, 0.46], [-0.08, 0.46]])),
        ("leg", np.array([[0.07, 0.2], [0.1, 0.2], [0.08, 0.46], [0.05, 0.46]])),
        ("tail", np.array([[-0.3, -0.06], [-0.78, tail_up - 0.08], [-0.76, tail_up + 0.12], [-0.3, 0.12]])),
        ("body", _rotated_ellipse(0, 0, 0.5, rng.uniform(0.26, 0.32))),
        (
            "wing",
            _rotated_ellipse(-0.08, -0.02, rng.uniform(0.26, 0.32), rng.uniform(0.11, 0.15), rng.uniform(-0.3, 0.1)),
        ),
        ("head", _rotated_ellipse(hx, head_y, head_r, head_r)),
        (
            "beak",
            np.array(
                [
                    [hx + 0.8 * head_r, head_y - 0.06],
                    [hx + 0.8 * head_r, head_y + 0.05],
                    [hx + head_r + rng.uniform(0.12, 0.2), head_y + 0.01],
                ]
            ),
        ),
        ("eye", _rotated_ellipse(hx + 0.35 * head_r, head_y - 0.3 * head_r, 0.035, 0.035, n=12)),
        ("pupil", _rotated_ellipse(hx + 0.4 * head_r, head_y - 0.3 * head_r, 0.018, 0.018, n=10)),
    ]


def _jitter_colour(rng, rgb, dh=0.012, s_range=(0.75, 0.95), v_range=(0.7, 0.95)):
    h, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    r, g, b = colorsys.hsv_to_rgb((h + rng.uniform(-dh, dh)) % 1.0, rng.uniform(*s_range), rng.uniform(*v_range))
    return int(r * 255), int(g * 255), int(b * 255)


def _grey(rng, v_range, s_max=0.12):
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, s_max), rng.uniform(*v_range))
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng, width, height):
    """Low-saturation texture: a greyish base colour with stripes, blotches or a gradient, and grain."""
    base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0, 0.15), rng.uniform(0.4, 0.85))) * 255
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        theta, period = rng.uniform(0, np.pi), rng.uniform(6, 40)
        lum = rng.uniform(8, 25) * np.sin(
            2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 2 * np.pi)
        )
    elif kind == 1:
        small = rng.normal(0, 1, (max(2, height // 16), max(2, width // 16))).astype(np.float32)
        lum = np.asarray(Image.fromarray(small, mode="F").resize((width, height), Image.BICUBIC))
        lum = lum * rng.uniform(10, 25)
    else:
        t = (yy * np.sin(rng.uniform(0, np.pi)) + xx * np.cos(rng.uniform(0, np.pi))) / max(width, height)
        lum = rng.uniform(-40, 40) * t
    lum = lum + rng.normal(0, rng.uniform(2, 8), (height, width))
    img = base + lum[..., None] + rng.normal(0, 2, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_synthetic_bird(rng, hue, shade):
    """(RGB image, [x, y, w, h] box of the bird) for one synthetic bird of a body hue and wing shade (names)."""
    width, height = (int(v) for v in rng.integers(120, 221, 2))
    img = Image.fromarray(_background(rng, width, height))
    length = rng.uniform(0.42, 0.66) * min(width, height)
    angle = rng.uniform(-0.3, 0.3)
    facing = 1.0 if rng.random() < 0.5 else -1.0
    c, s = np.cos(angle), np.sin(angle)
    parts = []
    for name, pts in _bird_parts(rng):
        x, y = pts[:, 0] * facing * length, pts[:, 1] * length
        parts.append((name, np.stack([c * x - s * y, s * x + c * y], axis=1)))
    allpts = np.concatenate([p for _, p in parts])
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    slack = 0.12 * length if rng.random() < 0.1 else 0.0  # sometimes the bird leaves the picture
    cx = rng.uniform(-lo[0] - slack, max(-lo[0] - slack, width - hi[0] + slack))
    cy = rng.uniform(-lo[1] - slack, max(-lo[1] - slack, height - hi[1] + slack))
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # a perch under the feet, greyish brown
        y0 = cy + (0.46 * length) * c + rng.uniform(0, 4)
        draw.line(
            [(0, y0 + rng.uniform(-8, 8)), (width, y0 + rng.uniform(-8, 8))],
            fill=_grey(rng, (0.25, 0.5), 0.25),
            width=max(2, int(length * 0.06)),
        )
    body = _jitter_colour(rng, COLOURS[hue])
    wing_rgb = _grey(rng, SHADES[shade][0], 0.15 if shade == "black" else 0.06)
    fills = {
        "leg": _grey(rng, (0.15, 0.3)),
        "tail": wing_rgb,
        "body": body,
        "wing": wing_rgb,
        "head": body,
        "beak": _grey(rng, (0.2, 0.35)),
        "eye": (245, 245, 245),
        "pupil": (10, 10, 10),
    }
    layer = Image.new("RGB", img.size)
    mask = Image.new("L", img.size, 0)
    layer_draw, mask_draw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for name, pts in parts:
        poly = [(float(px + cx), float(py + cy)) for px, py in pts]
        layer_draw.polygon(poly, fill=fills[name])
        mask_draw.polygon(poly, fill=255)
    box = mask.getbbox()
    # shading: darker towards the belly
    arr = np.asarray(layer, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)
    t = np.clip((rows - box[1]) / max(1, box[3] - box[1]), 0, 1)
    arr = arr * (1.05 - 0.25 * t)[:, None, None]
    img.paste(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), (0, 0), mask)
    x0, y0, x1, y1 = box
    return img, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


class SetDesign:
    """What a synthetic set is made of: body hues and wing shades (names of COLOURS and SHADES), the (hue, shade)
    pairs held out of training, and what a class is ('hue' or 'pair')."""

    def __init__(self, hues=DEFAULT_HUES, shades=DEFAULT_SHADES, unseen=DEFAULT_UNSEEN, classes="hue"):
        self.hues, self.shades = tuple(hues), tuple(shades)
        self.unseen = tuple(tuple(p) for p in unseen)
        self.classes = classes
        for names, known, what in ((self.hues, COLOURS, "hue"), (self.shades, SHADES, "shade")):
            if len(set(names)) != len(names) or len(names) < 1 or not set(names) <= set(known):
                raise UserError(f"{what}s {list(names)}: give distinct names among {', '.join(known)}")
        if len(self.hues) < 2:
            raise UserError(f"hues {list(self.hues)}: give at least two (wrong images come from another class)")
        pairs = set(self.pairs())
        if not set(self.unseen) <= pairs:
            raise UserError(
                f"unseen pairs {list(self.unseen)}: each must be a (hue, shade) of {self.hues} x {self.shades}"
            )
        seen = [p for p in self.pairs() if p not in self.unseen]
        if {h for h, _ in seen} != set(self.hues) or {s for _, s in seen} != set(self.shades):
            raise UserError("the unseen pairs leave a hue or a shade out of training; hold out fewer pairs")
        if classes not in CLASS_KINDS:
            raise UserError(f"classes {classes!r}: expected one of {', '.join(CLASS_KINDS)}")

    def pairs(self):
        """Every (hue, shade), hue-major."""
        return [(h, s) for h in self.hues for s in self.shades]

    def seen(self):
        return [p for p in self.pairs() if p not in self.unseen]

    def class_of(self, pair):
        """0-based class of a (hue, shade) pair."""
        return self.hues.index(pair[0]) if self.classes == "hue" else self.pairs().index(pair)

    def class_names(self):
        if self.classes == "hue":
            return [f"{h.capitalize()}_Bird" for h in self.hues]
        return [f"{h.capitalize()}_Bird_{s.capitalize()}_Wings" for h, s in self.pairs()]

    def marker(self):
        """The design as SYNTHETIC.json records it."""
        return {
            "version": MARKER_VERSION,
            "classes": self.classes,
            "hues": [[h, list(COLOURS[h])] for h in self.hues],
            "shades": [[s, SHADES[s][1]] for s in self.shades],
            "unseen": [list(p) for p in self.unseen],
        }

    def attribute_names(self):
        """attributes.txt's names, in order: the body hues, then the wing shades."""
        return [f"{BODY_ATTRIBUTE}::{h}" for h in self.hues] + [f"{WING_ATTRIBUTE}::{s}" for s in self.shades]


def _spread(n, pairs, rng):
    """n birds over the pairs as evenly as possible (the remainder to pairs drawn with rng): a list of pairs."""
    counts = np.full(len(pairs), n // len(pairs))
    counts[rng.permutation(len(pairs))[: n % len(pairs)]] += 1
    return [p for p, c in zip(pairs, counts) for _ in range(c)]


def write_synthetic(out_dir, n_train=800, n_test=160, seed=0, design=None):
    """Write a deterministic synthetic bird set in the real layout (train/ and test/ pickles,
    CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<name>.jpg, text/<class>/<name>.txt, and the
    attribute files). design: a SetDesign (default: 6 hues x 3 shades, 6 pairs unseen, class = hue). The training
    split spreads its birds evenly over the seen pairs, the test split over every pair; each image's ten
    embeddings encode its hue and shade, and its ten captions say them in words (caption k matching embedding k)."""
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    design = design or SetDesign()
    if n_train < 2 or n_test < 1:
        raise UserError(f"--n-train {n_train} / --n-test {n_test}: need at least 2 training and 1 test image")
    if seed < 0:
        raise UserError(f"--seed {seed}: seeds are 0 or more")
    if not layout.is_synthetic(out_dir) and any(os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (CUB_DIR,)):
        raise UserError(
            f"{out_dir} holds a dataset that is not synthetic birds (it has no {SYNTHETIC_MARKER}); "
            f"give another folder for the synthetic birds"
        )
    tmp = io.staging_folder(out_dir, "synthetic")
    try:
        _write_set(tmp, out_dir, n_train, n_test, seed, design)
    except OSError as err:  # a full disk, a read-only folder: the set there (and its marker) as it was
        raise io.WriteError(out_dir, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_set(tmp, out_dir, n_train, n_test, seed, design):
    """write_synthetic's work: the whole set in tmp, then moved into out_dir (its marker last)."""
    images_root = os.path.join(tmp, CUB_DIR, "images")
    text_root = os.path.join(tmp, TEXT_DIR)
    attributes_root = os.path.join(tmp, CUB_DIR, "attributes")
    for d in [os.path.join(tmp, s) for s in SPLITS] + [images_root, attributes_root]:
        os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng([seed, 7919])
    birds = [("train", p) for p in _spread(n_train, design.seen(), rng)]
    birds += [("test", p) for p in _spread(n_test, design.pairs(), rng)]
    # Class-sorted like the real files; within a class the splits interleave as CUB's images of one species do.
    order = rng.permutation(len(birds))
    birds = sorted((birds[i] for i in order), key=lambda b: design.class_of(b[1]))
    class_names = design.class_names()
    names = design.attribute_names()
    split_rows = {s: [] for s in SPLITS}  # (filename, class id, embeddings)
    image_lines, box_lines, label_lines = [], [], []
    counters = [0] * len(class_names)
    for uid, (split, (hue, shade)) in enumerate(birds, 1):
        k = design.class_of((hue, shade))
        cls = f"{k + 1:03d}.{class_names[k]}"
        counters[k] += 1
        os.makedirs(os.path.join(images_root, cls), exist_ok=True)
        rng = np.random.default_rng([seed, uid])
        img, box = _draw_synthetic_bird(rng, hue, shade)
        if rng.random() < 0.025:  # a few grayscale JPEGs, like CUB's
            img = img.convert("L")
        name = f"{cls}/{class_names[k]}_{counters[k]:04d}_{uid}"
        img.save(os.path.join(images_root, name + ".jpg"), quality=90)
        image_lines.append(f"{uid} {name}.jpg\n")
        box_lines.append(f"{uid} {box[0]:.1f} {box[1]:.1f} {box[2]:.1f} {box[3]:.1f}\n")
        present = {f"{BODY_ATTRIBUTE}::{hue}", f"{WING_ATTRIBUTE}::{shade}"}
        # CUB's columns: image id, attribute id, present, certainty (4: definitely), seconds the worker took
        label_lines.extend(f"{uid} {a} {int(n in present)} 4 0.0\n" for a, n in enumerate(names, 1))
        embeddings = _synthetic_embeddings(rng, hue, shade)
        split_rows[split].append((name, k + 1, embeddings))
        words = bird_captions(hue, shade, np.random.default_rng([seed, uid, _CAPTION_SALT]))
        os.makedirs(os.path.join(text_root, cls), exist_ok=True)
        with open(os.path.join(text_root, name + ".txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(words) + "\n")
    for s in SPLITS:
        loaders.write_split_files(os.path.join(tmp, s), split_rows[s])
    cub = os.path.join(tmp, CUB_DIR)
    with open(os.path.join(cub, "images.txt"), "w") as f:
        f.writelines(image_lines)
    with open(os.path.join(cub, "bounding_boxes.txt"), "w") as f:
        f.writelines(box_lines)
    with open(os.path.join(cub, "classes.txt"), "w") as f:
        f.writelines(f"{k + 1} {k + 1:03d}.{n}\n" for k, n in enumerate(class_names))
    with open(os.path.join(attributes_root, "image_attribute_labels.txt"), "w") as f:
        f.writelines(label_lines)
    with open(os.path.join(tmp, ATTRIBUTE_NAMES_FILE), "w") as f:  # beside CUB_200_2011/, as in CUB's archive
        f.writelines(f"{a} {n}\n" for a, n in enumerate(names, 1))
    # The set is complete in tmp: now it replaces the old one, whose marker stays until the new one is in.
    io.swap_in(tmp, out_dir, SPLITS + (CUB_DIR, TEXT_DIR, ATTRIBUTE_NAMES_FILE))
    io.write_json(
        os.path.join(out_dir, SYNTHETIC_MARKER),
        dict(design.marker(), n_train=n_train, n_test=n_test, seed=seed),
    )


def read_design(data_dir):
    """(SetDesign, sizes {n_train, n_test, seed}) from a set's SYNTHETIC.json; (None, sizes) for a set written before
    designs were recorded (or an unreadable marker: sizes then {})."""
    try:
        with open(os.path.join(data_dir, SYNTHETIC_MARKER)) as f:
            made = json.load(f)
        sizes = {k: int(made[k]) for k in ("n_train", "n_test", "seed")}
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}
    if made.get("version") != MARKER_VERSION:
        return None, sizes
    try:
        design = SetDesign(
            [h for h, _ in made["hues"]], [s for s, _ in made["shades"]], made["unseen"], made["classes"]
        )
    except (KeyError, TypeError, ValueError, UserError):
        return None, sizes
    return design, sizes


def ensure_synthetic(out_dir):
    """Write the default synthetic set into out_dir unless it already holds a complete dataset (a synthetic one with
    captions and attribute files). A synthetic set written by an older version is written again, of the same
    sizes and seed. Returns True if it wrote one."""
    complete = not layout.missing_files(out_dir, DATASET)
    if complete and not layout.is_synthetic(out_dir):
        return False
    if complete:
        design, sizes = read_design(out_dir)
        if design is not None and os.path.isdir(os.path.join(out_dir, TEXT_DIR)):
            return False
        write_synthetic(out_dir, **sizes)
        return True
    if not layout.is_synthetic(out_dir) and any(os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (CUB_DIR,)):
        raise UserError(
            f"{out_dir} holds an incomplete dataset that is not the synthetic one (missing "
            f"{layout.missing_files(out_dir, DATASET)[0]}); run `python data.py check --data-dir {out_dir}` "
            f"or give another folder for the synthetic birds"
        )
    write_synthetic(out_dir)
    return True
