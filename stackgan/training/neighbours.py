"""Neighbours in caption-embedding space, found from the embeddings alone: hard wrong images for the matching-aware
discriminator, and mixed conditions for the generator.

Hard wrong images. A wrong pair (a real image with another image's text) teaches D to check the text against the
image. Wrong images of a random other class differ from the right one in many ways at once (on CUB another species,
on the synthetic birds with class = body hue another colour), so D can reject them by the most obvious attribute
alone. A hard wrong image is one whose captions describe *nearly* the same bird: the most similar images by the
cosine of their mean caption embeddings, leaving out those that the text cannot tell apart from the image itself
(nearer to it than its own captions are). On the synthetic birds these differ in one attribute (the same body with
another wing shade, or the same wing with another body); on CUB a similar species.

Mixed conditions. Two neighbours b and c of an image a that each differ from it in one respect, in different
respects, give a new description by analogy: e_b + e_c - e_a has b's difference and c's (a grey-winged red bird,
its white-winged neighbour and its grey-winged green neighbour give a white-winged green bird), possibly a
combination that no training image has. Where b and c differ from a in the same respect the analogy says nonsense
(two wing shades, a negative third); its length then falls outside that of real descriptions, which is how such
analogies are left out. The generator draws mixed conditions so that it learns attributes, not the pairs it saw.

Only the embeddings are read: no class ids, attribute labels or knowledge of how the embeddings were made.
"""

import numpy as np

# A candidate is the same description, not a wrong one, when its mean embedding is nearer to the image's mean than
# this quantile of the image's own captions are (over the whole split).
SAME_DESCRIPTION_QUANTILE = 0.05
CHUNK = 1024  # rows of the similarity matrix computed at once (CUB: 8,855 images)


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


# Neighbours whose differences from the image point the same way (cosine above this) differ from it in the same
# respect (on the synthetic birds: two other body colours, or two other wing shades).
SAME_RESPECT_COSINE = 0.3
POOL = 128  # nearest candidates grouped by respect for each image ...
NEAR_BAND = 0.1  # ... those within this cosine of the nearest (on the synthetic birds: one attribute off, not two)
PROJECTED_DIM = 128  # differences are compared in a fixed random projection of this many dimensions (cosines kept
# to about +-0.1), which bounds the cost on CUB


def _respects(differences):
    """Group labels of difference vectors (n, D): connected components of cosine > SAME_RESPECT_COSINE."""
    unit = _unit(differences)
    linked = unit @ unit.T > SAME_RESPECT_COSINE
    labels = np.arange(len(unit))
    while True:  # every label becomes the smallest reachable one
        lowest = np.where(linked, labels[None, :], len(labels)).min(axis=1)
        if (lowest == labels).all():
            return labels
        labels = lowest


def hard_negatives(embeddings, k=32, pool=POOL):
    """(N, k) int64: for each image of a split, hard wrong images: of the `pool` images whose mean caption embedding
    (embeddings: (N, captions, D)) is most similar to its own, leaving out those that are the same description and
    keeping those within NEAR_BAND of the nearest, k
    taken in turn from each respect in which they differ from it (groups of neighbours whose differences point the
    same way), most similar first, so that every respect has its share however few neighbours differ that way (the
    most frequent kind of neighbour does not fill the table); a small group repeats. Rows of an image with no
    candidate hold -1."""
    e = np.asarray(embeddings, np.float32)
    n = len(e)
    means = _unit(e.mean(axis=1))
    captions = _unit(e)
    own = np.einsum("ncd,nd->nc", captions, means)  # each caption's cosine to its image's mean
    same = float(np.quantile(own, SAME_DESCRIPTION_QUANTILE))
    k = max(1, min(int(k), n - 1))
    pool = max(k, min(int(pool), n - 1))
    table = np.full((n, k), -1, np.int64)
    projection = np.random.default_rng(0).standard_normal((means.shape[1], PROJECTED_DIM)).astype(np.float32)
    projected = means @ projection
    for start in range(0, n, CHUNK):
        sims = means[start : start + CHUNK] @ means.T
        sims[sims >= same] = -np.inf  # the image itself and images the text cannot tell from it
        best = np.argpartition(-sims, pool - 1, axis=1)[:, :pool]
        scores = np.take_along_axis(sims, best, axis=1)
        for i, (cands, score) in enumerate(zip(best, scores)):
            keep = np.isfinite(score)
            keep &= score >= score[keep].max(initial=-np.inf) - NEAR_BAND  # the nearest band only
            cands, score = cands[keep], score[keep]
            if not len(cands):
                continue
            cands = cands[np.argsort(-score, kind="stable")]
            groups = _respects(projected[cands] - projected[start + i])
            queues = [cands[groups == g] for g in dict.fromkeys(groups)]  # groups in order of their best
            # slot t: respect t mod (number of respects), that respect's members in turn (a small one repeats)
            table[start + i] = [
                queues[t % len(queues)][(t // len(queues)) % len(queues[t % len(queues)])] for t in range(k)
            ]
    return table


# A mixed condition is kept when its length is within the lengths of real mean embeddings, widened by this factor.
LENGTH_SLACK = 1.1
MAX_MIXES = 64  # mixed conditions kept per image


def mixed_conditions(embeddings, neighbours, max_mixes=MAX_MIXES, seed=0):
    """(N, max_mixes, 2) int64: for each image a, pairs (b, c) of its neighbours (rows of `neighbours`, from
    hard_negatives) whose analogy e_b + e_c - e_a (on mean embeddings) is as long as real descriptions and is none of
    a, b, c (padded with -1; at most max_mixes, drawn with `seed` where there are more)."""
    e = np.asarray(embeddings, np.float32)
    means = e.mean(axis=1)
    lengths = np.linalg.norm(means, axis=1)
    low, high = lengths.min() / LENGTH_SLACK, lengths.max() * LENGTH_SLACK
    captions = _unit(e)
    own = np.einsum("ncd,nd->nc", captions, _unit(means))
    same = float(np.quantile(own, SAME_DESCRIPTION_QUANTILE))
    rng = np.random.default_rng(seed)
    table = np.full((len(e), max_mixes, 2), -1, np.int64)
    for a, row in enumerate(neighbours):
        cands = np.unique(row[row >= 0])
        if len(cands) < 2:
            continue
        b, c = np.triu_indices(len(cands), k=1)
        b, c = cands[b], cands[c]
        mix = means[b] + means[c] - means[a]
        length = np.linalg.norm(mix, axis=1)
        unit_mix = mix / np.maximum(length, 1e-8)[:, None]
        nearest = np.max([np.sum(unit_mix * _unit(means[x]), axis=1) for x in (np.full(len(b), a), b, c)], axis=0)
        keep = np.flatnonzero((length >= low) & (length <= high) & (nearest < same))
        if len(keep) > max_mixes:
            keep = rng.choice(keep, max_mixes, replace=False)
        table[a, : len(keep), 0], table[a, : len(keep), 1] = b[keep], c[keep]
    return table
