"""Splits with a preprocessing cache: decoded crops stored once per size as a uint8 array in <data_dir>/cache and
memory-mapped after that, and the embeddings as a plain .npy beside them.
"""

import functools
import hashlib
import json
import os
import warnings
from typing import NamedTuple

import numpy as np

from stackgan.datasets import dataset_of, loaders
from stackgan import io, layout
from stackgan.cli import UserError

CACHE_VERSION = 2


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
            io.remove_quietly(os.path.join(cache_dir, name))


def _build_image_cache(filenames, image_path, boxes, size, npy_path, skipped, what, data_dir):
    """Decode every usable image into a memmapped .npy that appears at npy_path only when complete; its rows
    are the kept images, in order. Returns the kept indices."""
    n = len(filenames)
    with io.atomic_path(npy_path, ".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        kept = loaders.decode_images(
            filenames, image_path, boxes, (size, size), out, skipped, f"caching {os.path.basename(what)}"
        )
        loaders.require_images(kept, skipped, what, n, data_dir)
        if len(kept) < n:  # the file must hold only the kept rows: copy them into one of that shape
            with io.atomic_path(tmp, ".npy") as compact:
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


def load_dataset(data_dir, split, image_size, dataset=None):
    """The chapter's load_dataset: the 'train' or 'test' split of data_dir (its dataset named by `dataset`, or found
    from its layout) with images cropped as the dataset says and resized to image_size (the stored size:
    config.stored_size(size, augment) for training). The decoded images are cached in
    <data_dir>/cache/<split>_<size>_<key>.cache.npy and memory-mapped on later loads; the key hashes the file list,
    the size and the files that decide the crops (CUB's images.txt and bounding_boxes.txt), so a change rebuilds
    it. Delete the cache folder to force a rebuild after replacing images in place."""
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        raise UserError(f"image size {image_size!r} is not an integer") from None
    if size < 1:
        raise UserError(f"image size {size} must be positive")
    filenames, class_ids, embeddings = load_split_lists(data_dir, split)
    dataset = dataset_of(data_dir, dataset)
    missing = layout.missing_files(data_dir, dataset)
    if missing:
        raise UserError(f"{missing[0]} not found; {dataset.data_hint(data_dir)}")
    split_dir = os.path.join(data_dir, split)

    key_src = json.dumps([CACHE_VERSION, split, size, filenames, *map(file_digest, dataset.key_files(data_dir))])
    key = hashlib.sha1(key_src.encode()).hexdigest()[:16]
    cache_dir = layout.cache_dir(data_dir)
    io.remove_stale_temps(cache_dir)  # of killed cache builds; the cache folder may be shared by live runs
    npy_path, meta_path = _cache_paths(cache_dir, split, size, key)
    what = f"{split_dir} at {size}x{size}"

    meta = _read_cache(npy_path, meta_path, len(filenames), size)
    if meta is not None:
        images, kept, skipped = meta
        what += f" (as cached in {cache_dir}; delete it to read the images again)"
    else:
        boxes = dataset.boxes(data_dir)
        image_path = functools.partial(dataset.image_path, data_dir)
        skipped = loaders.Skipped()
        try:
            os.makedirs(cache_dir, exist_ok=True)
            kept = _build_image_cache(filenames, image_path, boxes, size, npy_path, skipped, what, data_dir)
            io.write_json(
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
        except (OSError, io.WriteError) as err:  # read-only data folder, full disk: work from memory
            warnings.warn(
                f"could not write the image cache in {cache_dir} ({err}); decoding without a cache",
                loaders.DataWarning,
                stacklevel=2,
            )
            skipped = loaders.Skipped()
            images = np.empty((len(filenames), size, size, 3), dtype=np.uint8)
            kept = loaders.decode_images(
                filenames, image_path, boxes, (size, size), images, skipped, f"decoding {split}"
            )
            loaders.require_images(kept, skipped, what, len(filenames), data_dir)
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
        return images, kept, loaders.Skipped(meta.get("skipped"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # damaged entry: rebuild


def _load_embeddings_cached(path, data_dir, split):
    """load_embeddings, plus a plain .npy copy in the cache folder (keyed by the pickle's size and mtime),
    memory-mapped on later loads instead of unpickling a Python-2 list of arrays every time."""
    cache_dir = layout.cache_dir(data_dir)
    key = hashlib.sha1(json.dumps([CACHE_VERSION, _stat_key(path)]).encode()).hexdigest()[:16]
    npy_path = os.path.join(cache_dir, f"{split}_embeddings_{key}.cache.npy")
    if os.path.isfile(npy_path):
        try:
            emb = np.load(npy_path, mmap_mode="r")
            if emb.dtype == np.float32 and emb.ndim == 3:
                return emb
        except (OSError, ValueError):
            pass
    emb = loaders.load_embeddings(path)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        io.save_npy(npy_path, emb)
        _remove_stale(cache_dir, f"{split}_embeddings_", {npy_path})
    except (OSError, io.WriteError):
        pass  # read-only folder, full disk: the pickle is read every time
    return emb


def load_split_lists(data_dir, split):
    """The names, class ids (int64) and embeddings (float32 (N, 10, 1024), memory-mapped from the cache) of a
    split, checked to agree in length."""
    if split not in layout.SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(layout.SPLITS)}")
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {loaders.data_hint(data_dir)}")
    paths = layout.split_files(data_dir, split)
    loaders.require_files(paths, data_dir)
    filenames = loaders.load_filenames(paths.filenames)
    class_ids = loaders.load_class_ids(paths.class_info)
    embeddings = _load_embeddings_cached(paths.embeddings, data_dir, split)
    loaders.check_counts(filenames, class_ids, embeddings, paths)
    return filenames, np.asarray(class_ids, dtype=np.int64), embeddings
