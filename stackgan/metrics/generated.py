"""A folder of generate.py's images measured by its synthetic set's attribute metric (the birds' body and wing, the
flowers' petal colour: Dataset.attributes()), with the diversity of several samples of one embedding."""

import collections
import os

import numpy as np

from stackgan import io
from stackgan.cli import UserError


def diversity(images_by_index):
    """Mean absolute pixel distance (in [0, 1] units) between different samples of one embedding.

    `images_by_index`: {index: [uint8 image, ...]}. Averaged over pairs within an embedding, then
    over embeddings with at least two samples; None if there are none.
    """
    per_embedding = []
    for images in images_by_index.values():
        if len(images) < 2:
            continue
        x = np.stack(images).astype("float32") / 255.0
        d = [np.abs(x[i] - x[j]).mean() for i in range(len(x)) for j in range(i + 1, len(x))]
        per_embedding.append(np.mean(d))
    return float(np.mean(per_embedding)) if per_embedding else None


def evaluate_folder(images_dir, data_dir, split="test"):
    """The attribute_report of generate.py's output (OUT/{index:05d}_{sample}.png drawn from row `index` of the
    split of the synthetic set data_dir), with embeddings (how many rows), max_samples_per_embedding, diversity and
    image_size."""
    from stackgan.datasets import dataset_of

    if not os.path.isdir(images_dir):
        raise UserError(f"--images {images_dir} is not a folder; give the --out folder of generate.py")
    found = io.generated_images(images_dir)
    if not found:
        raise UserError(
            f"{images_dir} holds no {{index:05d}}_{{sample}}.png images; "
            f"write them with `python generate.py --out {images_dir}`"
        )
    metrics = dataset_of(data_dir).attributes()
    asked = metrics.split_attributes(data_dir, split)
    indices = np.array([i for i, _, _ in found])
    if indices.max() >= asked.rows:
        raise UserError(
            f"{images_dir} has images for embedding {indices.max()} but the {split} split of "
            f"{data_dir} has only {asked.rows}; pass the --data-dir/--split used by generate.py"
        )
    images = [io.load_image(p) for _, _, p in found]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise UserError(f"{images_dir} mixes image sizes {sorted(shapes)}; evaluate one generate.py run at a time")
    images = np.stack(images)
    report = metrics.attribute_report(images, asked.take(indices))
    by_index = collections.defaultdict(list)
    for (index, _, _), im in zip(found, images):
        by_index[index].append(im)
    report.update(
        embeddings=len(by_index),
        max_samples_per_embedding=max(len(v) for v in by_index.values()),
        diversity=diversity(by_index),
        image_size=int(images.shape[1]),
    )
    return report
