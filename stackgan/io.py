"""Files: writing them safely, generator outputs as pictures, and folders of generated images read back.

Every file the project writes goes through atomic_path: it is written under a temporary name beside
its destination and renamed into place, so an interrupted run never leaves half a file, and a failed write (a full
disk, a read-only folder) never replaces a good one. Temporary names hold the writer's process id, so that a later
run removes those of killed runs (remove_stale_temps) and leaves those of live ones.
"""

import contextlib
import gc
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from stackgan.cli import UserError, describe_os_error

GENERATED = re.compile(r"^(\d{5,})_(\d+)\.png$")  # what generate.py writes: {index:05d}_{sample}.png
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Temporary files and folders are named .tmp-<pid>.<host>.<random>: a later run removes those whose process is gone.
TEMP_PREFIX = ".tmp-"
_TEMP_NAME = re.compile(r"^\.tmp-(\d+)\.([A-Za-z0-9_]*)\.")
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]
STALE_AFTER_S = 3600  # a temporary name of another host, or without a process id, is stale when this old


class WriteError(UserError):
    """A file could not be written (a full disk, a read-only folder): one line naming it and what to do."""

    def __init__(self, path, err):
        super().__init__(f"cannot write {describe_os_error(err, path)}; {_write_hint(path, _out_of_space(err))}")


class TensorFlowWriteError(UserError):
    """A write by TensorFlow's C++ (a checkpoint, a TensorBoard log: a tf.errors.OpError) that failed, in one line:
    `what` names what and where, e.g. 'a checkpoint in results/stage1_ckpt'."""

    OUT_OF_SPACE = ("No space left on device", "Disk quota exceeded", "File too large")
    REASONS = OUT_OF_SPACE + ("Read-only file system", "Permission denied")

    def __init__(self, what, err):
        text = getattr(err, "message", None) or str(err)
        reason = next((r for r in self.REASONS if r in text), None)
        if reason is None:
            reason = f"{type(err).__name__}: {(text.splitlines() or [''])[0][-160:]}"
        super().__init__(f"cannot write {what}: {reason}; {_write_hint(None, reason in self.OUT_OF_SPACE)}")


def _out_of_space(err):
    import errno

    return getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _write_hint(path, out_of_space):
    if not out_of_space:
        return "choose a writable folder"
    where = f" in {os.path.dirname(os.path.abspath(path))}" if path else " there"
    return f"free space{where} or choose another folder"


def temp_prefix(pid=None):
    """The prefix of the temporary names of this process (or of process `pid` on this host)."""
    return f"{TEMP_PREFIX}{os.getpid() if pid is None else pid}.{_HOST}."


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside `path`; it becomes `path` when the block ends, and is removed if the
    block raises, so that a failed write never replaces a good file. `suffix` keeps the extension that some writers
    insist on (.weights.h5, .npy, .png). An OSError (a full disk, a read-only folder) becomes a WriteError."""
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=temp_prefix(), suffix=suffix)
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result is an ordinary file
        os.replace(tmp, path)
    except OSError as err:
        raise WriteError(path, err) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            remove_quietly(tmp)


def remove_quietly(path):
    """Delete a file if it is there; a missing or undeletable file is not an error."""
    try:
        os.remove(path)
    except OSError:
        pass


def is_stale_temp(folder, name):
    """True for a temporary file or folder (.tmp-*) of a process that is gone: one named with the id of a process
    that no longer runs on this host, or (without an id, or from another host) one untouched for STALE_AFTER_S."""
    if not name.startswith(TEMP_PREFIX):
        return False
    m = _TEMP_NAME.match(name)
    if m and m.group(2) == _HOST:
        return not process_alive(int(m.group(1)))
    try:
        age = time.time() - os.lstat(os.path.join(folder, name)).st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def process_alive(pid):
    """True if a process with this id runs (on this host): os.kill with signal 0 asks without signalling."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    return True


def remove_stale_temps(folder):
    """Remove the temporary files and folders that killed runs left in `folder` (see is_stale_temp); those of a
    live process stay. Returns their names."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if is_stale_temp(folder, name):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                remove_quietly(path)
            removed.append(name)
    return removed


def staging_folder(folder, purpose):
    """A new temporary folder inside `folder` (created if absent, its stale temporaries removed first), where a
    command builds what it will rename into place; WriteError if the folder cannot be written."""
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temps(folder)
        return tempfile.mkdtemp(dir=folder, prefix=f"{temp_prefix()}{purpose}-")
    except OSError as err:
        raise WriteError(folder, err) from None


def swap_in(staged, folder, names):
    """Move each of `names` from the staging folder `staged` into `folder`, the entry it replaces (if any) moved
    aside into staged/replaced, which goes with the staging folder."""
    replaced = os.path.join(staged, "replaced")
    os.makedirs(replaced)
    for name in names:
        dest = os.path.join(folder, name)
        if os.path.lexists(dest):
            os.replace(dest, os.path.join(replaced, name))
        os.replace(os.path.join(staged, name), dest)


def write_json(path, obj):
    with atomic_path(path, ".json") as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)


def write_bytes(path, payload):
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def save_npy(path, array):
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array)


def save_weights(model, path):
    """model.save_weights, atomically. When the write fails (a full disk), the HDF5 file Keras left open is closed
    here: left to the interpreter's exit, HDF5 would flush it then and crash the process."""
    with atomic_path(path, ".weights.h5") as tmp:
        try:
            model.save_weights(tmp)
        except BaseException:
            _close_hdf5_file(tmp)
            raise


def _close_hdf5_file(path):
    """Close the HDF5 file open at `path`, and every object in it, ignoring the errors of its failing flush (which
    HDF5 reports again as 'Exception ignored' while the objects go)."""
    import h5py

    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
            if os.path.abspath(os.fsdecode(file_id.name)) == os.path.abspath(path):
                try:
                    h5py.File(file_id).close()
                except Exception:
                    pass
        gc.collect()
    finally:
        sys.unraisablehook = hook


def save_png(array, path):
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(array).save(tmp)


def to_uint8(images):
    """Generator output (tanh, in [-1, 1]) -> uint8 [0, 255]; uint8 images pass unchanged."""
    if np.asarray(images).dtype == np.uint8:
        return np.asarray(images)
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
    """One grid from the per-stage outputs of api.sample_images; Stage-II shows each 64x64 input
    beside its 256x256 output."""
    final = to_uint8(stage_images[-1])
    if len(stage_images) == 1:
        return make_grid(final, columns)
    size = final.shape[1]
    lows = np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.NEAREST)) for im in to_uint8(stage_images[0])]
    )
    pairs = np.concatenate([lows, final], axis=2)  # low-res input | high-res output, side by side
    return make_grid(pairs, max(1, columns // 2))


def save_rgb_img(img, path):
    """The chapter's save_rgb_img: one image (a sample, or a grid of them) as a PNG, generator output (float in
    [-1, 1]) or uint8, written atomically. The chapter drew it into a matplotlib figure titled "Image"; the pixels
    are written as they are."""
    save_png(to_uint8(img), path)


# ---------------------------------------------------------------------------
# Folders of generated images: {index:05d}_{sample}.png
# ---------------------------------------------------------------------------
def image_name(index, sample):
    return f"{index:05d}_{sample}.png"


def generated_images(folder):
    """[(index, sample, path)] of FOLDER/{index:05d}_{sample}.png, sorted."""
    found = []
    for name in os.listdir(folder):
        m = GENERATED.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, name)))
    return sorted(found)


def list_images(folder, what="--images"):
    """Image paths of a folder: generate.py's {index}_{sample}.png if any, else every image file."""
    if not os.path.isdir(folder):
        raise UserError(f"{what} {folder} is not a folder; give the folder of images (e.g. generate.py --out)")
    generated = generated_images(folder)
    if generated:
        return [path for _, _, path in generated]
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
    )


def load_image(path, size=None):
    """uint8 (H, W, 3); resized to size x size (bilinear) when size is given and differs."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable image ({type(err).__name__}); remove or replace it") from None


def resize_batch(images, size):
    """uint8 images (any sizes) -> uint8 (N, size, size, 3), bilinear, like load_image."""
    out = []
    for im in images:
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out.append(im)
    return np.stack(out)


def folder_batches(paths, batch_size, size):
    for start in range(0, len(paths), batch_size):
        yield np.stack([load_image(p, size) for p in paths[start : start + batch_size]])


def array_batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]
