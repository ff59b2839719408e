"""Writing generated birds to a folder, for generate.py: reading captions and embeddings files, the images in
order, a grid and a sheet of each caption under its images."""

import os
import sys
import textwrap

import numpy as np
from PIL import Image

import data
from stackgan import io
from stackgan.cli import UserError

GRID_IMAGES = 64
SHEET_ROWS, SHEET_COLUMNS = 32, 8  # captions and samples shown in captions.png


def read_captions_file(path):
    """(captions, labels) from a UTF-8 file, one caption per non-blank line (LF, CRLF or CR)."""
    if not os.path.isfile(path):
        raise UserError(f"captions file {path} not found; write one caption per line, or pass --caption TEXT")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path} is not UTF-8 text (byte offset {err.start} is {raw[err.start : err.start + 1]!r}); "
            f"save it as UTF-8 with one caption per line"
        ) from None
    captions, labels = [], []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if line.strip():
            captions.append(line)
            labels.append(f"{path} line {number}")
    if not captions:
        raise UserError(f"{path} holds no caption; write one caption per line")
    return captions, labels


def save_caption_sheet(path, captions, images, per):
    """A figure with each caption printed under its images (uint8 (n*per, H, W, 3), rows in caption order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = min(len(captions), SHEET_ROWS), min(per, SHEET_COLUMNS)
    fig, axes = plt.subplots(rows, 1, figsize=(max(4.0, 1.8 * cols), 2.4 * rows), squeeze=False)
    for r in range(rows):
        ax = axes[r, 0]
        ax.imshow(np.concatenate([images[r * per + s] for s in range(cols)], axis=1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("\n".join(textwrap.wrap(captions[r], width=max(30, 22 * cols))), fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    sheet = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]).quantize(256)  # a palette PNG: 1/3 the bytes
    plt.close(fig)
    with io.atomic_path(path, ".png") as tmp:
        sheet.save(tmp, optimize=True)


def read_embedding_file(path):
    """The raw array of an embeddings file: (N, D) or (N, C, D) float32."""
    if not os.path.isfile(path):
        raise UserError(
            f"embeddings file {path} not found; pass --embeddings PATH (a .npy or "
            f"char-CNN-RNN pickle) or prepare the dataset with `python data.py prepare`"
        )
    if path.lower().endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise UserError(
                f"{path} is not a readable .npy array ({type(err).__name__}: {err}); "
                f"save embeddings with numpy.save as shape (N, 1024) or (N, 10, 1024)"
            ) from None
    else:
        try:
            array = data.load_embeddings(path)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - a bad pickle raises many types
            raise UserError(
                f"{path} is not a readable char-CNN-RNN embeddings pickle ({type(err).__name__}); "
                f"pass a pickle of an (N, 10, 1024) array or an (N, 1024) .npy"
            ) from None
    try:
        array = np.asarray(array, dtype="float32")
    except (TypeError, ValueError):
        raise UserError(f"{path} does not hold a numeric array; expected shape (N, 1024) or (N, 10, 1024)") from None
    return array


def select_embeddings(array, path, embedding_dim, caption_index, limit=None):
    """(N, D) or (N, C, D) -> (N', D) with the chosen caption (or the mean over captions)."""
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[-1] == 0:
        raise UserError(
            f"{path} has shape {array.shape}; expected (N, {embedding_dim}) or (N, captions, "
            f"{embedding_dim}) with N >= 1"
        )
    if array.shape[-1] != embedding_dim:
        raise UserError(
            f"{path} has {array.shape[-1]}-dimensional embeddings (shape {array.shape}) but the "
            f"generator was trained on {embedding_dim}-dimensional ones; use embeddings from the "
            f"same text encoder"
        )
    if array.ndim == 2:
        array = array[:, None, :]
    if limit is not None:
        array = array[:limit]
    captions = array.shape[1]
    if caption_index == "mean":
        chosen = array.mean(axis=1)
    elif caption_index >= captions:
        raise UserError(
            f"--caption-index {caption_index} is out of range: {path} has {captions} caption(s) per "
            f"row, so use 0..{captions - 1} or 'mean'"
        )
    else:
        chosen = array[:, caption_index, :]
    if not np.isfinite(chosen).all():
        raise UserError(f"{path} contains NaN or infinite values; regenerate the embeddings")
    return np.ascontiguousarray(chosen, dtype="float32")


def write_samples(birds, vectors, out, samples, seed, batch_size, save_stage1=False, captions=None):
    """Draw `samples` birds per vector with `birds` (a StackGAN) and write OUT/{index:05d}_{sample}.png in order,
    OUT/grid.png, with save_stage1 OUT/stage1/... (the 64x64 inputs of Stage-II), and for captions
    OUT/captions.png and OUT/captions.txt. Returns the names written."""
    os.makedirs(out, exist_ok=True)
    total = len(vectors) * samples
    grid_parts = [[] for _ in range(birds.stage)]
    sheet = []  # final uint8 images of the captions shown in captions.png
    written = set()
    start = 0
    for rows, outputs in birds.sample(vectors, samples, seed, batch_size=batch_size):
        final = io.to_uint8(outputs[-1])
        lows = io.to_uint8(outputs[0]) if save_stage1 else None
        for j, k in enumerate(range(start, start + len(rows))):
            name = io.image_name(int(rows[j]), k % samples)
            io.save_png(final[j], os.path.join(out, name))
            written.add(name)
            if lows is not None:
                io.save_png(lows[j], os.path.join(out, "stage1", name))
        if captions is not None and start < SHEET_ROWS * samples:
            sheet.append(final[: SHEET_ROWS * samples - start])
        have = sum(len(g) for g in grid_parts[0])
        if have < GRID_IMAGES:
            for part, images in zip(grid_parts, outputs):
                part.append(images[: GRID_IMAGES - have])
        start += len(rows)
        if total > batch_size:
            print(f"  {start}/{total} images", file=sys.stderr, flush=True)
    io.save_png(io.stage_grid([np.concatenate(part) for part in grid_parts]), os.path.join(out, "grid.png"))
    if captions is not None:
        save_caption_sheet(os.path.join(out, "captions.png"), captions, np.concatenate(sheet), samples)
        with io.atomic_path(os.path.join(out, "captions.txt"), ".txt") as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"{i:05d}\t{' '.join(c.split())}\n" for i, c in enumerate(captions))
    return written
