"""CUB-200-2011 birds with char-CNN-RNN text embeddings for StackGAN, and a synthetic stand-in.

The chapter's loaders (load_class_ids, load_filenames, load_embeddings, load_bounding_boxes, get_img,
load_dataset) keep their names and meaning, with these fixes:
  * load_bounding_boxes returns every row as floats (the chapter pre-made only two keys and cast to int);
  * load_dataset reads every filename (the chapter stopped at [:500]) and keeps all ten caption embeddings
    per image (the chapter drew one at load time and kept it forever); make_dataset draws one per sample
    and step, as the original StackGAN does;
  * missing boxes/images and unreadable images are skipped with a warning that counts them.

On top of that: a preprocessing cache (load_split), a fast tf.data input pipeline with random crops,
flips, re-drawn captions and wrong images of a different class (make_dataset), a deterministic synthetic
bird set in the real layout plus a colour metric for it, and a command line:

    python data.py download  [--data-dir data/birds]
    python data.py prepare   --cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip [--data-dir ...]
    python data.py check     [--data-dir data/birds]
    python data.py synthetic [--out data/synthetic] [--n-train 800 --n-test 160 --seed 0]
"""

import argparse
import colorsys
import functools
import hashlib
import json
import os
import pickle
import shutil
import struct
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

import cli
from cli import UserError
from sampling import write_json_atomic

DEFAULT_DATA_DIR = "data/birds"
SYNTHETIC_DATA_DIR = "data/synthetic"
SPLITS = ("train", "test")
FILENAMES_FILE = "filenames.pickle"
CLASS_INFO_FILE = "class_info.pickle"
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
CUB_DIR = "CUB_200_2011"
SYNTHETIC_MARKER = "SYNTHETIC.json"

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
EMBEDDINGS_DRIVE_ID = "0B3y_msrWZaXLT1BZdVdycDY5TEE"

CACHE_VERSION = 1


class DataWarning(UserWarning):
    """Something in the data was skipped (missing box, missing or unreadable image)."""


def _fix_hint(data_dir=None):
    d = data_dir if data_dir is not None else DEFAULT_DATA_DIR
    return (
        f"get the data with `python data.py download --data-dir {d}` (or `python data.py prepare "
        f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {d}` from local files, "
        f"or `python data.py synthetic --out {d}` for the synthetic birds)"
    )


def _require_file(path, data_dir=None):
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; {_fix_hint(data_dir)}")


# ---------------------------------------------------------------------------
# The chapter's loaders
# ---------------------------------------------------------------------------
def _load_pickle(path, what):
    """A Python-2 pickle (needs encoding='latin1'), with one-line errors."""
    _require_file(path)
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises UnpicklingError, EOFError, ValueError, ...
        raise UserError(
            f"{path} is not a readable {what} pickle ({type(err).__name__}: {err}); download or prepare the data again"
        ) from None


def load_class_ids(class_info_file_path):
    """Class ids (ints, one per filename) from class_info.pickle, a Python-2 pickle."""
    obj = _load_pickle(class_info_file_path, "class_info")
    try:
        return [int(c) for c in obj]
    except (TypeError, ValueError):
        raise UserError(
            f"{class_info_file_path} does not hold a list of class ids; download or prepare the data again"
        ) from None


def load_filenames(filenames_file_path):
    """Image names such as '002.Laysan_Albatross/Laysan_Albatross_0002_1027' from filenames.pickle."""
    obj = _load_pickle(filenames_file_path, "filenames")
    if not isinstance(obj, (list, tuple)) or not all(isinstance(n, str) for n in obj):
        raise UserError(f"{filenames_file_path} does not hold a list of file names; download or prepare the data again")
    return list(obj)


def load_embeddings(embeddings_file_path):
    """char-CNN-RNN embeddings as float32 (N, 10, 1024); the pickle holds an array or a list of (10, 1024) arrays."""
    obj = _load_pickle(embeddings_file_path, "embeddings")
    try:
        if isinstance(obj, (list, tuple)):
            shapes = {np.shape(a) for a in obj}
            if len(shapes) > 1:
                raise ValueError(f"the arrays have different shapes {sorted(shapes)[:3]}")
            emb = np.stack([np.asarray(a, dtype=np.float32) for a in obj]) if obj else np.zeros((0, 10, 1024))
        else:
            emb = np.asarray(obj, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"{embeddings_file_path} does not hold embeddings ({err}); download or prepare the data again"
        ) from None
    if emb.ndim == 2:  # one embedding per image: treat as one caption
        emb = emb[:, None, :]
    if emb.ndim != 3:
        raise UserError(
            f"{embeddings_file_path} holds embeddings of shape {emb.shape}, expected "
            f"(images, captions, dims) such as (N, 10, 1024); download or prepare the data again"
        )
    return np.ascontiguousarray(emb, dtype=np.float32)


def _read_table(path, n_values, data_dir=None):
    """'id v1 v2 ...' lines -> {id: [v1, ...]} (strings)."""
    _require_file(path, data_dir)
    rows = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != n_values + 1:
                raise UserError(
                    f"{path} line {number} has {len(parts)} fields, expected {n_values + 1} "
                    f"('{line.strip()[:60]}'); download or prepare the data again"
                )
            rows[parts[0]] = parts[1:]
    return rows


def load_bounding_boxes(dataset_dir):
    """{'class/name' (no .jpg): [x, y, w, h] floats} for every image of CUB_200_2011 (images.txt + bounding_boxes.txt)."""
    data_dir = os.path.dirname(os.path.normpath(dataset_dir))
    names = _read_table(os.path.join(dataset_dir, "images.txt"), 1, data_dir)
    boxes_path = os.path.join(dataset_dir, "bounding_boxes.txt")
    boxes = _read_table(boxes_path, 4, data_dir)
    result = {}
    for image_id, (name,) in names.items():
        box = boxes.get(image_id)
        if box is None:
            continue  # an image without a box: load_dataset reports it when the image is used
        try:
            values = [float(v) for v in box]
        except ValueError:
            raise UserError(
                f"{boxes_path}: the box of image {image_id} is not numeric ({' '.join(box)}); "
                f"download or prepare the data again"
            ) from None
        result[os.path.splitext(name)[0]] = values
    return result


def crop_box(bbox, width, height):
    """The chapter's (and StackGAN's) crop: a square of side 2R, R = int(0.75*max(w, h)), around the
    box centre, clipped to the image. Returns (x1, y1, x2, y2) for PIL's crop."""
    x, y, w, h = (float(v) for v in bbox)
    r = int(max(w, h) * 0.75)
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def _size_wh(image_size):
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    w, h = image_size
    return int(w), int(h)


def get_img(img_path, bbox, image_size):
    """Load an image as RGB (grayscale, CMYK, palette... converted), crop it around `bbox` as the chapter
    does, and resize it (bilinear) to image_size (an int or (width, height))."""
    with Image.open(img_path) as im:
        img = im.convert("RGB")
    if bbox is not None:
        x1, y1, x2, y2 = crop_box(bbox, *img.size)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"the bounding box {list(bbox)} lies outside the {img.size[0]}x{img.size[1]} image")
        img = img.crop((x1, y1, x2, y2))
    return img.resize(_size_wh(image_size), Image.BILINEAR)


class _Skipped:
    """Why images were left out, for one warning that counts them."""

    REASONS = (("no_box", "without a bounding box"), ("no_image", "missing"), ("unreadable", "unreadable"))

    def __init__(self, lists=None):
        self.lists = {k: list((lists or {}).get(k, [])) for k, _ in self.REASONS}

    def add(self, reason, name, detail=""):
        self.lists[reason].append(f"{name}{detail}")

    def count(self):
        return sum(len(v) for v in self.lists.values())

    def message(self, what, total):
        parts = [f"{len(self.lists[k])} {text}" for k, text in self.REASONS if self.lists[k]]
        examples = [v[0] for k, _ in self.REASONS for v in [self.lists[k]] if v][:3]
        return f"{what}: skipped {self.count()} of {total} images ({', '.join(parts)}; e.g. {'; '.join(examples)})"

    def warn(self, what, total):
        if self.count():
            warnings.warn(self.message(what, total), DataWarning, stacklevel=3)


def _check_counts(filenames, class_ids, embeddings, paths):
    f_path, c_path, e_path = paths
    if len(class_ids) != len(filenames):
        raise UserError(
            f"{c_path} has {len(class_ids)} class ids but {f_path} has {len(filenames)} filenames; "
            f"the files belong to different datasets: download or prepare the data again"
        )
    if len(embeddings) != len(filenames):
        raise UserError(
            f"{e_path} has {len(embeddings)} embeddings but {f_path} has {len(filenames)} filenames; "
            f"the files belong to different datasets: download or prepare the data again"
        )
    if len(filenames) == 0:
        raise UserError(f"{f_path} lists no images; download or prepare the data again")


def _decode_one(args):
    index, path, bbox, size = args
    try:
        return index, np.asarray(get_img(path, bbox, size), dtype=np.uint8), None
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
        return index, None, f" ({type(err).__name__}: {str(err)[:80]})"


def _decode_images(filenames, boxes, cub_dir, image_size, out, skipped, desc):
    """Decode, crop and resize every usable image into out[0], out[1], ... (kept ones, in order).
    Returns the kept indices into `filenames`."""
    images_dir = os.path.join(cub_dir, "images")
    jobs = []
    for index, name in enumerate(filenames):
        bbox = boxes.get(name)
        if bbox is None:
            skipped.add("no_box", name)
            continue
        path = os.path.join(images_dir, name + ".jpg")
        if not os.path.isfile(path):
            skipped.add("no_image", path)
            continue
        jobs.append((index, path, bbox, image_size))
    kept = []
    from tqdm import tqdm

    workers = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(jobs), desc=desc, unit="img", leave=False, disable=None if len(jobs) >= 500 else True) as bar,
    ):
        for start in range(0, len(jobs), 256):  # PIL releases the GIL while decoding; chunks bound the memory
            for index, img, error in pool.map(_decode_one, jobs[start : start + 256]):
                if img is None:
                    skipped.add("unreadable", os.path.join(images_dir, filenames[index] + ".jpg"), error)
                else:
                    out[len(kept)] = img
                    kept.append(index)
                bar.update(1)
    return np.asarray(kept, dtype=np.int64)


def load_dataset(filenames_file_path, class_info_file_path, cub_dataset_dir, embeddings_file_path, image_size):
    """The chapter's loader, fixed: every filename, all captions. Returns X uint8 (N, H, W, 3),
    y int64 (N,), embeddings float32 (N, 10, 1024), skipped images removed from all three (with a warning)."""
    filenames = load_filenames(filenames_file_path)
    class_ids = load_class_ids(class_info_file_path)
    all_embeddings = load_embeddings(embeddings_file_path)
    _check_counts(
        filenames, class_ids, all_embeddings, (filenames_file_path, class_info_file_path, embeddings_file_path)
    )
    bounding_boxes = load_bounding_boxes(cub_dataset_dir)
    w, h = _size_wh(image_size)
    X = np.empty((len(filenames), h, w, 3), dtype=np.uint8)
    skipped = _Skipped()
    kept = _decode_images(
        filenames,
        bounding_boxes,
        cub_dataset_dir,
        (w, h),
        X,
        skipped,
        desc=f"decoding {os.path.basename(os.path.dirname(filenames_file_path))}",
    )
    _no_images_left(kept, skipped, filenames_file_path, len(filenames))
    skipped.warn(filenames_file_path, len(filenames))
    X = X[: len(kept)] if len(kept) == len(filenames) else X[: len(kept)].copy()
    y = np.asarray(class_ids, dtype=np.int64)[kept]
    return X, y, all_embeddings[kept]


def _no_images_left(kept, skipped, what, total, data_dir=None):
    if len(kept) == 0:
        raise UserError(f"no usable image: {skipped.message(what, total)}; {_fix_hint(data_dir)}")


# ---------------------------------------------------------------------------
# Splits with a preprocessing cache
# ---------------------------------------------------------------------------
class Split(NamedTuple):
    """One split, rows aligned: images uint8 (N, S, S, 3), class_ids int64 (N,), embeddings float32
    (N, 10, 1024), filenames list[str]. images and embeddings may be read-only memmaps of the cache."""

    images: np.ndarray
    class_ids: np.ndarray
    embeddings: np.ndarray
    filenames: list


def stored_size(image_size, augment):
    """Size images are stored at: the original StackGAN's 76 for 64 and 304 for 256 (size*76/64) when
    random crops are used (augment), else image_size itself."""
    image_size = int(image_size)
    return image_size * 76 // 64 if augment else image_size


def _file_digest(path, algorithm="sha1"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _cache_paths(cache_dir, split, size, key):
    stem = os.path.join(cache_dir, f"{split}_{size}_{key}")
    return stem + ".cache.npy", stem + ".json"


def _remove_stale(cache_dir, prefix, keep):
    """Delete older cache files of the same split and size (a changed file list or data)."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and os.path.join(cache_dir, name) not in keep and not name.startswith(".tmp"):
            _remove(os.path.join(cache_dir, name))


def _build_image_cache(filenames, boxes, cub_dir, size, npy_path, skipped, desc):
    """Decode into a temporary memmapped .npy next to the final one, compact it if images were skipped,
    and move it into place atomically. Returns the kept indices."""
    n = len(filenames)
    directory = os.path.dirname(npy_path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npy")
    os.close(fd)
    tmp2 = None
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        kept = _decode_images(filenames, boxes, cub_dir, (size, size), out, skipped, desc)
        if 0 < len(kept) < n:  # compact: copy the kept rows into a file of the right shape
            fd, tmp2 = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npy")
            os.close(fd)
            small = np.lib.format.open_memmap(tmp2, mode="w+", dtype=np.uint8, shape=(len(kept), size, size, 3))
            for start in range(0, len(kept), 512):
                stop = min(start + 512, len(kept))
                small[start:stop] = out[start:stop]
            small.flush()
            del small, out
            _remove(tmp)
            tmp, tmp2 = tmp2, None
        else:
            out.flush()
            del out
        if len(kept):
            os.replace(tmp, npy_path)
        return kept
    finally:
        _remove(tmp)
        if tmp2:
            _remove(tmp2)


def load_split(data_dir, split, image_size):
    """Load the 'train' or 'test' split of data_dir with images cropped and resized to image_size
    (the stored size: use stored_size(size, augment) for make_dataset). The decoded images are cached in
    <data_dir>/cache/<split>_<size>_<key>.cache.npy and memory-mapped on later loads; the key hashes the
    file list, the size, images.txt and bounding_boxes.txt, so a change rebuilds it. Delete the cache
    folder to force a rebuild after replacing images in place."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        raise UserError(f"image size {image_size!r} is not an integer") from None
    if size < 1:
        raise UserError(f"image size {size} must be positive")
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {_fix_hint(data_dir)}")
    split_dir = os.path.join(data_dir, split)
    paths = tuple(os.path.join(split_dir, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE))
    cub_dir = os.path.join(data_dir, CUB_DIR)
    for p in paths + (os.path.join(cub_dir, "images.txt"), os.path.join(cub_dir, "bounding_boxes.txt")):
        _require_file(p, data_dir)
    if not os.path.isdir(os.path.join(cub_dir, "images")):
        raise UserError(f"{os.path.join(cub_dir, 'images')} not found; {_fix_hint(data_dir)}")

    filenames = load_filenames(paths[0])
    class_ids = load_class_ids(paths[1])
    embeddings = _load_embeddings_cached(paths[2], data_dir, split)
    _check_counts(filenames, class_ids, embeddings, paths)
    class_ids = np.asarray(class_ids, dtype=np.int64)

    key_src = json.dumps(
        [
            CACHE_VERSION,
            split,
            size,
            filenames,
            _file_digest(os.path.join(cub_dir, "images.txt")),
            _file_digest(os.path.join(cub_dir, "bounding_boxes.txt")),
        ]
    )
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    cache_dir = os.path.join(data_dir, "cache")
    npy_path, meta_path = _cache_paths(cache_dir, split, size, key)
    what = f"{split_dir} at {size}x{size}"

    meta = _read_cache(npy_path, meta_path, len(filenames), size)
    if meta is not None:
        images, kept, skipped = meta
        what += f" (as cached in {cache_dir}; delete it to read the images again)"
    else:
        boxes = load_bounding_boxes(cub_dir)
        skipped = _Skipped()
        try:
            os.makedirs(cache_dir, exist_ok=True)
            kept = _build_image_cache(filenames, boxes, cub_dir, size, npy_path, skipped, f"caching {split} {size}px")
            _no_images_left(kept, skipped, what, len(filenames), data_dir)
            write_json_atomic(
                meta_path,
                {
                    "version": CACHE_VERSION,
                    "n_total": len(filenames),
                    "size": size,
                    "kept": kept.tolist(),
                    "skipped": skipped.lists,
                },
            )
            _remove_stale(cache_dir, f"{split}_{size}_", {npy_path, meta_path})
            images = np.load(npy_path, mmap_mode="r")
        except OSError as err:  # read-only data folder, full disk: work from memory
            warnings.warn(
                f"could not write the image cache in {cache_dir} ({err}); decoding without a cache",
                DataWarning,
                stacklevel=2,
            )
            skipped = _Skipped()
            images = np.empty((len(filenames), size, size, 3), dtype=np.uint8)
            kept = _decode_images(filenames, boxes, cub_dir, (size, size), images, skipped, f"decoding {split}")
            _no_images_left(kept, skipped, what, len(filenames), data_dir)
            images = images[: len(kept)]
    skipped.warn(what, len(filenames))
    if len(kept) == len(filenames):
        return Split(images, class_ids, embeddings, filenames)
    return Split(images, class_ids[kept], embeddings[kept], [filenames[i] for i in kept])


def _read_cache(npy_path, meta_path, n_total, size):
    """(memmapped images, kept indices, skipped) from a complete cache entry, or None."""
    if not (os.path.isfile(npy_path) and os.path.isfile(meta_path)):
        return None
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        kept = np.asarray(meta["kept"], dtype=np.int64)
        images = np.load(npy_path, mmap_mode="r")
        if (
            meta.get("version") != CACHE_VERSION
            or meta.get("n_total") != n_total
            or images.shape != (len(kept), size, size, 3)
            or images.dtype != np.uint8
            or (len(kept) and (kept.min() < 0 or kept.max() >= n_total))
        ):
            return None
        return images, kept, _Skipped(meta.get("skipped"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged entry: rebuild


def _load_embeddings_cached(path, data_dir, split):
    """load_embeddings, plus a plain .npy copy in the cache folder (keyed by the pickle's size and mtime),
    memory-mapped on later loads instead of unpickling a Python-2 list of arrays every time."""
    cache_dir = os.path.join(data_dir, "cache")
    key = hashlib.sha1(json.dumps([CACHE_VERSION, _stat_key(path)]).encode()).hexdigest()[:16]
    npy_path = os.path.join(cache_dir, f"{split}_embeddings_{key}.cache.npy")
    if os.path.isfile(npy_path):
        try:
            emb = np.load(npy_path, mmap_mode="r")
            if emb.dtype == np.float32 and emb.ndim == 3:
                return emb
        except (OSError, ValueError):
            pass
    emb = load_embeddings(path)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, emb)
            os.replace(tmp, npy_path)
        finally:
            _remove(tmp)
        _remove_stale(cache_dir, f"{split}_embeddings_", {npy_path})
    except OSError:
        pass  # read-only folder: the pickle is read every time
    return emb


# ---------------------------------------------------------------------------
# Input pipeline
# ---------------------------------------------------------------------------
def make_dataset(split, batch_size, image_size, augment=True, seed=None, shuffle=True):
    """A tf.data.Dataset of (images, embeddings, wrong_images) batches for one epoch per iteration.

    images: float32 (B, S, S, 3) in [-1, 1]; embeddings: float32 (B, D), one of each sample's captions drawn
    at random every step; wrong_images: float32 (B, S, S, 3), per sample a real image of a different class.
    Batches have exactly batch_size rows (the remainder is dropped). Every new iteration reshuffles; with a
    seed the sequence of epochs is the same in every run. augment=True: split.images are larger than
    S (stored_size) and each image (wrong ones too) is randomly cropped to S and flipped half the time;
    augment=False: split.images must already be S x S.
    """
    import tensorflow as tf

    images, class_ids, embeddings = split.images, np.asarray(split.class_ids), split.embeddings
    n = len(images)
    size = int(image_size)
    batch_size = int(batch_size)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise UserError(f"split images have shape {images.shape}; expected (N, size, size, 3)")
    stored = images.shape[1]
    if augment and stored < size:
        raise UserError(
            f"images are stored at {stored}x{stored}, smaller than the {size}x{size} crops; "
            f"load the split with load_split(..., stored_size({size}, True)) = {stored_size(size, True)}"
        )
    if not augment and stored != size:
        raise UserError(
            f"images are stored at {stored}x{stored} but augment=False needs {size}x{size}; "
            f"load the split with load_split(..., {size})"
        )
    if len(class_ids) != n or len(embeddings) != n:
        raise UserError(f"split rows disagree: {n} images, {len(class_ids)} class ids, {len(embeddings)} embeddings")
    if batch_size < 1 or batch_size > n:
        raise UserError(f"batch size {batch_size} must be between 1 and the {n} images of the split")
    classes, class_index, counts = np.unique(class_ids, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise UserError(
            f"the split has a single class ({classes[0] if len(classes) else 'none'}): "
            f"wrong images must come from a different class"
        )
    order = np.argsort(class_index, kind="stable")  # sample indices grouped by class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_batches = n // batch_size
    n_captions, dim = embeddings.shape[1], embeddings.shape[2]
    epochs_started = [0]

    def crop_flip(idx, rng):
        if not augment:
            return np.asarray(images[idx])
        batch = images[idx]  # numpy gather (also from a memmap)
        out = np.empty((len(idx), size, size, 3), dtype=np.uint8)
        oy = rng.integers(0, stored - size + 1, len(idx))
        ox = rng.integers(0, stored - size + 1, len(idx))
        flip = rng.random(len(idx)) < 0.5
        for i in range(len(idx)):
            crop = batch[i, oy[i] : oy[i] + size, ox[i] : ox[i] + size]
            out[i] = crop[:, ::-1] if flip[i] else crop
        return out

    def generate():
        epoch = epochs_started[0]
        epochs_started[0] += 1
        rng = np.random.default_rng(None if seed is None else [int(seed), epoch])
        perm = rng.permutation(n) if shuffle else np.arange(n)
        for b in range(n_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            cls = class_index[idx]
            r = rng.integers(0, n - counts[cls])  # a position among the samples of the other classes
            wrong = order[np.where(r < starts[cls], r, r + counts[cls])]
            caption = rng.integers(0, n_captions, len(idx))
            emb = np.asarray(embeddings[idx, caption], dtype=np.float32)
            yield crop_flip(idx, rng), emb, crop_flip(wrong, rng)

    image_spec = tf.TensorSpec((batch_size, size, size, 3), tf.uint8)
    ds = tf.data.Dataset.from_generator(
        generate, output_signature=(image_spec, tf.TensorSpec((batch_size, dim), tf.float32), image_spec)
    )
    ds = ds.apply(tf.data.experimental.assert_cardinality(n_batches))

    def to_float(real, emb, wrong):
        scale = tf.constant(1 / 127.5, tf.float32)
        return tf.cast(real, tf.float32) * scale - 1.0, emb, tf.cast(wrong, tf.float32) * scale - 1.0

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Synthetic birds
# ---------------------------------------------------------------------------
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
EMBEDDING_DIM = 1024
N_CAPTIONS = 10
_EMBEDDING_SCALE = 6.0
_CODE_SEED = 20170823  # fixed: the same text code for every synthetic set, whatever --seed


@functools.cache
def _code_basis():
    """Unit 1024-d directions: row 0 'a bird', rows 1..8 the body colours, then the wing shades."""
    g = np.random.default_rng(_CODE_SEED).standard_normal((1 + len(PALETTE) + len(WING_SHADES), EMBEDDING_DIM))
    return (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


@functools.cache
def _palette_hues():
    return np.array([colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] for _, rgb in PALETTE], dtype=np.float32)


def _synthetic_embeddings(rng, colour, wing):
    """Ten 'captions' of one bird: a fixed projection of its attributes, each caption weighting them
    differently (some barely mention the wings), plus per-image and per-caption noise."""
    basis = _code_basis()
    w_body = rng.uniform(0.8, 1.2, (N_CAPTIONS, 1))
    w_wing = rng.uniform(0.0, 1.0, (N_CAPTIONS, 1))
    code = basis[0] + w_body * basis[1 + colour] + w_wing * basis[1 + len(PALETTE) + wing]
    noise = rng.normal(0, 0.03, EMBEDDING_DIM) + rng.normal(0, 0.05, (N_CAPTIONS, EMBEDDING_DIM))
    return (_EMBEDDING_SCALE * code + noise).astype(np.float32)


def embedding_colours(embeddings):
    """Palette index of the body colour that each synthetic embedding encodes: (N, 1024) or (N, 10, 1024)
    (captions averaged) -> int (N,). Meaningless for real CUB embeddings."""
    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim == 3:
        e = e.mean(axis=1)
    if e.ndim != 2 or e.shape[-1] != EMBEDDING_DIM:
        raise UserError(
            f"embeddings of shape {e.shape}: expected (N, {EMBEDDING_DIM}) or (N, captions, {EMBEDDING_DIM})"
        )
    return np.argmax(e @ _code_basis()[1 : 1 + len(PALETTE)].T, axis=1).astype(np.int64)


def image_colours(images, min_saturation=0.45, min_value=0.25, min_fraction=0.01):
    """Palette index of the bird's body colour in each image (N, H, W, 3), uint8 in [0, 255] or float in
    [-1, 1], any size: among the clearly coloured pixels (backgrounds, wings and beaks are greyish), the
    palette hue that most of them are nearest to, weighted by chroma. -1 where too few pixels are coloured
    (e.g. a grayscale image); -1 never matches an embedding."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise UserError(f"images of shape {x.shape}: expected (N, height, width, 3)")
    step = max(1, int(np.ceil(max(x.shape[1], x.shape[2]) / 96)))  # enough pixels, bounded cost
    hues = _palette_hues()
    result = np.full(len(x), -1, dtype=np.int64)
    for start in range(0, len(x), 128):
        chunk = x[start : start + 128, ::step, ::step]
        if np.issubdtype(chunk.dtype, np.integer):
            f = chunk.astype(np.float32) / 255.0
        else:
            f = (np.clip(chunk.astype(np.float32), -1.0, 1.0) + 1.0) / 2.0
        r, g, b = f[..., 0], f[..., 1], f[..., 2]
        mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
        chroma = mx - mn
        safe = np.where(chroma > 0, chroma, 1.0)
        hue = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
        hue = hue / 6.0
        coloured = (chroma >= min_saturation * np.maximum(mx, 1e-6)) & (mx >= min_value)
        d = np.abs(hue[..., None] - hues)
        nearest = np.argmin(np.minimum(d, 1.0 - d), axis=-1)
        weights = np.where(coloured, chroma, 0.0)
        owner = np.arange(len(chunk))[:, None, None] * len(hues) + nearest
        votes = np.bincount(owner.ravel(), weights.ravel(), minlength=len(chunk) * len(hues))
        votes = votes.reshape(len(chunk), len(hues))
        enough = coloured.reshape(len(chunk), -1).mean(axis=1) >= min_fraction
        result[start : start + len(chunk)] = np.where(enough, votes.argmax(axis=1), -1)
    return result


def attribute_accuracy(images, embeddings):
    """Fraction of images whose body colour is the one their (synthetic) embeddings ask for."""
    got, wanted = image_colours(images), embedding_colours(embeddings)
    if len(got) != len(wanted):
        raise UserError(f"{len(got)} images but {len(wanted)} embeddings: pass one embedding per image")
    return float(np.mean(got == wanted)) if len(got) else 0.0


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


# Python-2 pickles, written opcode by opcode (protocol 2, as cPickle wrote the StackGAN files): a Python-2
# `str` is a SHORT_BINSTRING/BINSTRING, which Python 3 decodes as ASCII unless encoding='latin1' is given.
def _p2_str(b):
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def _p2_int(v):
    v = int(v)
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _p2_tuple(items):
    return b"(" + b"".join(items) + b"t"


def _p2_ndarray(a):
    """A numpy array as Python-2 numpy pickled it: _reconstruct + BUILD with the raw bytes as a str."""
    a = np.ascontiguousarray(a)
    order, kind = a.dtype.str[:1], a.dtype.str[1:]
    dtype = (
        b"cnumpy\ndtype\n"
        + _p2_tuple([_p2_str(kind.encode()), _p2_int(0), _p2_int(1)])
        + b"R"
        + _p2_tuple(
            [
                _p2_int(3),
                _p2_str(order.encode()),
                b"N",
                b"N",
                b"N",
                b"J\xff\xff\xff\xff",
                b"J\xff\xff\xff\xff",
                _p2_int(0),
            ]
        )
        + b"b"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _p2_tuple([_p2_int(0)])
        + _p2_str(b"b")
        + b"\x87R"
        + _p2_tuple([_p2_int(1), _p2_tuple([_p2_int(n) for n in a.shape]), dtype, b"\x89", _p2_str(a.tobytes())])
        + b"b"
    )


# A Python-2 str holding a non-ASCII byte, pushed and popped: the list pickles then need latin1 like the
# embeddings pickle (whose array bytes are such strs) and like the real files.
_P2_PREAMBLE = b"\x80\x02" + _p2_str("synthetic birds \xb7 Python 2 pickle".encode("latin1")) + b"0"


def _p2_list(encoded_items):
    out = [_P2_PREAMBLE, b"]"]
    for i in range(0, len(encoded_items), 1000):
        out += [b"("] + encoded_items[i : i + 1000] + [b"e"]
    out.append(b".")
    return b"".join(out)


def _write_bytes_atomic(path, payload):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _class_dir(k):
    return f"{k + 1:03d}.{PALETTE[k][0].capitalize()}_Bird"


def write_synthetic(out_dir, n_train=800, n_test=160, seed=0):
    """Write a deterministic synthetic bird set in the real layout (train/ and test/ pickles written the
    Python-2 way, CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<name>.jpg). The class is
    the body colour; each image's ten embeddings encode body colour and wing shade."""
    n_train, n_test, seed = int(n_train), int(n_test), int(seed)
    if n_train < 2 or n_test < 1:
        raise UserError(f"--n-train {n_train} / --n-test {n_test}: need at least 2 training and 1 test image")
    n_classes = len(PALETTE)
    os.makedirs(out_dir, exist_ok=True)
    _remove(os.path.join(out_dir, SYNTHETIC_MARKER))
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=".synthetic-")
    try:
        images_root = os.path.join(tmp, CUB_DIR, "images")
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
                split_rows["test" if is_test[j] else "train"].append((name, k + 1, _synthetic_embeddings(rng, k, wing)))
        for s in SPLITS:
            rows = split_rows[s]
            d = os.path.join(tmp, s)
            with open(os.path.join(d, FILENAMES_FILE), "wb") as f:
                f.write(_p2_list([_p2_str(name.encode()) for name, _, _ in rows]))
            with open(os.path.join(d, CLASS_INFO_FILE), "wb") as f:
                f.write(_p2_list([_p2_int(c) for _, c, _ in rows]))
            with open(os.path.join(d, EMBEDDINGS_FILE), "wb") as f:
                f.write(_p2_list([_p2_ndarray(e) for _, _, e in rows]))
        cub = os.path.join(tmp, CUB_DIR)
        with open(os.path.join(cub, "images.txt"), "w") as f:
            f.writelines(image_lines)
        with open(os.path.join(cub, "bounding_boxes.txt"), "w") as f:
            f.writelines(box_lines)
        with open(os.path.join(cub, "classes.txt"), "w") as f:
            f.writelines(f"{k + 1} {_class_dir(k)}\n" for k in range(n_classes))
        for name in SPLITS + (CUB_DIR,):
            dest = os.path.join(out_dir, name)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.replace(os.path.join(tmp, name), dest)
        write_json_atomic(
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _layout_missing(data_dir):
    """Paths of the real layout that data_dir lacks."""
    need = [os.path.join(data_dir, s, f) for s in SPLITS for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE)]
    need += [os.path.join(data_dir, CUB_DIR, f) for f in ("images.txt", "bounding_boxes.txt")]
    missing = [p for p in need if not os.path.isfile(p)]
    if not os.path.isdir(os.path.join(data_dir, CUB_DIR, "images")):
        missing.append(os.path.join(data_dir, CUB_DIR, "images") + os.sep)
    return missing


def is_synthetic(data_dir):
    """True if data_dir holds a set written by write_synthetic."""
    return os.path.isfile(os.path.join(data_dir, SYNTHETIC_MARKER))


def ensure_synthetic(out_dir):
    """Write the default synthetic set into out_dir unless it already holds a complete dataset.
    Returns True if it wrote one."""
    if not _layout_missing(out_dir):
        return False
    if not is_synthetic(out_dir) and any(os.path.exists(os.path.join(out_dir, n)) for n in SPLITS + (CUB_DIR,)):
        raise UserError(
            f"{out_dir} holds an incomplete dataset that is not the synthetic one (missing "
            f"{_layout_missing(out_dir)[0]}); run `python data.py check --data-dir {out_dir}` "
            f"or give another folder for the synthetic birds"
        )
    write_synthetic(out_dir)
    return True


# ---------------------------------------------------------------------------
# download / prepare / check
# ---------------------------------------------------------------------------
def _prepare_hint(data_dir):
    return (
        f"download it by hand (CUB_200_2011.tgz: {CUB_URL}; birds.zip: "
        f"https://drive.google.com/uc?id={EMBEDDINGS_DRIVE_ID}) and run `python data.py prepare "
        f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {data_dir}`"
    )


def _download_url(url, dest, md5, data_dir):
    """Download url to dest with a progress bar, checking the MD5; UserError on any failure."""
    import http.client
    import urllib.request

    from tqdm import tqdm

    part = dest + ".part"
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dest)) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError, http.client.HTTPException) as err:
        _remove(part)
        raise UserError(f"could not download {url} ({type(err).__name__}: {err}); {_prepare_hint(data_dir)}") from None
    if md5 and digest.hexdigest() != md5:
        _remove(part)
        raise UserError(
            f"{url} arrived damaged (MD5 {digest.hexdigest()}, expected {md5}); try again or {_prepare_hint(data_dir)}"
        )
    os.replace(part, dest)


def _download_drive(file_id, dest, data_dir):
    import zipfile

    try:
        import gdown
    except ImportError:
        raise UserError(f"gdown is not installed (pip install gdown); or {_prepare_hint(data_dir)}") from None
    part = dest + ".part"
    try:
        result = gdown.download(id=file_id, output=part, quiet=False)
    except Exception as err:  # noqa: BLE001 - gdown raises its own errors for quota pages, network, ...
        _remove(part)
        raise UserError(
            f"could not download Google Drive file {file_id} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); {_prepare_hint(data_dir)}"
        ) from None
    if result is None or not os.path.isfile(part) or not zipfile.is_zipfile(part):
        _remove(part)
        raise UserError(f"Google Drive did not return the embeddings zip (id {file_id}); {_prepare_hint(data_dir)}")
    os.replace(part, dest)


def download(data_dir=DEFAULT_DATA_DIR):
    """Download CUB_200_2011.tgz and birds.zip into <data_dir>/downloads, then prepare()."""
    import zipfile

    downloads = os.path.join(data_dir, "downloads")
    os.makedirs(downloads, exist_ok=True)
    cub = os.path.join(downloads, "CUB_200_2011.tgz")
    if os.path.isfile(cub) and _file_digest(cub, "md5") == CUB_MD5:
        print(f"{cub} already downloaded (MD5 ok)")
    else:
        print(f"Downloading {CUB_URL} (about 1.1 GB)")
        _download_url(CUB_URL, cub, CUB_MD5, data_dir)
    birds = os.path.join(downloads, "birds.zip")
    if os.path.isfile(birds) and zipfile.is_zipfile(birds):
        print(f"{birds} already downloaded")
    else:
        print(f"Downloading the char-CNN-RNN embeddings (Google Drive id {EMBEDDINGS_DRIVE_ID})")
        _download_drive(EMBEDDINGS_DRIVE_ID, birds, data_dir)
    prepare(cub, birds, data_dir)
    print(f"The archives in {downloads} are no longer needed; delete them to free space.")


def _safe_member(name):
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts


def _extract_cub(archive, tmp):
    """Unpack the CUB_200_2011/ part of the archive into tmp; returns the number of entries."""
    import tarfile
    import zlib

    from tqdm import tqdm

    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tqdm(tar, desc="unpacking CUB_200_2011", unit=" files", disable=None):
                name = member.name.removeprefix("./")
                if not (name == CUB_DIR or name.startswith(CUB_DIR + "/")) or not (member.isfile() or member.isdir()):
                    continue  # attributes.txt and the like
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                elif _safe_member(member.name):  # pragma: no cover - Python < 3.11.4
                    tar.extract(member, tmp)
                count += 1
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UserError(
            f"{archive} is not a readable CUB_200_2011.tgz ({type(err).__name__}: {err}); "
            f"download it again ({CUB_URL}, MD5 {CUB_MD5})"
        ) from None
    src = os.path.join(tmp, CUB_DIR)
    missing = [f for f in ("images.txt", "bounding_boxes.txt", "images") if not os.path.exists(os.path.join(src, f))]
    if missing:
        raise UserError(
            f"{archive} has no {CUB_DIR}/{missing[0]} ({count} entries under {CUB_DIR}/): "
            f"it is not CUB_200_2011.tgz; download it from {CUB_URL}"
        )
    return count


def _extract_embeddings(archive, tmp):
    """Copy <anything>/{train,test}/{filenames,class_info,char-CNN-RNN-embeddings}.pickle to tmp/{train,test}/."""
    import zipfile
    import zlib

    drive = f"https://drive.google.com/uc?id={EMBEDDINGS_DRIVE_ID}"
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [
                n
                for n in zf.namelist()
                if not n.startswith("__MACOSX/") and not n.endswith("/") and not os.path.basename(n).startswith("._")
            ]
            chosen, missing = {}, []
            for split in SPLITS:
                for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE):
                    found = [n for n in names if n == f"{split}/{f}" or n.endswith(f"/{split}/{f}")]
                    if found:
                        chosen[(split, f)] = min(found, key=lambda n: (n.count("/"), n))
                    else:
                        missing.append(f"{split}/{f}")
            if missing:
                raise UserError(
                    f"{archive} has no {missing[0]} ({len(missing)} of the 6 pickles missing): "
                    f"it is not StackGAN's birds.zip; download it from {drive}"
                )
            for (split, f), member in chosen.items():
                os.makedirs(os.path.join(tmp, split), exist_ok=True)
                with open(os.path.join(tmp, split, f), "wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)  # checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(
            f"{archive} is not a readable birds.zip ({type(err).__name__}: {err}); download it again from {drive}"
        ) from None


def prepare(cub_archive, embeddings_archive, data_dir=DEFAULT_DATA_DIR):
    """Unpack CUB_200_2011.tgz and birds.zip (local files) into the layout load_split reads, then check().
    Both are unpacked into a temporary folder first: a damaged archive leaves data_dir as it was."""
    for path, what in ((cub_archive, "--cub-archive"), (embeddings_archive, "--embeddings-archive")):
        if not os.path.isfile(path):
            raise UserError(
                f"{what} {path} not found; {_prepare_hint(data_dir)} (or `python data.py download "
                f"--data-dir {data_dir}`)"
            )
    os.makedirs(data_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=data_dir, prefix=".prepare-")
    try:
        _extract_embeddings(embeddings_archive, tmp)
        count = _extract_cub(cub_archive, tmp)
        _remove(os.path.join(data_dir, SYNTHETIC_MARKER))
        for split in SPLITS:
            os.makedirs(os.path.join(data_dir, split), exist_ok=True)
            for f in os.listdir(os.path.join(tmp, split)):
                os.replace(os.path.join(tmp, split, f), os.path.join(data_dir, split, f))
        dest = os.path.join(data_dir, CUB_DIR)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.replace(os.path.join(tmp, CUB_DIR), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Unpacked {count} entries of {cub_archive} and the split pickles of {embeddings_archive} into {data_dir}")
    return check(data_dir)


def check(data_dir=DEFAULT_DATA_DIR):
    """Print a summary of data_dir; UserError naming what is missing and the command that fixes it."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {_fix_hint(data_dir)}")
    missing = _layout_missing(data_dir)
    if missing:
        for p in missing:
            print(f"missing: {p}")
        raise UserError(f"{data_dir} lacks {len(missing)} required file(s), e.g. {missing[0]}; {_fix_hint(data_dir)}")
    cub_dir = os.path.join(data_dir, CUB_DIR)
    boxes = load_bounding_boxes(cub_dir)
    kind = "synthetic birds" if is_synthetic(data_dir) else "CUB-200-2011"
    print(f"{data_dir}: {kind}, {len(boxes)} bounding boxes")
    problems = 0
    for split in SPLITS:
        d = os.path.join(data_dir, split)
        paths = tuple(os.path.join(d, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE))
        filenames, class_ids, emb = load_filenames(paths[0]), load_class_ids(paths[1]), load_embeddings(paths[2])
        _check_counts(filenames, class_ids, emb, paths)
        no_box = [n for n in filenames if n not in boxes]
        no_image = [n for n in filenames if not os.path.isfile(os.path.join(cub_dir, "images", n + ".jpg"))]
        usable = len(set(filenames) - set(no_box) - set(no_image))
        print(
            f"  {split}: {len(filenames)} images, {len(set(class_ids))} classes, embeddings "
            f"{tuple(emb.shape)} {emb.dtype}, {len(no_box)} without bounding box, {len(no_image)} missing images"
        )
        for what, names in (("no bounding box", no_box), ("missing image", no_image)):
            if names:
                print(f"    {what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
        if usable == 0:
            raise UserError(f"no usable image in the {split} split of {data_dir}; {_fix_hint(data_dir)}")
        problems += len(no_box) + len(no_image)
    if problems:
        print(f"{problems} images will be skipped (with a warning) when loading")
    print("ok")
    return 0


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="data.py",
        description="CUB-200-2011 birds + char-CNN-RNN embeddings "
        "for StackGAN: download, prepare, check, or write synthetic birds.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,prepare,check,synthetic}")
    p = sub.add_parser(
        "download",
        help="download CUB_200_2011.tgz and birds.zip, then prepare",
        description=f"Download CUB_200_2011.tgz ({CUB_URL}, MD5-checked) and birds.zip (Google "
        f"Drive id {EMBEDDINGS_DRIVE_ID}, via gdown) into DATA_DIR/downloads and unpack them. "
        "If a link is dead, download by hand and use `prepare`.",
    )
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where to put the data (default: %(default)s)")
    p = sub.add_parser(
        "prepare",
        help="unpack local CUB_200_2011.tgz and birds.zip",
        description="Unpack local archives into DATA_DIR/{train,test}/*.pickle and DATA_DIR/CUB_200_2011.",
    )
    p.add_argument("--cub-archive", required=True, help="path of CUB_200_2011.tgz")
    p.add_argument("--embeddings-archive", required=True, help="path of StackGAN's birds.zip")
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where to put the data (default: %(default)s)")
    p = sub.add_parser(
        "check",
        help="summarise a data folder or say what is missing",
        description="Print images per split, classes, embedding shape and missing images/boxes; "
        "exit status 2 and the command to run when required files are missing.",
    )
    p.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="data folder (default: %(default)s)")
    p = sub.add_parser(
        "synthetic",
        help="write the synthetic birds",
        description="Write a deterministic synthetic bird set (class = body colour) in the real "
        "layout, for quick training runs and tests.",
    )
    p.add_argument("--out", default=SYNTHETIC_DATA_DIR, help="output folder (default: %(default)s)")
    p.add_argument("--n-train", type=int, default=800, help="training images (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=160, help="test images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)

    if args.command == "download":
        download(args.data_dir)
    elif args.command == "prepare":
        prepare(args.cub_archive, args.embeddings_archive, args.data_dir)
    elif args.command == "check":
        check(args.data_dir)
    elif args.command == "synthetic":
        write_synthetic(args.out, args.n_train, args.n_test, args.seed)
        print(
            f"Wrote {args.n_train} training and {args.n_test} test synthetic birds ({len(PALETTE)} classes) "
            f"to {args.out}"
        )
    return 0


if __name__ == "__main__":
    cli.run_main(main)
