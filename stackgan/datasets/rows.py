"""Rows of a cached array read by index, without mapping the file into the process.

A split's cache is a memory-mapped .npy. Indexing the memmap maps every page it reads into the process: after an
epoch of random batches the whole file counts as resident memory (2.4 GB for CUB's Stage-II cache, 22 GB for
MS-COCO's), although the kernel could drop those pages at any time. RowReader reads the rows a batch needs with
os.preadv straight into the batch's own array instead, so the process holds a batch, and the page cache the rest.
preadv releases the GIL, so several threads read in parallel.
"""

import os

import numpy as np

# TensorFlow takes a NumPy array returned to it (tf.numpy_function) without a copy only when its data starts on a
# 64-byte boundary; NumPy's own arrays start 16 bytes past one, which costs a copy of every batch (6 ms for a
# Stage-II batch of 64 real and 64 wrong images on this host's CPU).
ALIGNMENT = 64


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) whose data starts on an ALIGNMENT-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


def backing_file(array):
    """(path, byte offset of row 0) of the .npy file behind a C-contiguous np.memmap that spans its whole data, or
    None for any other array (in memory, a view of part of a file, a strided view) and where the OS has no preadv
    (Windows): those are indexed."""
    if not hasattr(os, "preadv") or not isinstance(array, np.memmap) or not array.flags.c_contiguous:
        return None
    try:
        path = os.fspath(array.filename)
        size = os.path.getsize(path)
    except (OSError, TypeError):
        return None
    # A view of part of a memmap keeps its parent's offset: only an array spanning the file to its end is read.
    return (path, int(array.offset)) if size == array.offset + array.nbytes else None


class RowReader:
    """take(rows) -> a new array of array[rows], read with one preadv per row from the file behind a memmap, or
    indexed from an array in memory; range(start, stop) -> array[start:stop] in one read. Both return new arrays
    that start on an ALIGNMENT-byte boundary."""

    def __init__(self, array):
        self.array = array
        self.row_shape, self.dtype = tuple(array.shape[1:]), array.dtype
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * array.dtype.itemsize
        source = backing_file(array)
        self.path, self.offset = source if source else (None, 0)
        self._file = open(self.path, "rb", buffering=0) if self.path else None

    def __len__(self):
        return len(self.array)

    def take(self, rows):
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = aligned_empty((len(rows),) + self.row_shape, self.dtype)
        if self._file is None:
            np.take(self.array, rows, axis=0, out=out)
            return out
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.array)):
            raise IndexError(f"rows {rows.min()}..{rows.max()} outside the {len(self.array)} rows of {self.path}")
        view, size = memoryview(out.reshape(-1).view(np.uint8)), self.row_bytes
        # One preadv per row, straight into its place in `out`; the loop is kept lean, it runs for every image.
        for k, position in enumerate((self.offset + rows * size).tolist()):
            if os.preadv(self._file.fileno(), [view[k * size : (k + 1) * size]], position) != size:
                self._read(out[k], int(rows[k]), 1)  # a short read: read on from where it stopped
        return out

    def range(self, start, stop):
        """array[start:stop] as a new array, in one read."""
        out = aligned_empty((stop - start,) + self.row_shape, self.dtype)
        if self._file is None:
            out[...] = self.array[start:stop]
            return out
        self._read(out, start, stop - start)
        return out

    def _read(self, out, row, count):
        view = memoryview(out.reshape(-1).view(np.uint8))
        position, done = self.offset + row * self.row_bytes, 0
        while done < count * self.row_bytes:  # preadv may return less than asked
            got = os.preadv(self._file.fileno(), [view[done:]], position + done)
            if got == 0:
                raise OSError(
                    f"{self.path} ended at row {row} of {len(self.array)}: the cache was truncated or replaced "
                    "during the run; delete it and rerun"
                )
            done += got
