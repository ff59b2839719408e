"""R-precision, the field's conditioning metric (AttnGAN, DM-GAN), scored by an evaluator trained apart from the GAN
(stackgan.metrics.evaluator): for each generated image, the caption it was drawn from is ranked by cosine score among
CANDIDATES = 100 captions, itself and 99 drawn at random from test images of OTHER classes; a hit when it ranks
first. The mean hit rate is reported over folds, mean and standard deviation, as the papers do.

The same protocol on the real test images of the same rows, with the same negatives, is the ceiling: what a perfect
generator could reach with this evaluator. A random ranking scores 1 / CANDIDATES ('chance', the field's figure), but
an image unrelated to its caption scores more where the classes are few: all 99 wrong captions come from other
classes, so an image that happens to show the caption's class wins, about 1 / classes of the time. That level is
measured too ('unrelated': each real test image scored against the captions of UNRELATED_DRAWS other rows drawn at
random).
"""

import os

import numpy as np

from stackgan import io, layout
from stackgan.cli import UserError

CANDIDATES = 100
CHANCE = 1.0 / CANDIDATES
FOLDS = 10
UNRELATED_DRAWS = 10  # captions of other rows per real image, for the unrelated-image level


def mismatched_captions(class_ids, rows, captions_per_row, seed=0, count=CANDIDATES - 1):
    """For each row in `rows`, `count` (row, caption) pairs drawn at random from distinct rows of another class:
    int64 arrays (len(rows), count) of rows and of caption numbers (all 0 when captions_per_row is 0, the mean)."""
    class_ids = np.asarray(class_ids)
    rows = np.asarray(rows, np.int64)
    rng = np.random.default_rng([seed, 97])
    negative_rows = np.empty((len(rows), count), np.int64)
    for c in np.unique(class_ids[rows]):
        pool = np.flatnonzero(class_ids != c)
        if not len(pool):
            raise UserError("the split has a single class: R-precision draws its 99 wrong captions from other classes")
        for m in np.flatnonzero(class_ids[rows] == c):  # distinct rows for each image, where there are enough
            negative_rows[m] = rng.choice(pool, count, replace=len(pool) < count)
    if captions_per_row:
        return negative_rows, rng.integers(0, captions_per_row, negative_rows.shape)
    return negative_rows, np.zeros_like(negative_rows)


def ranked_first(image_features, true_text, text_table, negative_rows, negative_captions, chunk=1024):
    """bool (M,): whether each image's own caption (true_text (M, d)) scores above all its negatives, read from
    text_table (rows, captions, d) at (negative_rows, negative_captions). Every vector is a unit vector."""
    hits = np.empty(len(image_features), bool)
    for s in range(0, len(image_features), chunk):
        img = image_features[s : s + chunk]
        own = np.sum(img * true_text[s : s + chunk], axis=1)
        negatives = text_table[negative_rows[s : s + chunk], negative_captions[s : s + chunk]]
        hits[s : s + chunk] = own > np.einsum("md,mkd->mk", img, negatives).max(axis=1)
    return hits


def fold_statistics(hits, folds=FOLDS, seed=0):
    """(mean, std, folds used): the hit rate over all images, and the standard deviation of the hit rates of `folds`
    parts of (nearly) equal size, the images in a random order, as the papers report it; fewer folds when there are
    fewer images."""
    hits = np.asarray(hits, np.float64)
    folds = max(1, min(int(folds), len(hits)))
    order = np.random.default_rng([seed, 41]).permutation(len(hits))
    scores = [part.mean() for part in np.array_split(hits[order], folds)]
    return float(hits.mean()), float(np.std(scores)), folds


def list_generated(images_dir, n_rows, split, data_dir):
    """(row indices (M,), paths, image size) of generate.py's OUT/{index:05d}_{sample}.png, checked without decoding
    the pixels: a folder, such names, indices within the split, images of one size."""
    from PIL import Image

    if not os.path.isdir(images_dir):
        raise UserError(f"--images {images_dir} is not a folder; give the --out folder of generate.py")
    if os.path.isfile(layout.generated_extras(images_dir)["captions"]):  # generate.py --caption writes it
        raise UserError(
            f"{images_dir} was drawn from captions (it holds captions.txt), not from rows of the {split} split; "
            f"R-precision needs `python generate.py --data-dir {data_dir} --out DIR` without --caption"
        )
    found = io.generated_images(images_dir)
    if not found:
        raise UserError(
            f"{images_dir} holds no {{index:05d}}_{{sample}}.png images; write them with "
            f"`python generate.py --data-dir {data_dir} --out {images_dir}` (R-precision needs the test row of each)"
        )
    indices = np.array([i for i, _, _ in found], np.int64)
    if indices.max() >= n_rows:
        raise UserError(
            f"{images_dir} has an image for row {indices.max()} but the {split} split of {data_dir} has only "
            f"{n_rows} rows; pass the --data-dir/--split that generate.py drew from"
        )
    sizes = {}
    for _, _, path in found:
        try:
            with Image.open(path) as im:
                sizes.setdefault(im.size, path)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise UserError(f"{path} is not a readable image ({type(err).__name__}); remove or replace it") from None
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h} ({os.path.basename(p)})" for (w, h), p in sorted(sizes.items()))
        raise UserError(f"{images_dir} mixes image sizes {shown}; evaluate one generate.py run at a time")
    (width, height), _ = sizes.popitem()
    if width != height:
        raise UserError(f"{images_dir} holds {width}x{height} images; generate.py writes square ones")
    return indices, [p for _, _, p in found], width


def image_features_of(paths, evaluator, batch_size=256):
    """Unit features of image files, read batch by batch (a CUB-sized folder need not fit in memory)."""
    return np.concatenate(
        [
            evaluator.image_features(np.stack([io.load_image(p) for p in paths[s : s + batch_size]]))
            for s in range(0, len(paths), batch_size)
        ]
    )


def check_caption_index(caption_index, captions_per_row, split, data_dir):
    if caption_index != "mean" and not 0 <= int(caption_index) < captions_per_row:
        raise UserError(
            f"--caption-index {caption_index} is out of range: the {split} split of {data_dir} has "
            f"{captions_per_row} captions per image, so use 0..{captions_per_row - 1} or 'mean' (what generate.py used)"
        )


def score_folder(images_dir, data_dir, get_evaluator, split="test", caption_index=0, folds=FOLDS, seed=0):
    """R-precision of generate.py's images in images_dir, drawn from `caption_index` (a number or 'mean') of the
    split's rows, and of the real images of the same rows (the ceiling). get_evaluator() is called once the input is
    checked (it may train one). Returns a dict of the numbers."""
    from stackgan.datasets.cache import load_dataset, load_split_lists

    filenames, class_ids, embeddings = load_split_lists(data_dir, split)
    check_caption_index(caption_index, embeddings.shape[1], split, data_dir)
    indices, paths, size = list_generated(images_dir, len(filenames), split, data_dir)
    if len(np.unique(class_ids)) < 2:
        raise UserError(
            f"the {split} split of {data_dir} has a single class; R-precision draws wrong captions from others"
        )
    evaluator = get_evaluator()

    if caption_index == "mean":
        text_table = evaluator.text_features(np.asarray(embeddings, np.float32).mean(axis=1))[:, None]
        own_caption = np.zeros(len(filenames), np.int64)
        per_row = 0
    else:
        text_table = evaluator.text_features(embeddings)
        own_caption = np.full(len(filenames), int(caption_index), np.int64)
        per_row = embeddings.shape[1]
    negative_rows, negative_captions = mismatched_captions(class_ids, indices, per_row, seed)
    true_text = text_table[indices, own_caption[indices]]
    hits = ranked_first(image_features_of(paths, evaluator), true_text, text_table, negative_rows, negative_captions)
    mean, std, used = fold_statistics(hits, folds, seed)

    real = load_dataset(data_dir, split, evaluator.image_size)  # rows whose image could not be read are left out
    real_row = {name: i for i, name in enumerate(real.filenames)}
    have = np.array([filenames[i] in real_row for i in indices], bool)
    real_features = evaluator.image_features(real.images)
    of_row = np.array([real_row[filenames[i]] for i in indices[have]], np.int64)
    real_hits = ranked_first(
        real_features[of_row], true_text[have], text_table, negative_rows[have], negative_captions[have]
    )
    real_mean, real_std, _ = fold_statistics(real_hits, folds, seed)

    rows = np.repeat(np.unique(indices[have]), UNRELATED_DRAWS)  # each real image against other rows' captions
    unrelated = None
    if len(filenames) > 1:
        shift = np.random.default_rng([seed, 43]).integers(1, len(filenames), len(rows))
        partner = (rows + shift) % len(filenames)
        other_rows, other_captions = mismatched_captions(class_ids, partner, per_row, seed + 1)
        unrelated_hits = ranked_first(
            real_features[[real_row[filenames[i]] for i in rows]],
            text_table[partner, own_caption[partner]],
            text_table,
            other_rows,
            other_captions,
        )
        unrelated = float(unrelated_hits.mean())
    return {
        "r_precision": mean,
        "std": std,
        "folds": used,
        "images": len(paths),
        "rows": int(len(np.unique(indices))),
        "image_size": int(size),
        "split": split,
        "caption_index": caption_index,
        "candidates": CANDIDATES,
        "real_r_precision": real_mean,
        "real_std": real_std,
        "real_images": int(len(real_hits)),
        "chance": CHANCE,
        "unrelated": unrelated,
        "evaluator": evaluator.path,
        "evaluator_trained_s": evaluator.trained_s,
        "evaluator_size": evaluator.image_size,
    }


def describe(r, images_dir, data_dir):
    """The one-paragraph text report of score_folder's numbers."""
    caption = "the mean caption" if r["caption_index"] == "mean" else f"caption {r['caption_index']}"
    where = (
        f"trained now in {r['evaluator_trained_s']:.0f} s and cached in {r['evaluator']}"
        if r["evaluator_trained_s"] is not None and r["evaluator"]
        else "trained now in {:.0f} s, not cached".format(r["evaluator_trained_s"])
        if r["evaluator_trained_s"] is not None
        else f"cached in {r['evaluator']}"
    )
    return (
        f"R-precision {r['r_precision']:.3f} ± {r['std']:.3f} ({r['images']} images of {images_dir}, "
        f"{r['image_size']}x{r['image_size']}, {caption} of {r['rows']} {r['split']} rows of {data_dir}; each image's "
        f"own caption ranked first among {r['candidates']}, 99 from other classes; {r['folds']} folds)\n"
        f"real {r['split']} images of the same rows (the ceiling): {r['real_r_precision']:.3f} ± {r['real_std']:.3f} "
        f"({r['real_images']} images); chance {r['chance']:.3f} (a random ranking)"
        + (
            f", {r['unrelated']:.3f} for real images scored against another row's caption (all 99 wrong captions "
            f"come from other classes, so an image of the caption's class wins)"
            if r["unrelated"] is not None
            else ""
        )
        + "\n"
        f"evaluator: a {r['evaluator_size']}x{r['evaluator_size']} dual encoder trained on the real training images "
        f"and captions only, {where}"
    )
