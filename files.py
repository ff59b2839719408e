"""Writing files safely, and turning generator outputs into pictures.

Every file the project writes goes through atomic_path: it is written under a temporary name beside
its destination and renamed into place, so an interrupted run never leaves half a file.
"""

import contextlib
import json
import os
import tempfile

import numpy as np
from PIL import Image

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
