"""Neighbours in caption-embedding space (stackgan.training.neighbours): hard wrong images that differ from an image
in one respect, every respect getting its share, and mixed conditions that say combinations no training image has;
found from the embeddings alone (the attribute files only check them here)."""

import collections

import numpy as np

from stackgan.datasets.cache import load_split_lists
from stackgan.metrics import attributes
from stackgan.training import input as training_input
from stackgan.training.neighbours import hard_negatives, mixed_conditions


def train_split(birds):
    names, class_ids, embeddings = load_split_lists(birds, "train")
    return class_ids, np.asarray(embeddings), attributes.set_attributes(birds, names)


def test_hard_wrong_images_differ_in_one_respect_each_respect_its_share(birds):
    _, embeddings, asked = train_split(birds)
    table = hard_negatives(embeddings, k=8)
    assert table.shape == (len(embeddings), 8) and (table >= 0).all()
    kinds = collections.Counter()
    for i, row in enumerate(table):
        assert i not in row
        same_body, same_wing = asked.body[row] == asked.body[i], asked.wing[row] == asked.wing[i]
        assert (same_body ^ same_wing).all(), (i, row)  # never the same pair, never both different
        kinds.update(same_body.tolist())
    # most neighbours of a bird share its wing (more colours than shades), yet half the table has its own colour
    assert 0.35 <= kinds[True] / sum(kinds.values()) <= 0.65, kinds


def test_mixed_conditions_say_new_combinations(birds):
    _, embeddings, asked = train_split(birds)
    mixes = mixed_conditions(embeddings, hard_negatives(embeddings))
    probe = attributes.EmbeddingProbe(embeddings, asked)
    a, (b, c) = np.nonzero(mixes[:, :, 0] >= 0)[0], mixes[mixes[:, :, 0] >= 0].T
    assert len(a) >= len(embeddings)
    mixed = embeddings[b].mean(axis=1) + embeddings[c].mean(axis=1) - embeddings[a].mean(axis=1)
    body, wing = probe.read(mixed)
    # each analogy has one neighbour's colour and the other's wing
    from_b = (body == asked.body[b]) & (wing == asked.wing[c])
    from_c = (body == asked.body[c]) & (wing == asked.wing[b])
    assert (from_b | from_c).mean() >= 0.95
    design_unseen = {(h, s) for h, s in zip(*np.nonzero(_unseen_grid(asked)))}
    assert sum((x, y) in design_unseen for x, y in zip(body, wing)) > 0  # pairs no training image has


def _unseen_grid(asked):
    from stackgan.datasets import synthetic

    grid = np.zeros((len(asked.hues), len(asked.shades)), bool)
    for h, s in synthetic.DEFAULT_UNSEEN:
        grid[asked.hues.index(h), asked.shades.index(s)] = True
    return grid


def test_plans_draw_hard_wrong_images_and_mixed_conditions(birds):
    class_ids, embeddings, asked = train_split(birds)
    neighbours = hard_negatives(embeddings)
    mixes = mixed_conditions(embeddings, neighbours)
    plain = training_input.epoch_plan(class_ids, 10, 8, 8, 8, False, 3, 0)
    plan = training_input.epoch_plan(class_ids, 10, 8, 8, 8, False, 3, 0, True, (neighbours, 1.0), (mixes, 1.0))
    assert set(plan) == set(plain) == set(training_input.PLAN_KEYS)
    index, wrong = plain["index"].ravel(), plain["wrong"].ravel()
    assert (np.asarray(class_ids)[index] != np.asarray(class_ids)[wrong]).all()  # the chapter's: another class
    np.testing.assert_array_equal(plain["mix_b"], plain["index"])  # no mixing: the fake's own caption
    np.testing.assert_array_equal(plain["mix_c_caption"], plain["caption"])
    index, wrong = plan["index"].ravel(), plan["wrong"].ravel()
    assert all(w in neighbours[i] for i, w in zip(index, wrong))
    mixed = plan["mix_b"].ravel() != index
    has_mix = mixes[index, 0, 0] >= 0
    np.testing.assert_array_equal(mixed, has_mix)
    assert all(
        (b, c) in set(map(tuple, mixes[i]))
        for i, b, c in zip(index[mixed], plan["mix_b"].ravel()[mixed], plan["mix_c"].ravel()[mixed])
    )
