"""Synthetic flowers in the exact Oxford-102 + StackGAN layout (`python data.py synthetic --dataset flowers`, and what
`--demo --dataset flowers` trains on).

Each flower has one of 8 petal colours and one of 5 petal forms (five rounded, six pointed, eight narrow, many thin or
four broad petals); its class is the pair (40 classes). As in StackGAN's flowers split, training and test classes are
disjoint: the 8 test classes pair each colour with a form it never has in training, so every colour and every form is
still seen in training and a generator that learned the colour from the text draws it for the unseen pairs. Each
flower's ten 1024-d "caption embeddings" are a fixed projection of its colour and form plus noise, and its ten
captions say them in Reed-like words (caption k mentions the form only where embedding k carries it).
stackgan.metrics.petals reads the petal colour back from generated images.

    <out>/jpg/image_XXXXX.jpg                          whole-flower photographs (no boxes)
    <out>/text_c10/class_XXXXX/image_XXXXX.txt         ten captions each
    <out>/{train,test}/filenames.pickle                'jpg/image_XXXXX', class-sorted (protocol 0)
    <out>/{train,test}/class_info.pickle               class ids 1..40 (protocol 0)
    <out>/{train,test}/char-CNN-RNN-embeddings.pickle  a list of (10, 1024) float32 arrays
"""

import colorsys
import functools
import json
import os
import re
import shutil

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM
from stackgan.datasets import loaders
from stackgan.datasets.flowers import DATASET, IMAGES_DIR, TEXT_DIR
from stackgan.layout import SPLITS, SYNTHETIC_MARKER

# Petal colours, far apart in hue so that a classifier separates them reliably (the synthetic birds' hues).
PALETTE = [
    ("red", (230, 30, 30)),
    ("orange", (230, 123, 30)),
    ("yellow", (230, 210, 30)),
    ("green", (30, 200, 46)),
    ("turquoise", (30, 210, 230)),
    ("blue", (30, 80, 230)),
    ("purple", (136, 30, 230)),
    ("pink", (230, 30, 156)),
]


class Form:
    """A petal form: how many petals, how wide (a fraction of their length), pointed or round tips, and the words
    that say it."""

    def __init__(self, name, count, width, pointed, words, counts):
        self.name, self.count, self.width, self.pointed = name, count, width, pointed
        self.words, self.counts = words, counts


FORMS = [
    Form("rounded", 5, 0.72, False, ("rounded", "round", "oval"), ("five",)),
    Form("pointed", 6, 0.46, True, ("pointed", "pointy", "sharp"), ("six",)),
    Form("narrow", 8, 0.3, False, ("narrow", "long and narrow", "slender"), ("eight",)),
    Form("thin", 16, 0.15, True, ("thin", "very thin", "needle like"), ("many", "numerous", "lots of")),
    Form("broad", 4, 0.95, False, ("broad", "wide", "very wide"), ("four",)),
]
N_CLASSES = len(PALETTE) * len(FORMS)


def class_of(colour, form):
    """The class id (1..40) of a petal colour and form (indices into PALETTE and FORMS)."""
    return colour * len(FORMS) + form + 1


def colour_and_form(class_id):
    """(colour, form) indices of a class id."""
    return divmod(int(class_id) - 1, len(FORMS))


def is_test_class(class_id):
    """The test classes: colour k with form k mod 5, one per colour, each form at least once; every other pair
    trains."""
    colour, form = colour_and_form(class_id)
    return form == colour % len(FORMS)


TRAIN_CLASSES = [c for c in range(1, N_CLASSES + 1) if not is_test_class(c)]
TEST_CLASSES = [c for c in range(1, N_CLASSES + 1) if is_test_class(c)]

N_CAPTIONS = 10
_EMBEDDING_SCALE = 6.0
_CODE_SEED = 20170102  # fixed: the same text code for every synthetic flower set, whatever --seed


@functools.cache
def code_basis():
    """Unit 1024-d directions: row 0 'a flower', rows 1..8 the petal colours, then the petal forms."""
    g = np.random.default_rng(_CODE_SEED).standard_normal((1 + len(PALETTE) + len(FORMS), EMBEDDING_DIM))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


def _synthetic_embeddings(rng, colour, form):
    """Ten 'captions' of one flower: a fixed projection of its colour and form, each caption weighting them
    differently (some barely mention the form), plus per-image and per-caption noise. Returns the (10, 1024)
    embeddings and each caption's form weight (10,)."""
    basis = code_basis()
    w_colour = rng.uniform(0.8, 1.2, (N_CAPTIONS, 1))
    w_form = rng.uniform(0.0, 1.0, (N_CAPTIONS, 1))
    code = basis[0] + w_colour * basis[1 + colour] + w_form * basis[1 + len(PALETTE) + form]
    noise = rng.normal(0, 0.03, EMBEDDING_DIM) + rng.normal(0, 0.05, (N_CAPTIONS, EMBEDDING_DIM))
    return (_EMBEDDING_SCALE * code + noise).astype(np.float32), w_form[:, 0]


# ---------------------------------------------------------------------------
# Captions: ten sentences per flower, in Reed's text_c10/class_XXXXX/image_XXXXX.txt layout
# ---------------------------------------------------------------------------
# {c}: petal colour, {f}: a word for the form, {n}: how many petals, {size}: a size word. Caption k leaves the form
# out when its embedding weights it below FORM_MENTION (as a real caption may say only the colour).
CAPTION_TEMPLATES = (
    "this flower has {n} {f} petals that are {c}",
    "the petals of this flower are {c} and {f}",
    "this flower is {c} in color, with petals that are {f}",
    "a {size} flower with {n} {c} petals that are {f}",
    "the flower has {f} {c} petals around a small center",
    "{n} {c} petals surround the center of this flower and they are {f}",
    "a {c} flower with {f} petals and a visible pistil",
    "the {f} petals of this flower are {c}.",
    "this {size} flower has {n} petals which are {c} and {f}",
    "{c} flower, {f} petals, {n} of them",
    "this flower has {f} petals in a {c} color",
    "a {size} {c} flower whose petals are {f}",
    "petals are {c} and {f} on this {size} flower",
    "this flower has {c} petals that are {f} and a short stamen",
)
FORMLESS_TEMPLATES = (
    "this flower is {c} in color",
    "the petals of this flower are {c}",
    "a {size} {c} flower",
    "this flower has {c} petals around its center.",
    "a flower with {c} petals",
)
# Never written to the caption files nor used in training: new sentence structures for evaluating the caption
# encoder on wording it has not seen.
HELDOUT_TEMPLATES = (
    "a blossom with {n} {f} petals of a {c} hue",
    "look at this {c} bloom, its petals are {f}",
    "{f} {c} petals on a {size} flower head",
    "here is a flower whose {f} petals are all {c}",
    "the bloom is {c} and its petals are {f}",
    "my flower: {c} petals, {f} shape",
)
FORM_MENTION = 0.15
_COLOUR_MODIFIERS = ("", "", "", "bright ", "vivid ", "deep ")
_SIZE_WORDS = ("small", "tiny", "little", "medium sized", "big", "large")
_CAPTION_SALT = 314159  # the wording has its own random stream: images and embeddings stay as they are


def fill_template(template, colour, form, rng):
    """One sentence from a template for PALETTE index `colour` and FORMS index `form`, the words drawn with rng
    ('a' becomes 'an' before a vowel)."""
    sentence = template.format(
        c=rng.choice(_COLOUR_MODIFIERS) + PALETTE[colour][0],
        f=rng.choice(FORMS[form].words),
        n=rng.choice(FORMS[form].counts),
        size=rng.choice(_SIZE_WORDS),
    )
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", sentence)


def flower_captions(colour, form, form_weights, rng):
    """Ten captions of one flower: caption k names the form unless form_weights[k] < FORM_MENTION; templates drawn
    without repeats, so the wording and word order vary."""
    with_form = rng.permutation(len(CAPTION_TEMPLATES))
    without = rng.permutation(len(FORMLESS_TEMPLATES))
    captions = []
    for k, weight in enumerate(form_weights):
        if weight < FORM_MENTION:
            template = FORMLESS_TEMPLATES[without[k % len(without)]]
        else:
            template = CAPTION_TEMPLATES[with_form[k % len(with_form)]]
        captions.append(fill_template(template, colour, form, rng))
    return captions


def heldout_captions(colour, form, rng):
    """One caption per held-out template for a flower of this colour and form."""
    return [fill_template(t, colour, form, rng) for t in HELDOUT_TEMPLATES]


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def _hsv(h, s, v):
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _petal_colour(rng, rgb):
    h, _, _ = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    return _hsv(h + rng.uniform(-0.012, 0.012), rng.uniform(0.72, 0.95), rng.uniform(0.72, 0.97))


def _foliage(rng, width, height):
    """A blurred background of leaves: greyish greens and browns of low saturation, with darker leaf shapes."""
    hue = rng.uniform(0.2, 0.42) if rng.random() < 0.75 else rng.uniform(0.05, 0.12)
    base = np.array(_hsv(hue, rng.uniform(0.1, 0.3), rng.uniform(0.3, 0.6)), np.float32)
    small = rng.normal(0, 1, (max(2, height // 20), max(2, width // 20))).astype(np.float32)
    lum = np.asarray(Image.fromarray(small, mode="F").resize((width, height), Image.BICUBIC)) * rng.uniform(10, 28)
    img = Image.fromarray(np.clip(base + lum[..., None], 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):  # leaves: long ellipses, darker or lighter than the ground
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        length, angle = rng.uniform(0.15, 0.45) * max(width, height), rng.uniform(0, np.pi)
        leaf = _lens(cx, cy, length, length * rng.uniform(0.2, 0.4), angle, pointed=True)
        draw.polygon(leaf, fill=_hsv(hue + rng.uniform(-0.04, 0.04), rng.uniform(0.12, 0.35), rng.uniform(0.15, 0.5)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 3.0)))  # out of focus behind the flower
    grain = rng.normal(0, rng.uniform(1, 5), (height, width, 1))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8))


def _lens(x0, y0, length, width, angle, pointed, n=24):
    """The outline of a petal (or leaf) from (x0, y0) outwards along `angle`: an ellipse, or with pointed=True a
    shape whose outer end comes to a point."""
    t = np.linspace(0, np.pi, n)
    along = length * (1 - np.cos(t)) / 2  # 0 .. length
    half = width / 2 * np.sin(t) ** (1.6 if pointed else 0.8)
    pts = np.concatenate([np.stack([along, half], 1), np.stack([along[::-1], -half[::-1]], 1)])
    c, s = np.cos(angle), np.sin(angle)
    return [(float(x0 + c * x - s * y), float(y0 + s * x + c * y)) for x, y in pts]


def _draw_flower(rng, colour, form):
    """An RGB image of one flower of this colour and form, seen from the front, on leaves."""
    width, height = (int(v) for v in rng.integers(120, 221, 2))
    img = _foliage(rng, width, height)
    shape = FORMS[form]
    radius = rng.uniform(0.32, 0.5) * min(width, height)  # petal length: the flower fills much of the picture
    cx = width / 2 + rng.uniform(-0.18, 0.18) * width
    cy = height / 2 + rng.uniform(-0.18, 0.18) * height
    squash, tilt = rng.uniform(0.72, 1.0), rng.uniform(0, np.pi)  # seen a little from the side
    turn = rng.uniform(0, 2 * np.pi)
    petal_rgb = np.array(_petal_colour(rng, PALETTE[colour][1]), np.float32)
    layer = Image.new("RGB", img.size)
    mask = Image.new("L", img.size, 0)
    layer_draw, mask_draw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for i in range(shape.count):
        angle = turn + 2 * np.pi * i / shape.count + rng.uniform(-0.08, 0.08)
        length = radius * rng.uniform(0.85, 1.05)
        outline = _lens(0.0, 0.0, length, length * shape.width, angle, shape.pointed)
        # seen from the side: squash the flower along `tilt`
        c, s = np.cos(tilt), np.sin(tilt)
        pts = []
        for x, y in outline:
            u, v = c * x + s * y, -s * x + c * y
            u *= squash
            pts.append((float(cx + c * u - s * v), float(cy + s * u + c * v)))
        shade = rng.uniform(0.85, 1.05)  # each petal a little lighter or darker
        layer_draw.polygon(pts, fill=tuple(int(v) for v in np.clip(petal_rgb * shade, 0, 255)))
        mask_draw.polygon(pts, fill=255)
    # petals darker towards the centre
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / radius
    arr = np.asarray(layer, np.float32) * np.clip(0.78 + 0.3 * dist, 0.78, 1.05)[..., None]
    img.paste(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), (0, 0), mask)
    # the centre: dark brown or pale cream (never a saturated colour: the petals alone carry the colour)
    draw = ImageDraw.Draw(img)
    r = radius * rng.uniform(0.14, 0.24)
    dark = rng.random() < 0.5
    fill = (
        _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.5), rng.uniform(0.1, 0.2))
        if dark
        else _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.05, 0.2), rng.uniform(0.85, 0.97))
    )
    draw.ellipse([cx - r, cy - r * squash, cx + r, cy + r * squash], fill=fill)
    for _ in range(int(rng.integers(6, 14))):  # stamens: small dots on the centre
        a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.8) * r
        x, y, dot = cx + d * np.cos(a), cy + d * np.sin(a) * squash, max(1.0, r * 0.12)
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=_hsv(0.1, 0.15, 0.95 if dark else 0.25))
    return img


# ---------------------------------------------------------------------------
# The set
# ---------------------------------------------------------------------------
def class_dir(class_id):
    return f"class_{int(class_id):05d}"


def _counts(n, classes):
    """Images per class: n spread over the classes, the first ones getting one more."""
    return {c: n // len(classes) + (k < n % len(classes)) for k, c in enumerate(classes)}


def write_synthetic(out_dir, n_train=800, n_test=160, seed=0):
    """Write a deterministic synthetic flower set in the Oxford-102 + StackGAN layout (jpg/, text_c10/, train/ and
    test/ pickles, no box tables) with a SYNTHETIC.json marker. n_train images are spread over the 32 training
    classes, n_test over the 8 test classes."""
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    if n_train < 2 or n_test < 1:
        raise UserError(f"--n-train {n_train} / --n-test {n_test}: need at least 2 training and 1 test image")
    if seed < 0:
        raise UserError(f"--seed {seed}: seeds are 0 or more")
    if not layout.is_synthetic(out_dir) and any(
        os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (IMAGES_DIR, TEXT_DIR)
    ):
        raise UserError(
            f"{out_dir} holds a dataset that is not synthetic flowers (it has no {SYNTHETIC_MARKER}); "
            f"give another folder for the synthetic flowers"
        )
    tmp = io.staging_folder(out_dir, "synthetic")
    try:
        _write_set(tmp, out_dir, n_train, n_test, seed)
    except OSError as err:  # a full disk, a read-only folder: the set there (and its marker) as it was
        raise io.WriteError(out_dir, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_set(tmp, out_dir, n_train, n_test, seed):
    """write_synthetic's work: the whole set in tmp, then moved into out_dir (its marker last)."""
    images_root, text_root = os.path.join(tmp, IMAGES_DIR), os.path.join(tmp, TEXT_DIR)
    for d in [os.path.join(tmp, s) for s in SPLITS] + [images_root, text_root]:
        os.makedirs(d, exist_ok=True)
    counts = {**_counts(n_train, TRAIN_CLASSES), **_counts(n_test, TEST_CLASSES)}
    split_rows = {s: [] for s in SPLITS}  # (filename, class id, embeddings)
    uid = 0
    for class_id in range(1, N_CLASSES + 1):
        colour, form = colour_and_form(class_id)
        split = "test" if is_test_class(class_id) else "train"
        for _ in range(counts[class_id]):
            uid += 1
            rng = np.random.default_rng([seed, uid])
            img = _draw_flower(rng, colour, form)
            if rng.random() < 0.015:  # a few grayscale JPEGs
                img = img.convert("L")
            image = f"image_{uid:05d}"
            img.save(os.path.join(images_root, image + ".jpg"), quality=90)
            embeddings, form_weights = _synthetic_embeddings(rng, colour, form)
            split_rows[split].append((f"{IMAGES_DIR}/{image}", class_id, embeddings))
            words = flower_captions(colour, form, form_weights, np.random.default_rng([seed, uid, _CAPTION_SALT]))
            folder = os.path.join(text_root, class_dir(class_id))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, image + ".txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(words) + "\n")
    for s in SPLITS:
        loaders.write_split_files(os.path.join(tmp, s), split_rows[s])
    # The set is complete in tmp: now it replaces the old one, whose marker stays until the new one is in.
    io.swap_in(tmp, out_dir, SPLITS + (IMAGES_DIR, TEXT_DIR))
    io.write_json(
        os.path.join(out_dir, SYNTHETIC_MARKER),
        {
            "dataset": DATASET.name,
            "n_train": n_train,
            "n_test": n_test,
            "seed": seed,
            "classes": N_CLASSES,
            "palette": [name for name, _ in PALETTE],
            "forms": [f.name for f in FORMS],
            "test_classes": TEST_CLASSES,
        },
    )


def ensure_synthetic(out_dir):
    """Write the default synthetic flower set into out_dir unless it already holds a complete dataset. Returns True
    if it wrote one."""
    if not layout.missing_files(out_dir, DATASET):
        if not layout.is_synthetic(out_dir) or os.path.isdir(DATASET.text_dir(out_dir)):
            return False
        try:  # a synthetic set that lost its captions: the same flowers again
            with open(layout.synthetic_marker(out_dir)) as f:
                made = json.load(f)
            sizes = int(made["n_train"]), int(made["n_test"]), int(made["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            sizes = ()
        write_synthetic(out_dir, *sizes)
        return True
    if not layout.is_synthetic(out_dir) and any(
        os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (IMAGES_DIR, TEXT_DIR)
    ):
        raise UserError(
            f"{out_dir} holds an incomplete dataset that is not the synthetic one (missing "
            f"{layout.missing_files(out_dir, DATASET)[0]}); run `python data.py check --data-dir {out_dir}` "
            f"or give another folder for the synthetic flowers"
        )
    write_synthetic(out_dir)
    return True
