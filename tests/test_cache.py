"""The preprocessing cache (stackgan.datasets.cache.load_dataset): decoded once, memory-mapped after, rebuilt when
the file list or size changes."""

import os

import numpy as np

from stackgan.datasets import loaders
from helpers import dump, split_paths
from stackgan import layout
from stackgan.datasets.cache import load_dataset


def test_cache_hit_and_rebuild(birds_copy, monkeypatch):
    calls = []
    real_get_img = loaders.get_img

    def counting(*args):
        calls.append(args[0])
        return real_get_img(*args)

    monkeypatch.setattr(loaders, "get_img", counting)
    first = load_dataset(birds_copy, "train", 64)
    assert len(calls) == 48
    cache_files = sorted(os.listdir(layout.cache_dir(birds_copy)))
    assert any(f.startswith("train_64_") and f.endswith(".cache.npy") for f in cache_files)

    def fail(*args):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(loaders, "get_img", fail)
    second = load_dataset(birds_copy, "train", 64)
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    assert first.filenames == second.filenames

    monkeypatch.setattr(loaders, "get_img", counting)
    calls.clear()
    assert load_dataset(birds_copy, "train", 48).images.shape == (48, 48, 48, 3)  # other size: rebuilt
    assert len(calls) == 48

    f_path, c_path, e_path = split_paths(birds_copy)  # a changed file list: rebuilt
    dump(f_path, loaders.load_filenames(f_path)[5:])
    dump(c_path, loaders.load_class_ids(c_path)[5:])
    dump(e_path, loaders.load_embeddings(e_path)[5:])
    calls.clear()
    third = load_dataset(birds_copy, "train", 64)
    assert len(calls) == 43 and third.images.shape == (43, 64, 64, 3)
    np.testing.assert_array_equal(third.images, first.images[5:])
    assert (
        len(
            [
                f
                for f in os.listdir(layout.cache_dir(birds_copy))
                if f.startswith("train_64_") and f.endswith(".cache.npy")
            ]
        )
        == 1
    )  # the stale entry is gone
