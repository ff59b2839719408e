"""Generate bird images from text embeddings with a trained StackGAN.

    python generate.py --stage 2 --results-dir results --out samples/
    python generate.py --stage 1 --embeddings my_captions.npy --samples-per-embedding 4 --out samples/

The networks are rebuilt from the config that training wrote beside the weights
(results/stage{N}_config.json, results/stage{N}_gen.weights.h5), so no width flags are needed.
Writes OUT/{index:05d}_{sample}.png in the order of the embeddings, plus OUT/grid.png.
"""

import argparse
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import cli
import sampling
from cli import UserError, positive_int

DEFAULT_DATA_DIR = "data/birds"  # same as data.DEFAULT_DATA_DIR; kept here so --help needs no data.py import
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
GRID_IMAGES = 64
IMAGE_NAME = re.compile(r"^(\d{5,})_(\d+)\.png$")


def image_name(index, sample):
    return f"{index:05d}_{sample}.png"


def caption_index_arg(text):
    if text == "mean":
        return "mean"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a caption number (0, 1, ...) nor 'mean'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; caption numbers start at 0")
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog="generate.py",
        description="Generate images from text embeddings with a trained Stage-I or Stage-II StackGAN generator. "
        "Writes OUT/{index:05d}_{sample}.png in embedding order and OUT/grid.png.",
    )
    p.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        required=True,
        help="1: 64x64 images from Stage-I; 2: 256x256 images from Stage-I followed by Stage-II",
    )
    p.add_argument(
        "--results-dir",
        default="results",
        help="folder holding stage{N}_config.json and stage{N}_gen.weights.h5 written by training "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--embeddings",
        default=None,
        help="text embeddings to draw: a char-CNN-RNN pickle ((N,10,1024) array or list of arrays), "
        "or a .npy of shape (N,1024) or (N,10,1024). Default: the test split embeddings "
        f"<data-dir>/test/{EMBEDDINGS_FILE}",
    )
    p.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="dataset folder used when --embeddings is not given (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument(
        "--caption-index",
        type=caption_index_arg,
        default=0,
        help="which of the captions per image to use: a number (default 0) or 'mean' to average "
        "them; an (N,1024) file has one caption per row",
    )
    p.add_argument(
        "--samples-per-embedding",
        type=positive_int,
        default=1,
        help="images per embedding, each with its own noise z (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed for z and the conditioning-augmentation noise; the same seed and --batch-size "
        "give the same images (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="images per forward pass; lower it if memory runs out (default: %(default)s)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N embeddings (default: all)")
    p.add_argument(
        "--save-stage1",
        action="store_true",
        help="with --stage 2, also write the 64x64 Stage-I inputs as OUT/stage1/{index:05d}_{sample}.png",
    )
    return p


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
        import data

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


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.save_stage1 and args.stage != 2:
        raise UserError("--save-stage1 only applies to --stage 2 (Stage-I output is what --stage 1 writes)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a file; give a folder for the images")

    # Cheap checks first: config and embeddings, before building any network.
    for s in range(1, args.stage + 1):
        config = sampling.read_config(args.results_dir, s, needed_by="generate.py")
    embedding_dim = int(config.get("embedding_dim", 1024))
    path = args.embeddings or os.path.join(args.data_dir, "test", EMBEDDINGS_FILE)
    embeddings = select_embeddings(read_embedding_file(path), path, embedding_dim, args.caption_index, args.limit)

    import keras

    keras.utils.set_random_seed(args.seed)  # seeds the generators' own noise layers (conditioning augmentation)
    generators, config = sampling.load_generators(args.results_dir, args.stage, needed_by="generate.py")
    z_dim = int(generators[0].inputs[1].shape[-1])

    n, per = len(embeddings), args.samples_per_embedding
    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((n * per, z_dim)).astype("float32")  # drawn up front: independent of --batch-size
    rows = np.repeat(np.arange(n), per)  # row k is embedding k // per, sample k % per

    os.makedirs(args.out, exist_ok=True)
    grid_parts = [[] for _ in generators]
    written = set()
    chunk = args.batch_size
    for start in range(0, n * per, chunk):
        idx = rows[start : start + chunk]
        outputs = sampling.sample_images(generators, embeddings[idx], z[start : start + chunk], chunk)
        final = sampling.to_uint8(outputs[-1])
        lows = sampling.to_uint8(outputs[0]) if args.save_stage1 else None
        for j, k in enumerate(range(start, start + len(idx))):
            name = image_name(int(rows[k]), k % per)
            sampling.save_png(final[j], os.path.join(args.out, name))
            written.add(name)
            if lows is not None:
                sampling.save_png(lows[j], os.path.join(args.out, "stage1", name))
        have = sum(len(g) for g in grid_parts[0])
        if have < GRID_IMAGES:
            for part, out in zip(grid_parts, outputs):
                part.append(out[: GRID_IMAGES - have])
        if n * per > chunk:
            print(f"  {min(start + chunk, n * per)}/{n * per} images", file=sys.stderr, flush=True)

    grid = sampling.stage_grid([np.concatenate(part) for part in grid_parts])
    grid_path = os.path.join(args.out, "grid.png")
    sampling.save_png(grid, grid_path)

    size = sampling.STAGE_IMAGE_SIZE[args.stage]
    print(
        f"wrote {len(written)} images ({size}x{size}, {n} embeddings x {per} samples) to {args.out}/ "
        f"and a grid of the first {min(GRID_IMAGES, len(written))} to {grid_path}"
        + (f"; 64x64 Stage-I inputs in {os.path.join(args.out, 'stage1')}/" if args.save_stage1 else "")
    )
    stale = [f for f in os.listdir(args.out) if IMAGE_NAME.match(f) and f not in written]
    if stale:
        print(
            f"note: {args.out} also holds {len(stale)} older image(s) from an earlier run (e.g. {min(stale)}); "
            f"evaluate.py reads every {{index}}_{{sample}}.png there, so remove them or use a fresh --out",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
