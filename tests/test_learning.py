"""The condition is learned: after a short Stage-I run on synthetic birds, generated test images show the body colour
and the wing shade that their text asks for, far more often than a generator that ignored either would."""

import json

import numpy as np
import pytest

import evaluate
import generate
from stackgan import api
from stackgan.datasets.cache import load_dataset
from stackgan.metrics import attributes
from stackgan.text.evaluation import heldout_caption_accuracy


@pytest.fixture(scope="module")
def trained(trained_demo):
    return trained_demo


@pytest.fixture(scope="module")
def drawn(trained):
    """One image per test bird (its first caption), the birds' attributes and what the images show."""
    birds, results = trained
    (gen,), config = api.load_generators(results, 1)
    test = load_dataset(birds, "test", 64)
    z = np.random.default_rng(7).standard_normal((len(test.embeddings), config["z_dim"])).astype("float32")
    (images,) = api.sample_images([gen], test.embeddings[:, 0], z)
    asked = attributes.set_attributes(birds, test.filenames)
    return images, asked, attributes.read_images(images, asked.hue_rgb, asked.shade_levels)


def test_stage1_learns_the_body_colour_and_the_wing_shade(drawn):
    images, asked, (body, wing) = drawn
    report = attributes.attribute_report(images, asked)
    # measured at these 16 epochs (Zen4 in bf16, 2026-12-04): body 1.000, wing 0.512 (another shade of the set: 0.088,
    # 0.013), both on seen pairs 0.642; a generator deaf to the wing would read each shade about as often
    assert report["body"] >= 0.7, report
    assert len(set(body.tolist()) - {-1}) >= 5  # not one colour for everything
    # The wing follows the text: the shade each bird asks for is read far more often than another shade of the set.
    for shift in (1, 2):
        other = (asked.wing + shift) % len(asked.shades)
        assert np.mean(wing == asked.wing) >= np.mean(wing == other) + 0.2, (shift, report)
    both_seen = np.mean(((body == asked.body) & (wing == asked.wing))[~asked.unseen])
    assert both_seen >= 0.35, report


def test_generate_then_evaluate_attributes_on_the_trained_model(trained, tmp_path, capsys):
    birds, results = trained
    out = tmp_path / "samples"
    generate.main(
        [
            "--stage",
            "1",
            "--results-dir",
            results,
            "--data-dir",
            birds,
            "--out",
            str(out),
            "--samples-per-embedding",
            "2",
        ]
    )
    capsys.readouterr()
    assert evaluate.main(["attributes", "--images", str(out), "--data-dir", birds, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["images"] == 320 and report["embeddings"] == 160 and report["unseen_images"] > 0
    assert report["body"] >= 0.7
    assert report["diversity"] > 0.01  # two noise draws of one embedding give different birds


def test_birds_from_held_out_caption_wordings_have_what_they_ask_for(trained):
    """Sentences in wordings that neither the caption files nor the encoder's training ever used, encoded by
    the demo's caption encoder, drawn by the trained Stage-I generator."""
    birds, results = trained
    report = heldout_caption_accuracy(results, birds, stage=1)
    assert report["images"] >= 160 and report["stage"] == 1
    words, own = report["from_caption"], report["from_embedding"]
    # measured: body 0.908, wing 0.520 from held-out wording; 1.000, 0.546 from the birds' own embeddings
    assert words["body"] >= 0.7, report
    assert words["body"] >= own["body"] - 0.15 and words["wing"] >= own["wing"] - 0.15, (
        report
    )  # the encoder loses little


def test_the_demo_caption_encoder_reads_pairs_no_training_caption_names(trained):
    """The demo's char-CNN encoder, read by a linear probe fitted on the training embeddings: the colour and wing of
    test captions and held-out wordings of (colour, wing) pairs that no training caption names. Measured (5 epochs,
    Zen4, 2026-12-05): 1.000 on both; the char-CNN-RNN it replaced memorised the pairs (0.42 / 0.47)."""
    from stackgan.text.evaluation import evaluate_encoder

    birds, results = trained
    encoder = evaluate_encoder(results, birds)["encoder"]
    assert encoder["test_wording_unseen_both"] >= 0.8 and encoder["heldout_wording_unseen_both"] >= 0.8, encoder
