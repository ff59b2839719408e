"""Rebuild trained generators from a results folder and run them: shared by training (epoch grids), the demo
report, the Python API and generate.py."""

import json
import os
import warnings

import numpy as np

from stackgan.cli import UserError
from stackgan.config import demo_flags
from stackgan.layout import config_path, generator_files, weights_path


def demo_or_results_flag(results_dir, stage):
    """The flags that train into results_dir: --demo (and its --dataset) for a demo's folder."""
    return demo_flags(results_dir) or f"--results-dir {results_dir}"


def read_config(results_dir, stage, needed_by="this command"):
    """The exported config of a stage, checked to have its generator weights beside it."""
    path, weights = generator_files(results_dir, stage)
    if not os.path.exists(path) or not os.path.exists(weights):
        missing = path if not os.path.exists(path) else weights
        raise UserError(
            f"{missing} not found: {needed_by} needs trained Stage-{stage} weights; "
            f"run `python stage{stage}.py {demo_or_results_flag(results_dir, stage)}` first"
        )
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable config ({err}); retrain with `python stage{stage}.py`") from None


def load_generator_weights(model, path, stage, config=None):
    """Load a generator's weights file; one saved before the up-sampling blocks became one UpSampleConv2D
    layer (separate UpSampling2D + Conv2D, the same variables in the same order) loads too."""
    from stackgan import models
    from stackgan.layers import CHAPTER_KERNELS

    with warnings.catch_warnings():  # Keras warns about each group a file of the other layout lacks
        warnings.simplefilter("ignore")
        try:
            model.load_weights(path)
            return
        except Exception as err:  # h5py/Keras raise many types for a wrong or corrupt file
            failure = type(err).__name__
        try:
            two_layer = models.build_generator(stage, config, CHAPTER_KERNELS)
            two_layer.load_weights(path)
            model.set_weights(two_layer.get_weights())
            return
        except Exception:  # noqa: BLE001 - not that layout either: report the first failure
            pass
    raise UserError(
        f"{path} does not fit the Stage-{stage} generator described by "
        f"{os.path.basename(config_path(os.path.dirname(path), stage))} ({failure}); "
        f"retrain with `python stage{stage}.py`"
    )


def load_generators(results_dir, stage, needed_by="this command", configs=None):
    """Trained generators up to `stage`: ([stage1_gen] or [stage1_gen, stage2_gen], config of the last stage).
    `configs`, one per stage as read_config gave them, saves reading them again."""
    from stackgan import models

    configs = configs or [read_config(results_dir, s, needed_by) for s in range(1, stage + 1)]
    generators = []
    for s, config in enumerate(configs, 1):
        gen = models.build_generator(s, config)
        load_generator_weights(gen, weights_path(results_dir, s, "gen"), s, config)
        generators.append(gen)
    return generators, configs[-1]


def sample_images(generators, embeddings, z, batch_size=16):
    """Run the generator chain on (N, 1024) embeddings and (N, z_dim) noise.

    Returns one float32 array in [-1, 1] per stage: [(N,64,64,3)] or [(N,64,64,3), (N,256,256,3)].
    """
    run = _compiled_chain(tuple(generators))
    outputs = [[] for _ in generators]
    for start in range(0, len(embeddings), batch_size):
        e = np.asarray(embeddings[start : start + batch_size], dtype="float32")
        for out, images in zip(outputs, run(e, np.asarray(z[start : start + batch_size], dtype="float32"))):
            out.append(np.asarray(images))
    return [np.concatenate(o) for o in outputs]


_last_chain = [None, None]  # (generators, compiled chain) of the latest call


def _compiled_chain(generators):
    """The chain as one tf.function, about twice as fast as calling the models eagerly on a CPU; the latest
    one is kept, since training samples with the same models every few epochs."""
    import tensorflow as tf

    last = _last_chain[0]
    if last is not None and len(last) == len(generators) and all(a is b for a, b in zip(last, generators)):
        return _last_chain[1]

    def chain(embeddings, z):
        images, _ = generators[0]([embeddings, z], training=False)
        outputs = [images]
        for gen in generators[1:]:
            images, _ = gen([embeddings, images], training=False)
            outputs.append(images)
        return outputs

    run = tf.function(chain, reduce_retracing=True)
    _last_chain[:] = generators, run
    return run
