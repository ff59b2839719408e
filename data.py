"""CUB-200-2011 birds with char-CNN-RNN text embeddings, as StackGAN reads them.

The chapter's loaders keep their names: load_class_ids, load_filenames, load_embeddings,
load_bounding_boxes, get_img and load_dataset. load_split adds a preprocessing cache on top: decoded
crops are stored once per size as a uint8 array in <data_dir>/cache and memory-mapped after that.
Missing boxes, missing images and unreadable images are skipped with one warning that counts them.
load_captions reads Reed's captions (text/<class>/<image>.txt) aligned with filenames.pickle. Every pickle
goes through SafeUnpickler, which builds only lists, numbers, strings and numpy arrays: these files come
from archives and mirrors, and a pickle can name any function to call.

    python data.py download  [--data-dir data/birds]
    python data.py prepare   --cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip [--data-dir ...]
                             [--captions-archive attngan_birds.zip]
    python data.py check     [--data-dir data/birds]
    python data.py synthetic [--out data/synthetic] [--n-train 800 --n-test 160 --seed 0]

The commands live in prepare.py (download, prepare, check) and synthetic.py (the synthetic birds).
"""

import hashlib
import io
import json
import os
import pickle
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from PIL import Image

import cli
import files
from cli import UserError
from settings import (
    CACHE_DIR,
    CLASS_INFO_FILE,
    CUB_DIR,
    DATA_DIR,
    EMBEDDINGS_FILE,
    FILENAMES_FILE,
    SPLIT_FILES,
    SPLITS,
    TEXT_DIR,
)

CACHE_VERSION = 1


class DataWarning(UserWarning):
    """Something in the data was skipped (missing box, missing or unreadable image)."""


def fix_hint(data_dir=None):
    d = data_dir if data_dir is not None else DATA_DIR
    return (
        f"get the data with `python data.py download --data-dir {d}` (or `python data.py prepare "
        f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {d}` from local files, "
        f"or `python data.py synthetic --out {d}` for the synthetic birds)"
    )


def _require_file(path, data_dir=None):
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; {fix_hint(data_dir)}")


# ---------------------------------------------------------------------------
# The chapter's loaders
# ---------------------------------------------------------------------------
# Every global that the real pickles (and numpy arrays pickled by Python 3) name; anything else is refused,
# since unpickling calls whatever a pickle names and these files come from archives and mirrors.
SAFE_PICKLE_GLOBALS = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]  # protocol-5 arrays
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]  # _codecs.encode: bytes in protocol 2
    + [(m, n) for m in ("builtins", "__builtin__") for n in ("list", "tuple", "int", "float", "str")]
)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside SAFE_PICKLE_GLOBALS."""


class SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler that builds only lists, tuples, numbers, strings and numpy arrays, scalars and dtypes."""

    def find_class(self, module, name):
        if (module, name) not in SAFE_PICKLE_GLOBALS:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path, what):
    """A Python-2 pickle (encoding='latin1') through SafeUnpickler, with one-line errors. A text (protocol 0)
    pickle with Windows line endings is read as if they were LF: protocol 0 escapes line breaks inside its
    strings, so CRLF -> LF restores the file exactly. A binary pickle damaged by such a conversion is named so."""
    _require_file(path)
    fix = "download or prepare the data again"
    crlf_fix = (
        "it has Windows (CRLF) line endings, which damage a binary pickle: get the original file again "
        "(unzip without -a, no text-mode transfer)"
    )
    try:
        with open(path, "rb") as f:
            text_pickle = f.read(1) != b"\x80"  # protocols >= 2 start with the PROTO opcode
            f.seek(0)
            if text_pickle:
                raw = f.read().replace(b"\r\n", b"\n")
                return SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
            return SafeUnpickler(f, encoding="latin1").load()
    except RefusedGlobal as err:
        if "\r" in str(err):
            raise UserError(f"{path} is not a readable {what} pickle: {crlf_fix}") from None
        raise UserError(
            f"{path} names the global {str(err)!r}, which a {what} pickle never needs; refused, since loading "
            f"it could run code: {fix} from the original source"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises UnpicklingError, EOFError, ValueError, ...
        cause = crlf_fix if not text_pickle and _has_crlf(path) else fix
        raise UserError(f"{path} is not a readable {what} pickle ({type(err).__name__}: {err}); {cause}") from None


def _has_crlf(path):
    with open(path, "rb") as f:
        return any(b"\r\n" in chunk for chunk in iter(lambda: f.read(1 << 20), b""))


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
    """Image names such as '002.Laysan_Albatross/Laysan_Albatross_0002_1027' from filenames.pickle, with
    stray whitespace around a name removed."""
    obj = _load_pickle(filenames_file_path, "filenames")
    if not isinstance(obj, (list, tuple)) or not all(isinstance(n, str) for n in obj):
        raise UserError(f"{filenames_file_path} does not hold a list of file names; download or prepare the data again")
    return [n.strip() for n in obj]


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
    """One of CUB's whitespace tables, 'id v1 v2 ...' per line, read with pandas as the chapter does
    -> {id: [v1, ...]} (strings)."""
    import pandas as pd

    _require_file(path, data_dir)
    fix = "download or prepare the data again"
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, names=range(n_values + 1), dtype=str, index_col=False)
    except pd.errors.ParserError as err:  # a line with too many fields
        raise UserError(f"{path}: {str(err).strip()} (expected {n_values + 1} fields); {fix}") from None
    short = table[table.isna().any(axis=1)]
    if len(short):
        line = " ".join(short.iloc[0].dropna())
        raise UserError(f"{path}: the line '{line[:60]}' has fewer than {n_values + 1} fields; {fix}")
    return dict(zip(table[0], table.iloc[:, 1:].values.tolist()))


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


def check_counts(filenames, class_ids, embeddings, paths):
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
    check_counts(
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
        raise UserError(f"no usable image: {skipped.message(what, total)}; {fix_hint(data_dir)}")


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


def file_digest(path, algorithm="sha1"):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path):
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


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
            files.remove_quietly(os.path.join(cache_dir, name))


def _build_image_cache(filenames, boxes, cub_dir, size, npy_path, skipped, what, data_dir):
    """Decode every usable image into a memmapped .npy that appears at npy_path only when complete; its rows
    are the kept images, in order. Returns the kept indices."""
    n = len(filenames)
    with files.atomic_path(npy_path, ".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        kept = _decode_images(
            filenames, boxes, cub_dir, (size, size), out, skipped, f"caching {os.path.basename(what)}"
        )
        _no_images_left(kept, skipped, what, n, data_dir)
        if len(kept) < n:  # the file must hold only the kept rows: copy them into one of that shape
            with files.atomic_path(tmp, ".npy") as compact:
                small = np.lib.format.open_memmap(
                    compact, mode="w+", dtype=np.uint8, shape=(len(kept),) + out.shape[1:]
                )
                for start in range(0, len(kept), 512):
                    stop = min(start + 512, len(kept))
                    small[start:stop] = out[start:stop]
                small.flush()
                del small
        else:
            out.flush()
        del out
    return kept


def load_split(data_dir, split, image_size):
    """Load the 'train' or 'test' split of data_dir with images cropped and resized to image_size
    (the stored size: settings.stored_size(size, augment) for pipeline.make_dataset). The decoded images are cached in
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
        raise UserError(f"data folder {data_dir} not found; {fix_hint(data_dir)}")
    split_dir = os.path.join(data_dir, split)
    paths = tuple(os.path.join(split_dir, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE))
    cub_dir = os.path.join(data_dir, CUB_DIR)
    for p in paths + (os.path.join(cub_dir, "images.txt"), os.path.join(cub_dir, "bounding_boxes.txt")):
        _require_file(p, data_dir)
    if not os.path.isdir(os.path.join(cub_dir, "images")):
        raise UserError(f"{os.path.join(cub_dir, 'images')} not found; {fix_hint(data_dir)}")

    filenames = load_filenames(paths[0])
    class_ids = load_class_ids(paths[1])
    embeddings = _load_embeddings_cached(paths[2], data_dir, split)
    check_counts(filenames, class_ids, embeddings, paths)
    class_ids = np.asarray(class_ids, dtype=np.int64)

    key_src = json.dumps(
        [
            CACHE_VERSION,
            split,
            size,
            filenames,
            file_digest(os.path.join(cub_dir, "images.txt")),
            file_digest(os.path.join(cub_dir, "bounding_boxes.txt")),
        ]
    )
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    cache_dir = os.path.join(data_dir, CACHE_DIR)
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
            kept = _build_image_cache(filenames, boxes, cub_dir, size, npy_path, skipped, what, data_dir)
            files.write_json(
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
    cache_dir = os.path.join(data_dir, CACHE_DIR)
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
        files.save_npy(npy_path, emb)
        _remove_stale(cache_dir, f"{split}_embeddings_", {npy_path})
    except OSError:
        pass  # read-only folder: the pickle is read every time
    return emb


# ---------------------------------------------------------------------------
# Captions: Reed's text_c10, one file of (usually 10) lines per image, <data_dir>/text/<class>/<image>.txt
# ---------------------------------------------------------------------------
CAPTIONS_DRIVE_ID = "1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ"  # AttnGAN's birds metadata archive, holds birds/text/


def captions_hint(data_dir=None):
    d = data_dir if data_dir is not None else DATA_DIR
    return (
        f"get the captions with `python data.py prepare --captions-archive birds.zip --data-dir {d}` (AttnGAN's "
        f"birds.zip, https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}, or Reed's CUB archive with text_c10/), "
        f"or `python data.py synthetic --out {d}` for the synthetic birds"
    )


def caption_file(text_dir, name):
    """<text_dir>/<class>/<image>.txt for a filenames.pickle name."""
    return os.path.join(text_dir, name.strip() + ".txt")


def clean_caption(line):
    """One caption line as the encoder reads it: each run of U+FFFD (the replacement character, which some
    files hold in pairs where a space was; undecodable bytes become it too) is a space, as in AttnGAN; runs
    of whitespace become one space; no leading or trailing space."""
    return " ".join(re.sub("\ufffd+", " ", line).split())


def read_captions(path):
    """The captions of one text file, in order: UTF-8 (a byte-order mark is ignored), lines ending in LF,
    CRLF or CR, each cleaned by clean_caption; blank lines are skipped, so caption k is the k-th non-blank line
    (as StackGAN's readCaptions and AttnGAN's load_captions count them)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace").lstrip("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [c for c in map(clean_caption, lines) if c]


def load_captions(text_dir, filenames):
    """Captions aligned with filenames: a list (one per name) of lists of strings, read by read_captions from
    <text_dir>/<name>.txt. An image without a caption file gets [] (one warning counts them)."""
    if not os.path.isdir(text_dir):
        raise UserError(f"caption folder {text_dir} not found; {captions_hint(os.path.dirname(text_dir) or '.')}")
    captions, missing = [], []
    for name in filenames:
        path = caption_file(text_dir, name)
        try:
            captions.append(read_captions(path))
        except FileNotFoundError:
            missing.append(path)
            captions.append([])
        except OSError as err:
            raise UserError(f"caption file {path} cannot be read ({err}); {captions_hint()}") from None
    if missing:
        warnings.warn(
            f"{text_dir}: no caption file for {len(missing)} of {len(filenames)} images (e.g. {missing[0]}); "
            f"they have no captions",
            DataWarning,
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


def load_caption_split(data_dir, split):
    """The 'train' or 'test' split's names, class ids, embeddings and captions, without any image."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {fix_hint(data_dir)}")
    paths = tuple(os.path.join(data_dir, split, f) for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE))
    for p in paths:
        _require_file(p, data_dir)
    filenames = load_filenames(paths[0])
    class_ids = load_class_ids(paths[1])
    embeddings = _load_embeddings_cached(paths[2], data_dir, split)
    check_counts(filenames, class_ids, embeddings, paths)
    text_dir = os.path.join(data_dir, TEXT_DIR)
    captions = load_captions(text_dir, filenames)
    if not any(captions):
        raise UserError(f"{text_dir} holds no caption file of the {split} split; {captions_hint(data_dir)}")
    return CaptionSplit(filenames, np.asarray(class_ids, dtype=np.int64), embeddings, captions)


def missing_files(data_dir):
    """Paths of the layout above that data_dir lacks."""
    need = [os.path.join(data_dir, s, f) for s in SPLITS for f in SPLIT_FILES]
    need += [os.path.join(data_dir, CUB_DIR, f) for f in ("images.txt", "bounding_boxes.txt")]
    missing = [p for p in need if not os.path.isfile(p)]
    if not os.path.isdir(os.path.join(data_dir, CUB_DIR, "images")):
        missing.append(os.path.join(data_dir, CUB_DIR, "images") + os.sep)
    return missing


if __name__ == "__main__":
    import prepare

    cli.run_main(prepare.main)
