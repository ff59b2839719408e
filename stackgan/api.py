"""The Python API: a trained StackGAN from its results folder, drawing birds (or flowers) from sentences or
embeddings.

    import stackgan
    birds = stackgan.StackGAN.from_preset("results/demo")
    images = birds.generate(["a small red bird with dark wings"], samples=4, seed=0)   # uint8 (1, 4, 256, 256, 3)
    flowers = stackgan.StackGAN.from_preset("results/demo_flowers")                 # after --demo --dataset flowers

A results folder is the "preset" (as keras-hub's text-to-image tasks call a folder of configs and weights): the
stage{1,2}_config.json and stage{1,2}_gen.weights.h5 that training exports, and text_encoder.* for captions.
generate.py and app.py use this class; nothing here trains.
"""

import json
import os
import warnings

import numpy as np

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import demo_flags
from stackgan.datasets import dataset_of, get_dataset
from stackgan.datasets.loaders import check_embeddings


class StackGAN:
    """Trained generators (Stage-I, or Stage-I + Stage-II) and, when there is one, the caption encoder, read from a
    results folder. Networks are built on first use, in float32 whatever Keras' global dtype policy is."""

    def __init__(self, results_dir, stage, encoder_dir=None, needed_by="StackGAN"):
        self.results_dir, self.stage = results_dir, int(stage)
        self.encoder_dir = encoder_dir or results_dir
        self.needed_by = needed_by
        # Reads (and checks) the configs now: a missing or untrained folder fails here, in one line.
        self.configs = [read_stage_config(results_dir, s, needed_by) for s in range(1, self.stage + 1)]
        self._generators = None
        self._encoder = None
        self._neighbours = None
        self._probe = None

    @classmethod
    def from_preset(cls, directory, stage=None, encoder_dir=None, needed_by="StackGAN.from_preset"):
        """The StackGAN trained into `directory`: Stage-II when its weights are there (or stage=2), else Stage-I.
        `needed_by` names the caller in the message for a folder without trained weights."""
        if stage is None:
            stage = 2 if has_stage(directory, 2) else 1
        if stage not in (1, 2):
            raise UserError(f"stage must be 1 or 2, got {stage!r}")
        return cls(directory, stage, encoder_dir, needed_by)

    # -- what it is -------------------------------------------------------------------------------------------
    @property
    def config(self):
        """The config of the last stage (widths, the data it was trained on)."""
        return self.configs[-1]

    @property
    def embedding_dim(self):
        return int(self.config.get("embedding_dim", 1024))

    @property
    def z_dim(self):
        return int(self.configs[0].get("z_dim", 100))

    @property
    def image_size(self):
        return 64 if self.stage == 1 else 256

    @property
    def data_dir(self):
        """The dataset the generators were trained on (as recorded in their config)."""
        return self.config.get("data_dir")

    @property
    def dataset(self):
        """The Dataset the generators were trained on (birds or flowers: their config's, else found from data_dir)."""
        name = self.config.get("dataset")
        return get_dataset(name) if name else dataset_of(self.data_dir)

    @property
    def has_encoder(self):
        return all(os.path.isfile(p) for p in layout.text_encoder_files(self.encoder_dir))

    @property
    def generators(self):
        if self._generators is None:
            from stackgan.runtime import dtype_policy, import_tensorflow

            import_tensorflow()
            with dtype_policy("off"):
                self._generators, _ = load_generators(self.results_dir, self.stage, configs=self.configs)
        return self._generators

    @property
    def text_encoder(self):
        """The caption encoder (stackgan.text.encoder.TextEncoder); a UserError naming the training command when
        there is none."""
        if self._encoder is None:
            from stackgan.runtime import import_tensorflow
            from stackgan.text.encoder import TextEncoder

            import_tensorflow()
            self._encoder = TextEncoder(self.encoder_dir)
            if self._encoder.embedding_dim != self.embedding_dim:
                raise UserError(
                    f"the text encoder in {self.encoder_dir} writes {self._encoder.embedding_dim}-d vectors but the "
                    f"generator was trained on {self.embedding_dim}-d embeddings; train the encoder on the "
                    f"generator's data"
                )
        return self._encoder

    # -- prompts -> vectors -----------------------------------------------------------------------------------
    def encode(self, captions, labels=None):
        """Captions (a string or a list of strings) -> float32 (N, embedding_dim) vectors, checked once."""
        return self.text_encoder.encode([captions] if isinstance(captions, str) else list(captions), labels)

    def vectors(self, prompts):
        """A caption, a list of captions, or embeddings (D,) / (N, D) -> float32 (N, D)."""
        if isinstance(prompts, str) or (isinstance(prompts, (list, tuple)) and prompts and isinstance(prompts[0], str)):
            return self.encode(prompts)
        try:
            array = np.asarray(prompts, dtype=np.float32)
        except (TypeError, ValueError):
            raise UserError(f"prompts must be captions or numeric embeddings, got {type(prompts).__name__}") from None
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2:
            raise UserError(f"embeddings of shape {array.shape}: expected (N, {self.embedding_dim}), or captions")
        check_embeddings(array, "prompts", self.embedding_dim, fix="pass captions or this generator's embeddings")
        return array

    # -- drawing ----------------------------------------------------------------------------------------------
    def sample(self, vectors, samples=1, seed=0, condition_seed=None, batch_size=64):
        """Yield (rows, per-stage uint8 images) batch by batch for vectors (N, D): row k of the output is
        vector k // samples, sample k % samples. `seed` draws the noise z, `condition_seed` (default: seed) the
        conditioning-augmentation noise; the same seeds and batch_size give the same images."""
        from stackgan.models import conditioning_layers

        generators = self.generators
        condition_seed = seed if condition_seed is None else condition_seed
        for s, gen in enumerate(generators):
            for layer in conditioning_layers(gen):
                layer.reseed(condition_seed, stream=s)
        n, per = len(vectors), int(samples)
        z = np.random.default_rng(int(seed)).standard_normal((n * per, self.z_dim)).astype(np.float32)
        rows = np.repeat(np.arange(n), per)
        for start in range(0, n * per, batch_size):
            part = rows[start : start + batch_size]
            images = sample_images(generators, vectors[part], z[start : start + batch_size], batch_size)
            yield part, [io.to_uint8(stage) for stage in images]

    def generate(self, prompts, samples=1, seed=0, condition_seed=None, batch_size=64, all_stages=False):
        """Birds for prompts (captions or embeddings): uint8 (N, samples, H, W, 3) of the last stage, or with
        all_stages=True a list with one such array per stage (64x64, then 256x256)."""
        if not isinstance(samples, (int, np.integer)) or samples < 1:
            raise UserError(f"samples must be a whole number of at least 1, got {samples!r}")
        vectors = self.vectors(prompts)
        parts = [[] for _ in range(self.stage)]
        for _, outputs in self.sample(vectors, samples, seed, condition_seed, batch_size):
            for part, images in zip(parts, outputs):
                part.append(images)
        stages = [np.concatenate(p).reshape((len(vectors), samples) + p[0].shape[1:]) for p in parts]
        return stages if all_stages else stages[-1]

    # -- what the model heard ---------------------------------------------------------------------------------
    def heard(self, caption, neighbours=3, label=None):
        """How the encoder read a caption: the text it read, the words it could not read, what its vector encodes
        on a synthetic set (the birds' body colour and wing shade, the flowers' petal colour and form: 'colour' and
        'wings' or 'petals'), and the nearest training captions by cosine to the dataset's own embeddings, with their
        scores. `label` names the caption in the message for a bad one (default 'caption 1')."""
        from stackgan.text.encoder import normalize_caption, unknown_words

        vector = self.encode(caption, None if label is None else [label])[0]
        alphabet = self.text_encoder.config["alphabet"]
        result = {
            "caption": caption,
            "read_as": normalize_caption(caption, alphabet),
            "unknown_words": unknown_words(caption, alphabet),
            "colour": None,
            "wings": None,
            "nearest": self.nearest_captions(vector, neighbours),
        }
        if self.data_dir and layout.is_synthetic(self.data_dir) and self.dataset.name == "flowers":
            from stackgan.metrics.petals import describe_vector

            result.update(describe_vector(vector))
        else:
            probe = self._attribute_probe()
            if probe is not None:
                (body,), (wing,) = probe.read(vector[None])
                result["colour"], result["wings"] = self._probe_names[0][body], self._probe_names[1][wing]
        return result

    def _attribute_probe(self):
        """On synthetic birds, an EmbeddingProbe fitted on the training split's embeddings and attributes (None
        elsewhere, or where the set has no attribute files); fitted once."""
        if self._probe is None:
            self._probe = False
            if self.data_dir and layout.is_synthetic(self.data_dir):
                from stackgan.datasets.cache import load_split_lists
                from stackgan.metrics.attributes import EmbeddingProbe, set_attributes

                try:
                    filenames, _, embeddings = load_split_lists(self.data_dir, "train")
                    asked = set_attributes(self.data_dir, filenames)
                except UserError:
                    return None
                self._probe = EmbeddingProbe(embeddings, asked)
                self._probe_names = asked.hues, asked.shades
        return self._probe or None

    def nearest_captions(self, vector, k=3):
        """[{'caption', 'image', 'score'}] of the k training captions whose embeddings are nearest (cosine) to
        vector; [] when the training data is not there."""
        if self._neighbours is None:
            self._neighbours = _caption_index(self.data_dir)
        if self._neighbours is None:
            return []
        unit, texts, names = self._neighbours
        v = np.asarray(vector, np.float32)
        scores = unit @ (v / max(float(np.linalg.norm(v)), 1e-8))
        best = np.argsort(-scores)[:k]
        return [dict(caption=texts[i], image=names[i], score=float(scores[i])) for i in best]


def has_stage(results_dir, stage):
    """True when results_dir holds the exported config and generator weights of that stage."""
    return all(os.path.isfile(p) for p in layout.generator_files(results_dir, stage))


def _caption_index(data_dir):
    """(unit embeddings (M, D), caption texts, image names) of every training caption that has both, or None."""
    if not data_dir or not os.path.isdir(dataset_of(data_dir).text_dir(data_dir)):
        return None
    import warnings

    from stackgan.datasets.captions import load_caption_split

    try:
        with warnings.catch_warnings():  # images without a caption file are simply not candidates
            warnings.simplefilter("ignore")
            split = load_caption_split(data_dir, "train")
    except UserError:
        return None
    vectors, texts, names = [], [], []
    for row, (name, captions) in enumerate(zip(split.filenames, split.captions)):
        for k, text in enumerate(captions[: split.embeddings.shape[1]]):
            vectors.append((row, k))
            texts.append(text)
            names.append(name)
    if not vectors:
        return None
    rows, ks = np.asarray(vectors).T
    matrix = np.asarray(split.embeddings[rows, ks], np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8), texts, names


# ---------------------------------------------------------------------------
# Trained generators from a results folder, run as one compiled chain (also what training's grids and the demo use)
# ---------------------------------------------------------------------------
def demo_or_results_flag(results_dir, stage):
    """The flags that train into results_dir: --demo (and its --dataset) for a demo's folder."""
    return demo_flags(results_dir) or f"--results-dir {results_dir}"


def read_stage_config(results_dir, stage, needed_by="this command"):
    """The exported config of a stage, checked to have its generator weights beside it."""
    path, weights = layout.generator_files(results_dir, stage)
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


def load_generator_weights(model, path, stage):
    """Load a generator's weights file; a file that does not fit the generator its config describes is one line."""
    with warnings.catch_warnings():  # Keras warns about each group a file of another layout lacks
        warnings.simplefilter("ignore")
        try:
            model.load_weights(path)
            return
        except Exception as err:
            failure = type(err).__name__
    raise UserError(
        f"{path} does not fit the Stage-{stage} generator described by "
        f"{os.path.basename(layout.config_path(os.path.dirname(path), stage))} ({failure}); "
        f"retrain with `python stage{stage}.py` (results of earlier versions of this project need retraining)"
    )


def load_generators(results_dir, stage, needed_by="this command", configs=None):
    """Trained generators up to `stage`: ([stage1_gen] or [stage1_gen, stage2_gen], config of the last stage).
    `configs`, one per stage as read_stage_config gave them, saves reading them again."""
    from stackgan import models

    configs = configs or [read_stage_config(results_dir, s, needed_by) for s in range(1, stage + 1)]
    generators = []
    for s, config in enumerate(configs, 1):
        gen = models.build_generator(s, config)
        load_generator_weights(gen, layout.weights_path(results_dir, s, "gen"), s)
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
