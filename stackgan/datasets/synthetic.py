"""Synthetic birds in the exact CUB + StackGAN layout (`python data.py synthetic`, and what --demo trains on).

Each bird has one of 8 body colours (its class) and a dark or light wing; its ten 1024-d "caption
embeddings" are a fixed projection of both plus noise, and its ten captions say both in words (training
templates; HELDOUT_TEMPLATES are kept apart for evaluation). stackgan.metrics.attributes reads the colour back
from generated images.
"""

import colorsys
import functools
import json
import os
import pickle
import re
import shutil

import numpy as np
from PIL import Image, ImageDraw

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM
from stackgan.datasets.birds import CUB_DIR, DATASET, TEXT_DIR
from stackgan.layout import (
    CLASS_INFO_FILE,
    EMBEDDINGS_FILE,
    FILENAMES_FILE,
    SPLITS,
    SYNTHETIC_MARKER,
)


# Body colours (one class each), far apart in hue so that a classifier separates them reliably.
PALETTE = [
    ("red", (230, 30, 30)),
    ("orange", (230, 123, 30)),
    ("yellow", (230, 210, 30)),
    ("green", (30, 200, 46)),
    ("cyan", (30, 210, 230)),
    ("blue", (30, 80, 230)),
    ("purple", (136, 30, 230)),
    ("pink", (230, 30, 156)),
]
WING_SHADES = ("dark", "light")  # a second visible attribute, in the embeddings but not in the class

N_CAPTIONS = 10
_EMBEDDING_SCALE = 6.0
_CODE_SEED = 20170823  # fixed: the same text code for every synthetic set, whatever --seed


@functools.cache
def code_basis():
    """Unit 1024-d directions: row 0 'a bird', rows 1..8 the body colours, then the wing shades."""
    g = np.random.default_rng(_CODE_SEED).standard_normal((1 + len(PALETTE) + len(WING_SHADES), EMBEDDING_DIM))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


def _synthetic_embeddings(rng, colour, wing):
    """Ten 'captions' of one bird: a fixed projection of its attributes, each caption weighting them
    differently (some barely mention the wings), plus per-image and per-caption noise. Returns the (10, 1024)
    embeddings and each caption's wing weight (10,)."""
    basis = code_basis()
    w_body = rng.uniform(0.8, 1.2, (N_CAPTIONS, 1))
    w_wing = rng.uniform(0.0, 1.0, (N_CAPTIONS, 1))
    code = basis[0] + w_body * basis[1 + colour] + w_wing * basis[1 + len(PALETTE) + wing]
    noise = rng.normal(0, 0.03, EMBEDDING_DIM) + rng.normal(0, 0.05, (N_CAPTIONS, EMBEDDING_DIM))
    return (_EMBEDDING_SCALE * code + noise).astype(np.float32), w_wing[:, 0]


# ---------------------------------------------------------------------------
# Captions: ten sentences per bird, in the text/<class>/<image>.txt layout of Reed's text_c10
# ---------------------------------------------------------------------------
# {c}: body colour, {w}: wing shade, {size}: a size word. Caption k leaves the wings out when its embedding
# weights them below WING_MENTION (as a real caption may say nothing about the wings), so caption k and
# embedding k of a bird agree, as StackGAN assumes for the real files.
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
WINGLESS_TEMPLATES = (
    "this bird is {c} all over",
    "a {size} bird with a {c} body and a short beak",
    "the bird has a {c} belly and a {c} crown.",
    "this {size} bird is mostly {c}",
    "a {c} bird with a pointed beak",
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
WING_MENTION = 0.15
_COLOUR_MODIFIERS = ("", "", "", "bright ", "vivid ", "deep ")
_WING_WORDS = {
    "dark": ("dark", "black", "dark grey", "dark gray", "blackish", "charcoal"),
    "light": ("light", "white", "pale", "light grey", "light gray", "whitish", "silvery"),
}
_SIZE_WORDS = ("small", "tiny", "little", "medium sized", "plump", "large")
_CAPTION_SALT = 271828  # the wording has its own random stream: images and embeddings stay as they were


def fill_template(template, colour, wing, rng):
    """One sentence from a template for palette index `colour` and WING_SHADES index `wing`, the words drawn
    with rng ('a' becomes 'an' before a vowel)."""
    sentence = template.format(
        c=rng.choice(_COLOUR_MODIFIERS) + PALETTE[colour][0],
        w=rng.choice(_WING_WORDS[WING_SHADES[wing]]),
        size=rng.choice(_SIZE_WORDS),
    )
    return re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", sentence)


def bird_captions(colour, wing, wing_weights, rng):
    """Ten captions of one bird: caption k names the wing shade unless wing_weights[k] < WING_MENTION;
    templates drawn without repeats, so the wording and word order vary."""
    with_wing = rng.permutation(len(CAPTION_TEMPLATES))
    without = rng.permutation(len(WINGLESS_TEMPLATES))
    captions = []
    for k, weight in enumerate(wing_weights):
        if weight < WING_MENTION:
            template = WINGLESS_TEMPLATES[without[k % len(without)]]
        else:
            template = CAPTION_TEMPLATES[with_wing[k % len(with_wing)]]
        captions.append(fill_template(template, colour, wing, rng))
    return captions


def heldout_captions(colour, wing, rng):
    """One caption per held-out template for a bird of this colour and wing shade."""
    return [fill_template(t, colour, wing, rng) for t in HELDOUT_TEMPLATES]


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


def _draw_synthetic_bird(rng, colour, wing):
    """(RGB image, [x, y, w, h] box of the bird) for one synthetic bird."""
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
    body = _jitter_colour(rng, PALETTE[colour][1])
    wing_rgb = _grey(rng, (0.1, 0.22), 0.2) if WING_SHADES[wing] == "dark" else _grey(rng, (0.88, 0.97), 0.06)
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


def _class_dir(k):
    return f"{k + 1:03d}.{PALETTE[k][0].capitalize()}_Bird"


def write_synthetic(out_dir, n_train=800, n_test=160, seed=0):
    """Write a deterministic synthetic bird set in the real layout (train/ and test/ pickles,
    CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<name>.jpg, text/<class>/<name>.txt). The class
    is the body colour; each image's ten embeddings encode body colour and wing shade, and its ten captions
    say them in words (caption k matching embedding k)."""
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    if n_train < 2 or n_test < 1:
        raise UserError(f"--n-train {n_train} / --n-test {n_test}: need at least 2 training and 1 test image")
    if seed < 0:
        raise UserError(f"--seed {seed}: seeds are 0 or more")
    n_classes = len(PALETTE)
    if not layout.is_synthetic(out_dir) and any(os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (CUB_DIR,)):
        raise UserError(
            f"{out_dir} holds a dataset that is not synthetic birds (it has no {SYNTHETIC_MARKER}); "
            f"give another folder for the synthetic birds"
        )
    tmp = io.staging_folder(out_dir, "synthetic")
    try:
        _write_set(tmp, out_dir, n_train, n_test, seed, n_classes)
    except OSError as err:  # a full disk, a read-only folder: the set there (and its marker) as it was
        raise io.WriteError(out_dir, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_set(tmp, out_dir, n_train, n_test, seed, n_classes):
    """write_synthetic's work: the whole set in tmp, then moved into out_dir (its marker last)."""
    images_root = os.path.join(tmp, CUB_DIR, "images")
    text_root = os.path.join(tmp, TEXT_DIR)
    for d in [os.path.join(tmp, s) for s in SPLITS] + [images_root]:
        os.makedirs(d, exist_ok=True)
    per_class = {
        s: [n // n_classes + (k < n % n_classes) for k in range(n_classes)]
        for s, n in (("train", n_train), ("test", n_test))
    }
    split_rows = {s: [] for s in SPLITS}  # (filename, class id, embeddings)
    image_lines, box_lines = [], []
    uid = 0
    for k in range(n_classes):
        cls = _class_dir(k)
        os.makedirs(os.path.join(images_root, cls), exist_ok=True)
        m = per_class["train"][k] + per_class["test"][k]
        is_test = np.zeros(m, dtype=bool)
        is_test[np.random.default_rng([seed, 7919, k]).permutation(m)[: per_class["test"][k]]] = True
        for j in range(m):
            uid += 1
            rng = np.random.default_rng([seed, uid])
            wing = int(rng.integers(len(WING_SHADES)))
            img, box = _draw_synthetic_bird(rng, k, wing)
            if rng.random() < 0.025:  # a few grayscale JPEGs, like CUB's
                img = img.convert("L")
            name = f"{cls}/{PALETTE[k][0].capitalize()}_Bird_{j + 1:04d}_{uid}"
            img.save(os.path.join(images_root, name + ".jpg"), quality=90)
            image_lines.append(f"{uid} {name}.jpg\n")
            box_lines.append(f"{uid} {box[0]:.1f} {box[1]:.1f} {box[2]:.1f} {box[3]:.1f}\n")
            embeddings, wing_weights = _synthetic_embeddings(rng, k, wing)
            split_rows["test" if is_test[j] else "train"].append((name, k + 1, embeddings))
            words = bird_captions(k, wing, wing_weights, np.random.default_rng([seed, uid, _CAPTION_SALT]))
            os.makedirs(os.path.join(text_root, cls), exist_ok=True)
            with open(os.path.join(text_root, name + ".txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(words) + "\n")
    for s in SPLITS:
        rows = split_rows[s]
        d = os.path.join(tmp, s)
        # Protocol 0 for the lists, as the real files; the embeddings as a list of (10, 1024) arrays.
        with open(os.path.join(d, FILENAMES_FILE), "wb") as f:
            pickle.dump([name for name, _, _ in rows], f, protocol=0)
        with open(os.path.join(d, CLASS_INFO_FILE), "wb") as f:
            pickle.dump([c for _, c, _ in rows], f, protocol=0)
        with open(os.path.join(d, EMBEDDINGS_FILE), "wb") as f:
            pickle.dump([e for _, _, e in rows], f, protocol=2)
    cub = os.path.join(tmp, CUB_DIR)
    with open(os.path.join(cub, "images.txt"), "w") as f:
        f.writelines(image_lines)
    with open(os.path.join(cub, "bounding_boxes.txt"), "w") as f:
        f.writelines(box_lines)
    with open(os.path.join(cub, "classes.txt"), "w") as f:
        f.writelines(f"{k + 1} {_class_dir(k)}\n" for k in range(n_classes))
    # The set is complete in tmp: now it replaces the old one, whose marker stays until the new one is in.
    replaced = os.path.join(tmp, "replaced")
    os.makedirs(replaced)
    for name in SPLITS + (CUB_DIR, TEXT_DIR):
        dest = os.path.join(out_dir, name)
        if os.path.lexists(dest):
            os.replace(dest, os.path.join(replaced, name))
        os.replace(os.path.join(tmp, name), dest)
    io.write_json(
        os.path.join(out_dir, SYNTHETIC_MARKER),
        {
            "n_train": n_train,
            "n_test": n_test,
            "seed": seed,
            "classes": n_classes,
            "palette": [name for name, _ in PALETTE],
            "wing_shades": list(WING_SHADES),
        },
    )


def ensure_synthetic(out_dir):
    """Write the default synthetic set into out_dir unless it already holds a complete dataset (with captions,
    if it is a synthetic one). Returns True if it wrote one."""
    complete = not layout.missing_files(out_dir, DATASET)
    if complete and (not layout.is_synthetic(out_dir) or os.path.isdir(os.path.join(out_dir, TEXT_DIR))):
        return False
    if complete:  # a synthetic set written before captions existed: the same birds again, now with captions
        try:
            with open(os.path.join(out_dir, SYNTHETIC_MARKER)) as f:
                made = json.load(f)
            sizes = int(made["n_train"]), int(made["n_test"]), int(made["seed"])
        except (OSError, ValueError, KeyError, TypeError):
            sizes = ()
        write_synthetic(out_dir, *sizes)
        return True
    if not layout.is_synthetic(out_dir) and any(os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (CUB_DIR,)):
        raise UserError(
            f"{out_dir} holds an incomplete dataset that is not the synthetic one (missing "
            f"{layout.missing_files(out_dir, DATASET)[0]}); run `python data.py check --data-dir {out_dir}` "
            f"or give another folder for the synthetic birds"
        )
    write_synthetic(out_dir)
    return True
