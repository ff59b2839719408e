"""Where files live: the split files every StackGAN dataset has, the cache beside them, and the files that training
writes into a results folder. A dataset's own files (images, boxes, captions) are its module's business
(stackgan.datasets); every other path is spelled here.

    <data_dir>/train/filenames.pickle                 list of image names
    <data_dir>/train/class_info.pickle                class ids, same order
    <data_dir>/train/char-CNN-RNN-embeddings.pickle   (N, 10, 1024) float32
    <data_dir>/test/...                               the same three files
    <data_dir>/cache/                                 decoded crops, written on first use
"""

import os
from typing import NamedTuple

DATA_ROOT = "data"
DEFAULT_DATASET = "birds"  # the chapter's
SPLITS = ("train", "test")
FILENAMES_FILE = "filenames.pickle"
CLASS_INFO_FILE = "class_info.pickle"
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
CACHE_DIR = "cache"
SYNTHETIC_MARKER = "SYNTHETIC.json"


class SplitFiles(NamedTuple):
    """The three pickles of one split."""

    filenames: str
    class_info: str
    embeddings: str


def split_dir(data_dir, split):
    return os.path.join(data_dir, split)


def split_files(data_dir, split):
    directory = split_dir(data_dir, split)
    return SplitFiles(*(os.path.join(directory, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE)))


def fid_cache_dir(data_dir):
    """Where `evaluate.py fid` keeps the real images' statistics unless --cache-dir says otherwise."""
    return os.path.join(data_dir, "fid_cache")


def dataset_dir(name):
    """Where a dataset's data goes unless --data-dir says otherwise: data/birds, data/flowers."""
    return os.path.join(DATA_ROOT, name)


def demo_dirs(name):
    """The folders of a dataset's --demo (both stages, the caption encoder, generate.py): its synthetic set, results,
    logs and samples; the birds' are data/synthetic, results/demo, logs/demo and samples/demo."""
    suffix = "" if name == DEFAULT_DATASET else f"_{name}"
    return dict(
        data_dir=os.path.join(DATA_ROOT, f"synthetic{suffix}"),
        results_dir=f"results/demo{suffix}",
        log_dir=f"logs/demo{suffix}",
        samples_dir=f"samples/demo{suffix}",
    )


def synthetic_marker(data_dir):
    return os.path.join(data_dir, SYNTHETIC_MARKER)


def is_synthetic(data_dir):
    """True if data_dir holds a set written by `python data.py synthetic`."""
    return os.path.isfile(synthetic_marker(data_dir))


def cache_dir(data_dir):
    return os.path.join(data_dir, CACHE_DIR)


def missing_files(data_dir, dataset):
    """Paths that data_dir lacks of the split files and of `dataset`'s own layout (captions are optional)."""
    need = [path for split in SPLITS for path in split_files(data_dir, split)] + dataset.layout_files(data_dir)
    return [p for p in need if not (os.path.isdir(p) if p.endswith(os.sep) else os.path.isfile(p))]


# ---------------------------------------------------------------------------
# What training writes into a results folder (read by stage2.py, generate.py, evaluate.py and the API)
# ---------------------------------------------------------------------------
def config_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_config.json")


def weights_path(results_dir, stage, net):
    """net is 'gen' or 'dis': results/stage1_gen.weights.h5 etc."""
    return os.path.join(results_dir, f"stage{stage}_{net}.weights.h5")


def generator_files(results_dir, stage):
    """(config, generator weights) of a stage: what a trained generator is."""
    return config_path(results_dir, stage), weights_path(results_dir, stage, "gen")


def checkpoint_dir(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_ckpt")


def samples_dir(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}")


def history_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_history.json")


def loss_plot_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_losses.png")


def stage_log_dir(log_dir, stage):
    return os.path.join(log_dir, f"stage{stage}")


def generated_extras(out):
    """What generate.py writes into OUT beside its {index:05d}_{sample}.png images: the grid, for captions the sheet
    of captions under their images and the captions' text, and with --save-stage1 the 64x64 inputs' folder."""
    return dict(
        grid=os.path.join(out, "grid.png"),
        sheet=os.path.join(out, "captions.png"),
        captions=os.path.join(out, "captions.txt"),
        stage1=os.path.join(out, "stage1"),
    )


def card_path(results_dir):
    """The metric card that `evaluate.py card` writes (its images in the folder of the same name beside it)."""
    return os.path.join(results_dir, "card.md")


def text_encoder_weights_path(results_dir):
    return os.path.join(results_dir, "text_encoder.weights.h5")


def text_encoder_config_path(results_dir):
    return os.path.join(results_dir, "text_encoder_config.json")


def text_encoder_files(results_dir):
    """(config, weights) of a trained caption encoder."""
    return text_encoder_config_path(results_dir), text_encoder_weights_path(results_dir)


def text_encoder_checkpoint_dir(results_dir):
    return os.path.join(results_dir, "text_encoder_ckpt")


def text_encoder_log_dir(log_dir):
    return os.path.join(log_dir, "text_encoder")
