"""How well the caption encoder reads: held-out numbers on the test split against a bag-of-words baseline, and on the
synthetic birds (or flowers) whether images drawn from wordings it never saw have the colour those wordings ask
for."""

import re

import numpy as np

from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import dataset_of, synthetic, synthetic_flowers
from stackgan.datasets.captions import load_caption_split
from stackgan.metrics import attributes, petals
from stackgan.text.encoder import normalize_caption
from stackgan.text.encoder import encode, encode_captions, load_encoder
from stackgan.text.pairs import caption_rows, targets_for, training_pairs


def _unit(x):
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def retrieval_metrics(pred, embeddings, images, indices, ks=(1, 10)):
    """Held-out quality of caption vectors pred (N, D) of captions (images[n], indices[n]): mean cosine to the
    caption's own embedding ('cosine'; the image mean where an image has more captions than embeddings), to
    the image's mean embedding ('cosine_mean'), the caption -> image retrieval recall R@k among all images
    ranked by cosine to their mean embedding, and 'alignment_gain': the mean cosine to embedding k minus that
    to the image's other embeddings (near 0 when caption k and embedding k are unrelated)."""
    pred = _unit(pred)
    emb = _unit(embeddings)
    means = _unit(np.asarray(embeddings, np.float32).mean(axis=1))
    own = targets_for(np.asarray(embeddings), images, indices, "aligned")
    cos_own = np.sum(pred * _unit(own), axis=1)
    per_caption = np.einsum("nd,ncd->nc", pred, emb[images])  # cosine to each of the image's embeddings
    c = emb.shape[1]
    aligned = indices < c
    cos_k = per_caption[np.arange(len(pred)), np.minimum(indices, c - 1)]
    others = (per_caption.sum(axis=1) - cos_k) / max(c - 1, 1)
    gain = float((cos_k - others)[aligned].mean()) if c > 1 and aligned.any() else 0.0
    ranks = np.empty(len(pred), np.int64)
    for start in range(0, len(pred), 2048):
        scores = pred[start : start + 2048] @ means.T
        mine = scores[np.arange(len(scores)), images[start : start + 2048]]
        ranks[start : start + 2048] = (scores > mine[:, None]).sum(axis=1)
    result = {
        "captions": int(len(pred)),
        "images": int(len(embeddings)),
        "cosine": float(cos_own.mean()),
        "cosine_mean": float(np.sum(pred * means[images], axis=1).mean()),
        "alignment_gain": gain,
    }
    for k in ks:
        result[f"R@{k}"] = float((ranks < k).mean())
    return result


class BagOfWords:
    """The trivial baseline: which words a caption holds (binary, the vocab_size most frequent training words)
    + a linear map to the embeddings fitted by ridge regression."""

    def __init__(self, vocab_size=5000, ridge=1.0):
        self.vocab_size, self.ridge = vocab_size, ridge

    @staticmethod
    def words(text):
        return re.findall(r"[a-z0-9]+", text)

    def features(self, texts):
        x = np.zeros((len(texts), len(self.vocab) + 1), np.float32)
        x[:, -1] = 1.0  # bias
        for i, t in enumerate(texts):
            for w in self.words(t):
                j = self.vocab.get(w)
                if j is not None:
                    x[i, j] = 1.0
        return x

    def fit(self, texts, targets):
        counts = {}
        for t in texts:
            for w in set(self.words(t)):
                counts[w] = counts.get(w, 0) + 1
        common = sorted(counts, key=lambda w: (-counts[w], w))[: self.vocab_size]
        self.vocab = {w: i for i, w in enumerate(common)}
        n = len(self.vocab) + 1
        xtx, xty = np.zeros((n, n), np.float64), np.zeros((n, targets.shape[1]), np.float64)
        for start in range(0, len(texts), 4096):  # in chunks: the real training split has 88,550 captions
            x = self.features(texts[start : start + 4096]).astype(np.float64)
            xtx += x.T @ x
            xty += x.T @ targets[start : start + 4096]
        self.weights = np.linalg.solve(xtx + self.ridge * np.eye(n), xty).astype(np.float32)
        return self

    def predict(self, texts):
        return np.concatenate(
            [self.features(texts[s : s + 4096]) @ self.weights for s in range(0, len(texts), 4096)]
            or [np.zeros((0, self.weights.shape[1]), np.float32)]
        )


def synthetic_wording_accuracy(predict, split, asked, probe, seed=0):
    """On the synthetic birds: the fraction of vectors whose body colour (and wing shade; and both, among the captions
    of pairs never seen in training) is the bird's, read by `probe` (attributes.EmbeddingProbe fitted on the
    training split), for the test captions and for captions written with HELDOUT_TEMPLATES. predict: normalized
    texts -> vectors; split: a CaptionSplit of a synthetic set; asked: its Attributes."""
    rng = np.random.default_rng([seed, 5])
    held = [synthetic.heldout_captions(asked.hues[b], asked.shades[w], rng) for b, w in zip(asked.body, asked.wing)]
    result = {}
    for name, caps in (("test_wording", split.captions), ("heldout_wording", held)):
        texts, images, _ = caption_rows(caps)
        body, wing = probe.read(predict([normalize_caption(t) for t in texts]))
        right = (body == asked.body[images], wing == asked.wing[images])
        result[f"{name}_colour"] = float(np.mean(right[0]))
        result[f"{name}_wing"] = float(np.mean(right[1]))
        unseen = asked.unseen[images]
        if unseen.any():  # both attributes of the pairs that no training caption names
            result[f"{name}_unseen_both"] = float(np.mean((right[0] & right[1])[unseen]))
    return result


def evaluate_encoder(results_dir, data_dir):
    """Held-out numbers on the test split for the trained encoder and for the bag-of-words baseline (fitted on
    the training split with the encoder's target): {'encoder': {...}, 'baseline': {...}, 'data_dir', ...}."""
    model, config = load_encoder(results_dir)
    train_split = load_caption_split(data_dir, "train")
    test = load_caption_split(data_dir, "test")
    texts, images, indices = caption_rows(test.captions)
    norm = [normalize_caption(t, config["alphabet"]) for t in texts]
    baseline = BagOfWords().fit(*training_pairs(train_split, config))
    predictors = {
        "encoder": lambda ts: encode(model, config, [t[: config["max_length"]] for t in ts]),
        "baseline": baseline.predict,
    }
    report = {"data_dir": data_dir, "results_dir": results_dir, "loss": config["loss"], "target": config["target"]}
    probe = None
    if layout.is_synthetic(data_dir) and dataset_of(data_dir).name == "birds":
        probe = attributes.EmbeddingProbe(
            train_split.embeddings, attributes.set_attributes(data_dir, train_split.filenames)
        )
        test_attributes = attributes.set_attributes(data_dir, test.filenames)
    for name, predict in predictors.items():
        report[name] = retrieval_metrics(predict(norm), test.embeddings, images, indices)
        if probe is not None:
            report[name].update(synthetic_wording_accuracy(predict, test, test_attributes, probe))
        elif layout.is_synthetic(data_dir):  # the synthetic flowers
            report[name].update(petals.wording_accuracy(predict, test))
    return report


def heldout_caption_accuracy(results_dir, data_dir, stage, batch_size=64, seed=0):
    """For every synthetic test bird, one caption per held-out template (synthetic.HELDOUT_TEMPLATES, never in
    the caption files nor in training) for its body hue and wing shade (for every synthetic test flower: its petal
    colour and form, from synthetic_flowers.HELDOUT_TEMPLATES), encoded by the encoder in results_dir and
    drawn by the trained Stage-1 (stage 1) or Stage-I + Stage-II (stage 2) generators there. Returns
    {'from_caption': attribute_report of those images (with its one-line 'summary'), 'from_embedding': the same
    generators drawing the bird's own
    embeddings (embedding k for template k) with the same noise, 'images', 'stage'}."""
    import keras

    from stackgan.datasets import loaders
    from stackgan import api

    if not layout.is_synthetic(data_dir):
        raise UserError(
            f"{data_dir} is not the synthetic bird set nor the synthetic flower set; held-out wording needs one "
            "(use --demo)"
        )
    paths = layout.split_files(data_dir, "test")
    dataset = dataset_of(data_dir)
    metrics = dataset.attributes()
    asked = metrics.split_attributes(data_dir, "test")
    embeddings = loaders.load_embeddings(paths.embeddings)
    rng = np.random.default_rng([seed, 11])
    if dataset.name == "flowers":  # the petal colour and form of each class
        written = synthetic_flowers
        pairs = [synthetic_flowers.colour_and_form(c) for c in loaders.load_class_ids(paths.class_info)]
        texts = [t for c, f in pairs for t in written.heldout_captions(int(c), int(f), rng)]
    else:  # the body hue and wing shade of each bird
        written = synthetic
        pairs = zip(asked.body, asked.wing)
        texts = [t for b, w in pairs for t in written.heldout_captions(asked.hues[b], asked.shades[w], rng)]
    per = len(written.HELDOUT_TEMPLATES)
    items = np.repeat(np.arange(len(embeddings)), per)
    own = embeddings[items, np.tile(np.arange(per), len(embeddings)) % embeddings.shape[1]]
    from_text = encode_captions(texts, results_dir)

    keras.utils.set_random_seed(seed)
    generators, _ = api.load_generators(results_dir, stage, needed_by="heldout_caption_accuracy")
    z = rng.standard_normal((len(texts), int(generators[0].inputs[1].shape[-1]))).astype(np.float32)
    result = {"images": len(texts), "stage": int(stage)}
    for key, vectors in (("from_caption", from_text), ("from_embedding", own)):
        images = api.sample_images(generators, vectors, z, batch_size)[-1]
        result[key] = metrics.attribute_report(images, asked.take(items))
        result[key]["summary"] = metrics.describe(result[key])
    return result
