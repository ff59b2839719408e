"""The diagnostics behind docs/experiments.md's "Drawing the whole sentence": what a trained demo's networks do with
the body colour and the wing shade of the synthetic birds. They read the set's attribute files, as the metric does.

    python docs/diagnose.py discriminator RESULTS_DIR DATA_DIR [--stage 2]
        does D check the text's wing and colour? Its logit for each real test image with its own text against
        the text of a bird of the same colour and another wing shade, and of another colour and the same wing
    python docs/diagnose.py condition RESULTS_DIR DATA_DIR
        does the Stage-I conditioning vector carry both? A linear probe from the CA mean, and from a sampled c
        (mean + sigma * noise), fitted on the training embeddings, scored on the test ones
    python docs/diagnose.py stages RESULTS_DIR DATA_DIR [--recalibrate]
        Stage-I against Stage-II on the same captions and noise (two captions per test bird); where Stage-II loses a
        wing that Stage-I drew right, what it draws instead; --recalibrate: the same after the batch-norm statistics
        of both generators are recomputed for their exported (averaged) weights
"""

import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _partners(asked, same_body):
    """For each image, another of the same colour and another wing (same_body) or of another colour and the same
    wing; itself where there is none."""
    rows = []
    for i in range(len(asked.body)):
        body_ok = (asked.body == asked.body[i]) == same_body
        wing_ok = (asked.wing == asked.wing[i]) != same_body
        candidates = np.flatnonzero(body_ok & wing_ok)
        rows.append(candidates[i % len(candidates)] if len(candidates) else i)
    return np.array(rows)


def discriminator(results, data_dir, stage):
    from stackgan import models
    from stackgan.datasets.cache import load_dataset
    from stackgan.metrics import attributes

    with open(os.path.join(results, f"stage{stage}_config.json")) as f:
        config = json.load(f)
    with open(os.path.join(results, "stage1_config.json")) as f:
        config.update({k: v for k, v in json.load(f).items() if k in ("z_dim", "condition_dim")})
    dis = models.build_discriminator(
        stage, config, text_head=config.get("text_loss", 0) > 0, matching=config.get("matching", "concat")
    )
    dis.load_weights(os.path.join(results, f"stage{stage}_dis.weights.h5"))
    test = load_dataset(data_dir, "test", 64 if stage == 1 else 256)
    asked = attributes.set_attributes(data_dir, test.filenames)
    images = test.images.astype("float32") / 127.5 - 1.0
    text = test.embeddings[:, 0]

    def logits(embeddings):
        out = dis([images, embeddings], training=False)
        return np.asarray(out[0] if isinstance(out, (list, tuple)) else out).ravel()

    own = logits(text)
    for name, same_body in (("same colour, other wing", True), ("other colour, same wing", False)):
        other = logits(text[_partners(asked, same_body)])
        print(
            f"text of a bird of {name}: mean logit {other.mean():+.2f} (own text {own.mean():+.2f}); "
            f"the own text scores higher for {np.mean(own > other):.2f} of {len(own)} test images"
        )


def condition(results, data_dir):
    import keras

    from stackgan import api
    from stackgan.datasets.cache import load_split_lists
    from stackgan.metrics import attributes

    (gen,), _ = api.load_generators(results, 1)
    head = keras.Model(gen.inputs[0], gen.get_layer("ca_leaky_relu").output)
    rng = np.random.default_rng(0)
    sets = {}
    for split in ("train", "test"):
        names, _, embeddings = load_split_lists(data_dir, split)
        mean_logsigma = np.asarray(head(np.asarray(embeddings[:, 0])))
        dim = mean_logsigma.shape[1] // 2
        mean, sigma = mean_logsigma[:, :dim], np.exp(mean_logsigma[:, dim:])
        sampled = mean + sigma * rng.standard_normal(mean.shape)
        sets[split] = (mean, sampled, attributes.set_attributes(data_dir, names))
        if split == "train":
            print(f"CA on the training captions: mean |mu| {np.abs(mean).mean():.3f}, mean sigma {sigma.mean():.3f}")
    for k, what in ((0, "the CA mean"), (1, "a sampled c")):
        for attribute in ("body", "wing"):
            x, xt = (np.c_[sets[s][k], np.ones(len(sets[s][k]))] for s in ("train", "test"))
            y = getattr(sets["train"][2], attribute)
            weights = np.linalg.lstsq(x, np.eye(y.max() + 1)[y], rcond=None)[0]
            right = np.mean((xt @ weights).argmax(axis=1) == getattr(sets["test"][2], attribute))
            print(f"{attribute} read by a linear probe from {what}: {right:.3f} of the test birds")


def stages(results, data_dir, recalibrate):
    import keras

    from stackgan import api
    from stackgan.datasets.cache import load_split_lists
    from stackgan.metrics import attributes

    names, _, embeddings = load_split_lists(data_dir, "test")
    asked = attributes.set_attributes(data_dir, names).take(np.repeat(np.arange(len(names)), 2))
    generators, _ = api.load_generators(results, 2)
    e = np.asarray(embeddings[:, :2]).reshape(-1, embeddings.shape[-1])
    z = np.random.default_rng(1).standard_normal((len(e), generators[0].inputs[1].shape[-1])).astype("float32")

    def report(label):
        images = api.sample_images(generators, e, z)
        for stage, im in enumerate(images, 1):
            print(f"{label}Stage-{'I' * stage}: {attributes.describe(attributes.attribute_report(im, asked))}")
        return [attributes.read_images(im, asked.hue_rgb, asked.shade_levels)[1] for im in images]

    first, second = report("")
    right = first == asked.wing
    print(
        f"wing right at Stage-I and lost at Stage-II: {np.mean(right & (second != asked.wing)):.3f} of the images; "
        f"wrong at Stage-I and right at Stage-II: {np.mean(~right & (second == asked.wing)):.3f}"
    )
    name = lambda w: asked.shades[w] if w >= 0 else "no wing"  # noqa: E731
    became = collections.Counter((name(a), name(b)) for a, b in zip(asked.wing[right], second[right]) if a != b)
    print(
        "where Stage-I drew the wing right, Stage-II drew:",
        ", ".join(f"{a} as {b} {n}" for (a, b), n in became.most_common()),
    )
    if recalibrate:
        _, _, train = load_split_lists(data_dir, "train")
        rng = np.random.default_rng(0)
        rows = rng.integers(0, len(train), 256)
        x = rng.standard_normal((256, generators[0].inputs[1].shape[-1])).astype("float32")
        text = np.asarray(train[rows, rng.integers(0, train.shape[1], 256)], np.float32)
        for gen in generators:  # moving statistics := those of 256 training-mode samples
            norms = [layer for layer in gen.layers if isinstance(layer, keras.layers.BatchNormalization)]
            for layer in norms:
                layer.momentum = 0.0
            gen([text, x], training=True)
            for layer in norms:
                layer.momentum = 0.99
            x = np.asarray(gen([text, x], training=False)[0])
        report("batch norm recomputed: ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("discriminator", "condition", "stages"))
    parser.add_argument("results_dir")
    parser.add_argument("data_dir")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1)
    parser.add_argument("--recalibrate", action="store_true")
    args = parser.parse_args()
    if args.command == "discriminator":
        discriminator(args.results_dir, args.data_dir, args.stage)
    elif args.command == "condition":
        condition(args.results_dir, args.data_dir)
    else:
        stages(args.results_dir, args.data_dir, args.recalibrate)


if __name__ == "__main__":
    main()
