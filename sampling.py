"""Rebuild trained generators from results/ and turn their outputs into pictures.

Shared by training (epoch grids), generate.py and evaluate.py.
"""

import json
import os
import tempfile

import numpy as np
from PIL import Image

from cli import UserError

STAGE_IMAGE_SIZE = {1: 64, 2: 256}


def config_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_config.json")


def weights_path(results_dir, stage, net):
    """net is 'gen' or 'dis': results/stage1_gen.weights.h5 etc."""
    return os.path.join(results_dir, f"stage{stage}_{net}.weights.h5")


def write_json_atomic(path, obj):
    """Write JSON to a temporary file beside `path`, then rename it: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_config(results_dir, stage, needed_by="this command"):
    path = config_path(results_dir, stage)
    weights = weights_path(results_dir, stage, "gen")
    if not os.path.exists(path) or not os.path.exists(weights):
        missing = path if not os.path.exists(path) else weights
        raise UserError(
            f"{missing} not found: {needed_by} needs trained Stage-{stage} weights; "
            f"run `python stage{stage}.py --results-dir {results_dir}` first"
        )
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable config ({err}); retrain with `python stage{stage}.py`") from None


def load_generator_weights(model, path, stage):
    try:
        model.load_weights(path)
    except Exception as err:  # h5py/Keras raise many types for a wrong or corrupt file
        raise UserError(
            f"{path} does not fit the Stage-{stage} generator described by "
            f"{os.path.basename(config_path(os.path.dirname(path), stage))} ({type(err).__name__}); "
            f"retrain with `python stage{stage}.py`"
        ) from None


def load_generators(results_dir, stage, needed_by="this command"):
    """Trained generators up to `stage`: ([stage1_gen] or [stage1_gen, stage2_gen], config of the last stage)."""
    import models

    generators, config = [], None
    for s in range(1, stage + 1):
        config = read_config(results_dir, s, needed_by)
        gen = models.build_generator(s, config)
        load_generator_weights(gen, weights_path(results_dir, s, "gen"), s)
        generators.append(gen)
    return generators, config


def sample_images(generators, embeddings, z, batch_size=64):
    """Run the generator chain on (N, 1024) embeddings and (N, z_dim) noise.

    Returns one float32 array in [-1, 1] per stage: [(N,64,64,3)] or [(N,64,64,3), (N,256,256,3)].
    """
    outputs = [[] for _ in generators]
    for start in range(0, len(embeddings), batch_size):
        e = np.asarray(embeddings[start : start + batch_size], dtype="float32")
        lr, _ = generators[0]([e, np.asarray(z[start : start + batch_size], dtype="float32")], training=False)
        outputs[0].append(np.asarray(lr))
        if len(generators) > 1:
            hr, _ = generators[1]([e, np.asarray(lr)], training=False)
            outputs[1].append(np.asarray(hr))
    return [np.concatenate(o) for o in outputs]


def to_uint8(images):
    """tanh output in [-1, 1] -> uint8 [0, 255] (the chapter showed raw tanh output, clipping half of it)."""
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
    """One grid from the per-stage outputs of sample_images; Stage-II shows each 64x64 input beside its 256x256 output."""
    final = to_uint8(stage_images[-1])
    if len(stage_images) == 1:
        return make_grid(final, columns)
    size = final.shape[1]
    lows = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.NEAREST)) for im in to_uint8(stage_images[0])]
    )
    pairs = np.concatenate([lows, final], axis=2)  # low-res input | high-res output, side by side
    return make_grid(pairs, max(1, columns // 2))


def save_png(array, path):
    """Write a uint8 image atomically (never a half-written file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)
