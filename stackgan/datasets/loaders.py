"""The chapter's loaders for StackGAN's files, fixed: the three pickles of a split (load_filenames, load_class_ids,
load_embeddings), images (get_img, decode_images) and the chapter's load_dataset.

What the chapter got wrong is fixed (README, "Differences from the chapter"): Python-2 pickles load with latin1
through stackgan.safe_pickle, which builds only numbers, strings, lists and plain numeric arrays (a downloaded pickle
can name any function to call, or corrupt memory), grayscale images become RGB, and images without a box or file, or
unreadable ones, are skipped with one warning that counts them. Where a dataset keeps its images, boxes and captions
is its own module's business (stackgan.datasets.birds).
"""

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from stackgan import safe_pickle
from stackgan.cli import UserError
from stackgan.datasets import dataset_of


def refuse_decompression_bombs():
    """Make an image larger than PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS) an error rather than a
    warning, as PIL's documentation suggests: such an image is skipped as unreadable instead of being decoded into
    gigabytes. A process-wide warnings filter, set by the commands that decode images, before their threads start."""
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def check_pixels(im):
    """Refuse an opened image of more than Image.MAX_IMAGE_PIXELS pixels before it is decoded (Image.open only warns
    up to twice that, where no filter makes the warning an error)."""
    if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(
            f"{im.width}x{im.height} pixels, more than PIL's bound of {Image.MAX_IMAGE_PIXELS}"
        )


def verify_image(path):
    """None if the image at `path` decodes (at a reduced scale where the format allows, JPEG's draft mode) within
    the pixel bound, else why not, in a few words."""
    try:
        with Image.open(path) as im:
            check_pixels(im)
            im.draft("RGB", (64, 64))
            im.load()
        return None
    except Exception as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:80] if str(err) else ''}"


class DataWarning(UserWarning):
    """Something in the data was skipped (missing box, missing or unreadable image)."""


def require_files(paths, data_dir=None):
    """A UserError naming the first missing file of `paths` and how to get the data."""
    for path in paths:
        require_file(path, data_dir)


def require_file(path, data_dir=None):
    """A UserError naming the file and how to get the data, when it is missing."""
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; {data_hint(data_dir)}")


# ---------------------------------------------------------------------------
# The chapter's loaders
# ---------------------------------------------------------------------------
def _load_pickle(path, what):
    """A Python-2 pickle (encoding='latin1') through stackgan.safe_pickle, which builds only numbers, strings,
    lists and plain numeric arrays, within bounds set by the file's size; every failure is one line. A text
    (protocol 0) pickle with Windows line endings is read as if they were LF: protocol 0 escapes line breaks
    inside its strings, so CRLF -> LF restores the file exactly. A binary pickle damaged by such a conversion is
    named so."""
    require_file(path)
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
                return safe_pickle.loads(f.read().replace(b"\r\n", b"\n"), encoding="latin1")
            return safe_pickle.load(f, encoding="latin1")
    except safe_pickle.RefusedPickle as err:
        if "\r" in err.what:
            raise UserError(f"{path} is not a readable {what} pickle: {crlf_fix}") from None
        raise UserError(
            f"{path} is refused: it names {err.what!r}, which a {what} pickle never needs (loading it could run "
            f"code or corrupt memory); {fix} from the original source"
        ) from None
    except safe_pickle.CostlyPickle as err:
        raise UserError(f"{path} is refused: it would cost far more than its size to load ({err}); {fix}") from None
    except Exception as err:
        cause = crlf_fix if not text_pickle and _has_crlf(path) else fix
        first = str(err).splitlines()[0][:200] if str(err) else ""
        raise UserError(f"{path} is not a readable {what} pickle ({type(err).__name__}: {first}); {cause}") from None


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
            f"(images, captions, dims) such as (N, 10, 1024); {RELOAD}"
        )
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if len(emb):  # an empty list is refused with the other files' counts (check_counts)
        check_embeddings(emb, embeddings_file_path)
    return emb


RELOAD = "download or prepare the data again"


def write_split_files(split_dir, rows):
    """The three split pickles of StackGAN's layout in split_dir, from rows of (name, class id, (captions, D)
    embeddings): the lists in protocol 0, as StackGAN's files are, the embeddings as a list of arrays (protocol 2).
    For the synthetic sets; load_filenames, load_class_ids and load_embeddings read them back."""
    import pickle

    from stackgan.layout import CLASS_INFO_FILE, EMBEDDINGS_FILE, FILENAMES_FILE

    with open(os.path.join(split_dir, FILENAMES_FILE), "wb") as f:
        pickle.dump([name for name, _, _ in rows], f, protocol=0)
    with open(os.path.join(split_dir, CLASS_INFO_FILE), "wb") as f:
        pickle.dump([c for _, c, _ in rows], f, protocol=0)
    with open(os.path.join(split_dir, EMBEDDINGS_FILE), "wb") as f:
        pickle.dump([e for _, _, e in rows], f, protocol=2)


def caption_vectors(embeddings):
    """Caption embeddings (N, D) as given, or (N, captions, D) averaged over the captions, as float32 (N, D); a
    UserError for any other shape."""
    from stackgan.config import EMBEDDING_DIM

    e = np.asarray(embeddings, dtype=np.float32)
    if e.ndim == 3:
        e = e.mean(axis=1)
    if e.ndim != 2 or e.shape[-1] != EMBEDDING_DIM:
        raise UserError(
            f"embeddings of shape {e.shape}: expected (N, {EMBEDDING_DIM}) or (N, captions, {EMBEDDING_DIM})"
        )
    return e


def check_embeddings(embeddings, what, embedding_dim=None, fix=RELOAD, values=True):
    """The one check of text embeddings, whatever they come from (a dataset's pickle, a file given to generate.py,
    the API): an array of shape (N, D) or (N, captions, D) with N >= 1, D = embedding_dim when given, and (with
    values) every value finite: training would diverge on inf or NaN and blame the learning rate. A UserError names
    `what`, the problem and `fix`. The values are read a block of rows at a time, so that a memory-mapped file
    stays on disk."""
    shape = tuple(np.shape(embeddings))
    if len(shape) not in (2, 3) or 0 in shape:
        raise UserError(f"{what}: embeddings of shape {shape}, expected (N, D) or (N, captions, D) with N >= 1; {fix}")
    if embedding_dim is not None and shape[-1] != embedding_dim:
        raise UserError(
            f"{what}: {shape[-1]}-dimensional embeddings (shape {shape}), but the generator reads "
            f"{embedding_dim}-dimensional ones; {fix}"
        )
    for start in range(0, shape[0] if values else 0, 1024):
        block = np.asarray(embeddings[start : start + 1024], dtype=np.float32)
        bad = ~np.isfinite(block).all(axis=tuple(range(1, block.ndim)))
        if bad.any():
            first = start + int(np.argmax(bad))
            raise UserError(f"{what}: the embeddings of row {first} (of {shape[0]}) are not finite (inf or NaN); {fix}")


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
    does, and resize it (bilinear) to image_size (an int or (width, height)). An image of more than
    PIL.Image.MAX_IMAGE_PIXELS pixels is refused before it is decoded (Image.DecompressionBombError)."""
    with Image.open(img_path) as im:
        check_pixels(im)
        img = im.convert("RGB")
    if bbox is not None:
        x1, y1, x2, y2 = crop_box(bbox, *img.size)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"the bounding box {list(bbox)} lies outside the {img.size[0]}x{img.size[1]} image")
        img = img.crop((x1, y1, x2, y2))
    return img.resize(_size_wh(image_size), Image.BILINEAR)


class Skipped:
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
    except Exception as err:
        return index, None, f" ({type(err).__name__}: {str(err)[:80]})"


def decode_images(filenames, image_path, boxes, image_size, out, skipped, desc):
    """Decode, crop and resize every usable image into out[0], out[1], ... (kept ones, in order): image_path(name)
    is the file of a name, boxes {name: box} to crop around (an image without one is skipped), or None to use whole
    images. Returns the kept indices into `filenames`."""
    jobs = []
    for index, name in enumerate(filenames):
        bbox = None if boxes is None else boxes.get(name)
        if boxes is not None and bbox is None:
            skipped.add("no_box", name)
            continue
        path = image_path(name)
        if not os.path.isfile(path):
            skipped.add("no_image", path)
            continue
        jobs.append((index, path, bbox, image_size))
    kept = []
    from tqdm import tqdm

    refuse_decompression_bombs()

    workers = max(1, min(4, os.cpu_count() or 1))
    with (
        ThreadPoolExecutor(workers) as pool,
        tqdm(total=len(jobs), desc=desc, unit="img", leave=False, disable=None if len(jobs) >= 500 else True) as bar,
    ):
        for start in range(0, len(jobs), 256):  # PIL releases the GIL while decoding; chunks bound the memory
            for index, img, error in pool.map(_decode_one, jobs[start : start + 256]):
                if img is None:
                    skipped.add("unreadable", image_path(filenames[index]), error)
                else:
                    out[len(kept)] = img
                    kept.append(index)
                bar.update(1)
    return np.asarray(kept, dtype=np.int64)


def require_images(kept, skipped, what, total, data_dir=None):
    if len(kept) == 0:
        raise UserError(f"no usable image: {skipped.message(what, total)}; {data_hint(data_dir)}")


def data_hint(data_dir=None):
    """How to get the data of data_dir's dataset, for a message about missing files."""
    return dataset_of(data_dir).data_hint(data_dir)
