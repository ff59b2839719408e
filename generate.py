"""Generate bird (or flower) images from text embeddings, or from your own captions, with a trained StackGAN.

    python generate.py --stage 2 --results-dir results --out samples/
    python generate.py --stage 1 --embeddings my_captions.npy --samples-per-embedding 4 --out samples/
    python generate.py --caption "a small yellow bird with dark wings" --out samples/   # needs text_encoder.py train
    python generate.py --demo --caption "a small yellow bird with dark wings"           # results/demo -> samples/demo
    python generate.py --demo --dataset flowers --caption "a flower with pointed blue petals"  # samples/demo_flowers

The networks are rebuilt from the config that training wrote beside the weights
(results/stage{N}_config.json, results/stage{N}_gen.weights.h5), so no width flags are needed; without
--stage, Stage-II runs when its weights are there. Captions (--caption, --captions-file) are encoded by the
text encoder trained with `python text_encoder.py train` (RESULTS_DIR/text_encoder.weights.h5).
Writes OUT/{index:05d}_{sample}.png in the order of the embeddings or captions, plus OUT/grid.png; for
captions also OUT/captions.png (each caption under its images) and OUT/captions.txt.
"""

import os
import sys
import textwrap

import numpy as np
from PIL import Image

from stackgan.datasets import loaders
from stackgan.datasets.captions import read_caption_lines
from stackgan import io, layout
from stackgan.api import StackGAN
from stackgan.cli import ArgumentParser, UserError, caption_index, non_negative_int, positive_int, run_main
from stackgan.config import IMAGE_SIZE
from stackgan.datasets import NAMES
from stackgan.layout import DEFAULT_DATASET, demo_dirs, split_files

GRID_IMAGES = 64
SHEET_ROWS, SHEET_COLUMNS = 32, 8  # captions and samples shown in captions.png


def build_parser():
    p = ArgumentParser(
        prog="generate.py",
        description="Generate images from text embeddings or captions with a trained Stage-I or Stage-II StackGAN "
        "generator. Writes OUT/{index:05d}_{sample}.png in embedding (or caption) order and OUT/grid.png.",
    )
    p.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        default=None,
        help="1: 64x64 images from Stage-I; 2: 256x256 images from Stage-I followed by Stage-II "
        "(default: 2 when RESULTS_DIR holds Stage-II weights, else 1)",
    )
    demo = demo_dirs(DEFAULT_DATASET)
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"the demo's models and data: --results-dir {demo['results_dir']} --data-dir {demo['data_dir']} "
        f"--out {demo['samples_dir']} unless given (with --dataset flowers, the flowers demo's)",
    )
    p.add_argument(
        "--dataset",
        choices=NAMES,
        default=None,
        help="with --demo, whose demo (default: birds); else the generator's own dataset, as its config records",
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="folder holding stage{N}_config.json and stage{N}_gen.weights.h5 written by training "
        "(default: results, with --demo results/demo)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--embeddings",
        default=None,
        help="text embeddings to draw: a char-CNN-RNN pickle ((N,10,1024) array or list of arrays), "
        "or a .npy of shape (N,1024) or (N,10,1024). Default: the test split embeddings "
        f"{split_files('<data-dir>', 'test').embeddings}",
    )
    source.add_argument(
        "--caption",
        action="append",
        default=None,
        metavar="TEXT",
        help="a sentence describing a bird or a flower (repeat for several); encoded by the text encoder in "
        "--encoder-dir",
    )
    p.add_argument(
        "--captions-file",
        default=None,
        help="a UTF-8 text file with one caption per line (blank lines are skipped); after any --caption",
    )
    p.add_argument(
        "--encoder-dir",
        default=None,
        help="folder holding text_encoder.weights.h5 and text_encoder_config.json (default: RESULTS_DIR)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="dataset folder whose test embeddings are drawn when --embeddings is not given (default: the one the "
        "generator was trained on, as its config records)",
    )
    p.add_argument(
        "--out", default=None, help=f"output folder (created if missing; with --demo: {demo['samples_dir']})"
    )
    p.add_argument(
        "--caption-index",
        type=caption_index,
        default=None,
        help="which of the captions per image to use: a number (default 0) or 'mean' to average "
        "them; an (N,1024) file has one caption per row",
    )
    p.add_argument(
        "--samples-per-embedding",
        type=positive_int,
        default=1,
        help="images per embedding or caption, each with its own noise z (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
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
    p.add_argument(
        "--limit", type=positive_int, default=None, help="use only the first N embeddings or captions (default: all)"
    )
    p.add_argument(
        "--save-stage1",
        action="store_true",
        help="with --stage 2, also write the 64x64 Stage-I inputs as OUT/stage1/{index:05d}_{sample}.png",
    )
    return p


def resolve_args(args):
    """Fill the defaults that depend on --demo and on what RESULTS_DIR holds; reject contradictory flags."""
    demo = demo_dirs(args.dataset or DEFAULT_DATASET) if args.demo else {}
    args.results_dir = args.results_dir or demo.get("results_dir", "results")
    args.data_dir = args.data_dir or demo.get("data_dir")
    args.encoder_dir = args.encoder_dir or args.results_dir
    if args.out is None:
        if not args.demo:
            raise UserError("--out is required (the folder for the images), unless --demo (samples/demo)")
        args.out = demo["samples_dir"]
    if args.captions_file and args.embeddings:
        raise UserError("--captions-file and --embeddings exclude each other: give captions or embeddings")
    if (args.caption or args.captions_file) and args.caption_index is not None:
        raise UserError("--caption-index picks one of an image's precomputed embeddings; it does not apply to captions")
    if args.caption_index is None:
        args.caption_index = 0
    return args


def read_captions_file(path):
    """(captions, labels) from a UTF-8 file, one caption per non-blank line (LF, CRLF or CR)."""
    if not os.path.isfile(path):
        raise UserError(f"captions file {path} not found; write one caption per line, or pass --caption TEXT")
    lines = read_caption_lines(path, strict=True)
    if not lines:
        raise UserError(f"{path} holds no caption; write one caption per line")
    return [caption for _, caption in lines], [f"{path} line {number}" for number, _ in lines]


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
            array = loaders.load_embeddings(path)
        except UserError:
            raise
        except Exception as err:
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
    loaders.check_embeddings(
        array, path, embedding_dim, fix="use embeddings from the text encoder the generator was trained with"
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
    return np.ascontiguousarray(chosen, dtype="float32")


def write_samples(birds, vectors, out, samples, seed, batch_size, save_stage1=False, captions=None):
    """Draw `samples` birds per vector with `birds` (a StackGAN) and write OUT/{index:05d}_{sample}.png in order,
    OUT/grid.png, with save_stage1 OUT/stage1/... (the 64x64 inputs of Stage-II), and for captions
    OUT/captions.png and OUT/captions.txt. Returns the names written."""
    os.makedirs(out, exist_ok=True)
    extras = layout.generated_extras(out)
    total = len(vectors) * samples
    grid_parts = [[] for _ in range(birds.stage)]
    sheet = []  # final uint8 images of the captions shown in captions.png
    written = set()
    start = 0
    for rows, outputs in birds.sample(vectors, samples, seed, batch_size=batch_size):
        final = outputs[-1]
        lows = outputs[0] if save_stage1 else None
        for j, k in enumerate(range(start, start + len(rows))):
            name = io.image_name(int(rows[j]), k % samples)
            io.save_rgb_img(final[j], os.path.join(out, name))
            written.add(name)
            if lows is not None:
                io.save_rgb_img(lows[j], os.path.join(extras["stage1"], name))
        if captions is not None and start < SHEET_ROWS * samples:
            sheet.append(final[: SHEET_ROWS * samples - start])
        have = sum(len(g) for g in grid_parts[0])
        if have < GRID_IMAGES:
            for part, images in zip(grid_parts, outputs):
                part.append(images[: GRID_IMAGES - have])
        start += len(rows)
        if total > batch_size:
            print(f"  {start}/{total} images", file=sys.stderr, flush=True)
    io.save_rgb_img(io.stage_grid([np.concatenate(part) for part in grid_parts]), extras["grid"])
    if captions is not None:
        save_caption_sheet(extras["sheet"], captions, np.concatenate(sheet), samples)
        with io.atomic_path(extras["captions"], ".txt") as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"{i:05d}\t{' '.join(c.split())}\n" for i, c in enumerate(captions))
    return written


def captions_of(args):
    """(captions, labels) of --caption and --captions-file, in that order, up to --limit."""
    captions = list(args.caption or [])
    labels = [f"--caption {i + 1}" for i in range(len(captions))]
    if args.captions_file:
        more, more_labels = read_captions_file(args.captions_file)
        captions += more
        labels += more_labels
    if args.limit is not None:
        captions, labels = captions[: args.limit], labels[: args.limit]
    return captions, labels


def main(argv=None):
    args = resolve_args(build_parser().parse_args(argv))
    birds = StackGAN.from_preset(args.results_dir, args.stage, args.encoder_dir, "generate.py")  # configs only
    if args.save_stage1 and birds.stage != 2:
        raise UserError("--save-stage1 only applies to --stage 2 (Stage-I output is what --stage 1 writes)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a file; give a folder for the images")
    captions = None
    if args.caption or args.captions_file:
        captions, labels = captions_of(args)
        vectors = birds.encode(captions, labels)
    else:
        data_dir = args.data_dir or birds.data_dir or birds.dataset.default_dir
        path = args.embeddings or split_files(data_dir, "test").embeddings
        array = read_embedding_file(path)
        vectors = select_embeddings(array, path, birds.embedding_dim, args.caption_index, args.limit)

    per = args.samples_per_embedding
    written = write_samples(birds, vectors, args.out, per, args.seed, args.batch_size, args.save_stage1, captions)
    if captions is not None:
        print(f"captions under their images: {os.path.join(args.out, 'captions.png')}")
    size = IMAGE_SIZE[birds.stage]
    what = "captions" if captions is not None else "embeddings"
    print(
        f"wrote {len(written)} images ({size}x{size}, {len(vectors)} {what} x {per} samples) to {args.out}/ "
        f"and a grid of the first {min(GRID_IMAGES, len(written))} to {os.path.join(args.out, 'grid.png')}"
        + (f"; 64x64 Stage-I inputs in {os.path.join(args.out, 'stage1')}/" if args.save_stage1 else "")
    )
    stale = [f for f in os.listdir(args.out) if io.GENERATED.match(f) and f not in written]
    if stale:
        print(
            f"note: {args.out} also holds {len(stale)} older image(s) from an earlier run (e.g. {min(stale)}); "
            f"evaluate.py reads every {{index}}_{{sample}}.png there, so remove them or use a fresh --out",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
