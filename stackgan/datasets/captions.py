"""Captions: Reed's text_c10, one file of (usually 10) lines per image (where: the dataset's caption_path), aligned
with filenames.pickle.
"""

import os
import warnings
from typing import NamedTuple

import numpy as np

from stackgan.cli import UserError
from stackgan.datasets import cache, dataset_of, loaders
from stackgan.text.encoder import clean_caption


def read_caption_lines(path, strict=False):
    """[(line number, caption)] of one text file, in order: UTF-8 (a byte-order mark is ignored), lines ending in
    LF, CRLF or CR, each cleaned by clean_caption; blank lines are skipped, so caption k is the k-th non-blank line
    (as StackGAN's readCaptions and AttnGAN's load_captions count them). Bytes that are not UTF-8 become U+FFFD (the
    datasets' own files hold some), or with strict (a file of the user's) a UserError naming where they are."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8", errors="strict" if strict else "replace").lstrip("\ufeff")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path} is not UTF-8 text (byte offset {err.start} is {raw[err.start : err.start + 1]!r}); "
            f"save it as UTF-8 with one caption per line"
        ) from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [(number, caption) for number, caption in enumerate(map(clean_caption, lines), 1) if caption]


def read_captions(path):
    """The captions of one caption file of a dataset, in order (read_caption_lines)."""
    return [caption for _, caption in read_caption_lines(path)]


def load_captions(data_dir, filenames, class_ids, dataset=None):
    """Captions aligned with filenames: a list (one per name) of lists of strings, read by read_captions from each
    image's caption file. An image without a caption file gets [] (one warning counts them)."""
    dataset = dataset_of(data_dir, dataset)
    text_dir = dataset.text_dir(data_dir)
    if not os.path.isdir(text_dir):
        raise UserError(f"caption folder {text_dir} not found; {dataset.captions_hint(data_dir)}")
    captions, missing = [], []
    for name, class_id in zip(filenames, class_ids):
        path = dataset.caption_path(data_dir, name, int(class_id))
        try:
            captions.append(read_captions(path))
        except FileNotFoundError:
            missing.append(path)
            captions.append([])
        except OSError as err:
            raise UserError(f"caption file {path} cannot be read ({err}); {dataset.captions_hint(data_dir)}") from None
    if missing:
        warnings.warn(
            f"{text_dir}: no caption file for {len(missing)} of {len(filenames)} images (e.g. {missing[0]}); "
            f"they have no captions",
            loaders.DataWarning,
            stacklevel=2,
        )
    return captions


class CaptionSplit(NamedTuple):
    """One split's text, rows aligned with filenames.pickle: filenames list[str], class_ids int64 (N,),
    embeddings float32 (N, 10, 1024), captions list (N) of lists of str."""

    filenames: list
    class_ids: np.ndarray
    embeddings: np.ndarray
    captions: list


def load_caption_split(data_dir, split, dataset=None):
    """The 'train' or 'test' split's names, class ids, embeddings and captions, without any image."""
    dataset = dataset_of(data_dir, dataset)
    filenames, class_ids, embeddings = cache.load_split_lists(data_dir, split)
    captions = load_captions(data_dir, filenames, class_ids, dataset)
    if not any(captions):
        raise UserError(
            f"{dataset.text_dir(data_dir)} holds no caption file of the {split} split; {dataset.captions_hint(data_dir)}"
        )
    return CaptionSplit(filenames, class_ids, embeddings, captions)
