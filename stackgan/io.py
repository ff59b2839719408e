"""Files: writing them safely, generator outputs as pictures, and folders of generated images read back.

Every file the project writes goes through atomic_path: it is written under a temporary name beside
its destination and renamed into place, so an interrupted run never leaves half a file.
"""

import contextlib
import json
import os
import re
import tempfile

import numpy as np
from PIL import Image

from stackgan.cli import UserError

GENERATED = re.compile(r"^(\d{5,})_(\d+)\.png$")  # what generate.py writes: {index:05d}_{sample}.png
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside `path`; it becomes `path` when the block ends, and is removed if the
    block raises. `suffix` keeps the extension that some writers insist on (.weights.h5, .npy, .png)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_quietly(path):
    """Delete a file if it is there; a missing or undeletable file is not an error."""
    try:
        os.remove(path)
    except OSError:
        pass


def write_json(path, obj):
    with atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def write_bytes(path, payload):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def save_npy(path, array):
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array)


def save_weights(model, path):
    with atomic_path(path, ".weights.h5") as tmp:
        model.save_weights(tmp)


def save_png(array, path):
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(array).save(tmp)


def to_uint8(images):
    """tanh output in [-1, 1] -> uint8 [0, 255]."""
    return np.clip((np.asarray(images, dtype="float32") + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def make_grid(images, columns=8, pad=2):
    """uint8 (N,H,W,3) -> one uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) mosaic on white."""
    n, h, w, _ = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return grid


def stage_grid(stage_images, columns=8):
    """One grid from the per-stage outputs of sampling.sample_images; Stage-II shows each 64x64 input
    beside its 256x256 output."""
    final = to_uint8(stage_images[-1])
    if len(stage_images) == 1:
        return make_grid(final, columns)
    size = final.shape[1]
    lows = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.NEAREST)) for im in to_uint8(stage_images[0])]
    )
    pairs = np.concatenate([lows, final], axis=2)  # low-res input | high-res output, side by side
    return make_grid(pairs, max(1, columns // 2))


def save_rgb_img(img, path):
    """The chapter's save_rgb_img: one image as a PNG, generator output (float in [-1, 1]) or uint8, written
    atomically. The chapter drew it into a matplotlib figure titled "Image"; the pixels are written as they are."""
    array = np.asarray(img)
    save_png(array if array.dtype == np.uint8 else to_uint8(array), path)


# ---------------------------------------------------------------------------
# Folders of generated images: {index:05d}_{sample}.png
# ---------------------------------------------------------------------------
def image_name(index, sample):
    return f"{index:05d}_{sample}.png"


def generated_images(folder):
    """[(index, sample, path)] of FOLDER/{index:05d}_{sample}.png, sorted."""
    found = []
    for name in os.listdir(folder):
        m = GENERATED.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, name)))
    return sorted(found)


def list_images(folder, what="--images"):
    """Image paths of a folder: generate.py's {index}_{sample}.png if any, else every image file."""
    if not os.path.isdir(folder):
        raise UserError(f"{what} {folder} is not a folder; give the folder of images (e.g. generate.py --out)")
    generated = generated_images(folder)
    if generated:
        return [path for _, _, path in generated]
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
    )


def load_image(path, size=None):
    """uint8 (H, W, 3); resized to size x size (bilinear) when size is given and differs."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable image ({type(err).__name__}); remove or replace it") from None


def resize_batch(images, size):
    """uint8 images (any sizes) -> uint8 (N, size, size, 3), bilinear, like load_image."""
    out = []
    for im in images:
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out.append(im)
    return np.stack(out)


def folder_batches(paths, batch_size, size):
    for start in range(0, len(paths), batch_size):
        yield np.stack([load_image(p, size) for p in paths[start : start + batch_size]])


def array_batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
