"""Where files live: the dataset layout that StackGAN reads (CUB-200-2011, StackGAN's birds.zip, Reed's captions)
and the files that training writes into a results folder. Every module asks here; no path is spelled elsewhere.

    data/birds/train/filenames.pickle                 list of 'class/image' names
    data/birds/train/class_info.pickle                class ids, same order
    data/birds/train/char-CNN-RNN-embeddings.pickle   (N, 10, 1024) float32
    data/birds/test/...                               the same three files
    data/birds/CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<image>.jpg
    data/birds/text/<class>/<image>.txt               ten captions per image (optional: the caption encoder)
    data/birds/attributes.txt                         '1 has_primary_color::red': attribute ids and names, and
    data/birds/CUB_200_2011/attributes/image_attribute_labels.txt   '<image id> <attribute id> <present> ...'
                                                      (CUB's archive; written for the synthetic birds, read by
                                                      their attribute metric only)
    data/birds/cache/                                 decoded crops, written on first use
"""

import os
from typing import NamedTuple

DATA_DIR = "data/birds"
SYNTHETIC_DATA_DIR = "data/synthetic"
SPLITS = ("train", "test")
FILENAMES_FILE = "filenames.pickle"
CLASS_INFO_FILE = "class_info.pickle"
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
CUB_DIR = "CUB_200_2011"
CACHE_DIR = "cache"
TEXT_DIR = "text"
SYNTHETIC_MARKER = "SYNTHETIC.json"
ATTRIBUTE_NAMES_FILE = "attributes.txt"


class SplitFiles(NamedTuple):
    """The three pickles of one split."""

    filenames: str
    class_info: str
    embeddings: str


def split_files(data_dir, split):
    directory = os.path.join(data_dir, split)
    return SplitFiles(*(os.path.join(directory, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE)))


def cub_dir(data_dir):
    return os.path.join(data_dir, CUB_DIR)


def cub_tables(data_dir):
    """(images.txt, bounding_boxes.txt) of the CUB folder."""
    return tuple(os.path.join(cub_dir(data_dir), f) for f in ("images.txt", "bounding_boxes.txt"))


def attribute_files(data_dir):
    """(attributes.txt, image_attribute_labels.txt): the attribute names (beside CUB_200_2011/, as CUB's archive
    has them) and every image's labels."""
    return (
        os.path.join(data_dir, ATTRIBUTE_NAMES_FILE),
        os.path.join(cub_dir(data_dir), "attributes", "image_attribute_labels.txt"),
    )


def images_dir(data_dir):
    return os.path.join(cub_dir(data_dir), "images")


def image_path(data_dir, name):
    return os.path.join(images_dir(data_dir), name + ".jpg")


def cache_dir(data_dir):
    return os.path.join(data_dir, CACHE_DIR)


def text_dir(data_dir):
    return os.path.join(data_dir, TEXT_DIR)


def caption_file(text_folder, name):
    """<text folder>/<class>/<image>.txt for a filenames.pickle name."""
    return os.path.join(text_folder, name.strip() + ".txt")


def synthetic_marker(data_dir):
    return os.path.join(data_dir, SYNTHETIC_MARKER)


def is_synthetic(data_dir):
    """True if data_dir holds a set written by `python data.py synthetic`."""
    return os.path.isfile(synthetic_marker(data_dir))


def missing_files(data_dir):
    """Paths of the layout above that data_dir lacks (captions are optional)."""
    need = [path for split in SPLITS for path in split_files(data_dir, split)] + list(cub_tables(data_dir))
    missing = [p for p in need if not os.path.isfile(p)]
    if not os.path.isdir(images_dir(data_dir)):
        missing.append(images_dir(data_dir) + os.sep)
    return missing


CAPTIONS_DRIVE_ID = "1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ"  # AttnGAN's birds metadata archive, holds birds/text/


def data_hint(data_dir=None):
    """How to get a dataset into data_dir, for messages about missing files."""
    d = data_dir if data_dir is not None else DATA_DIR
    return (
        f"get the data with `python data.py download --data-dir {d}` (or `python data.py prepare "
        f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {d}` from local files, "
        f"or `python data.py synthetic --out {d}` for the synthetic birds)"
    )


def captions_hint(data_dir=None):
    """How to get the captions into data_dir."""
    d = data_dir if data_dir is not None else DATA_DIR
    return (
        f"get the captions with `python data.py prepare --captions-archive birds.zip --data-dir {d}` (AttnGAN's "
        f"birds.zip, https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}, or Reed's CUB archive with text_c10/), "
        f"or `python data.py synthetic --out {d}` for the synthetic birds"
    )


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
