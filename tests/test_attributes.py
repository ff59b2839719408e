"""The attribute metric (stackgan.metrics.attributes): the body colour and the wing shade read back from images, checked
against what each bird has (the set's attribute files), both together and on pairs never seen in training; the most
frequent mistakes; the command line."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import data
import evaluate
from helpers import one_line_error
from stackgan import layout
from stackgan.cli import UserError, run_main
from stackgan.datasets import birds, synthetic
from stackgan.datasets.cache import load_dataset
from stackgan.metrics import attributes, generated

HUES, SHADES = synthetic.DEFAULT_HUES, synthetic.DEFAULT_SHADES


def hue_rotated(images):
    out = []
    for im in images:
        hsv = np.asarray(Image.fromarray(np.asarray(im)).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256
        out.append(np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")))
    return np.stack(out)


def painted(hue, shade, size=64, background=128):
    """A flat bird: a body ellipse of the hue (an index into HUES) on a grey background, with a wing ellipse of the
    shade's level inside it (no wing for shade None)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.full((size, size, 3), background, np.uint8)
    img[((xx - 0.5) / 0.35) ** 2 + ((yy - 0.5) / 0.22) ** 2 <= 1] = synthetic.COLOURS[HUES[hue]]
    if shade is not None:
        level = int(round(synthetic.SHADES[SHADES[shade]][1] * 255))
        img[((xx - 0.47) / 0.2) ** 2 + ((yy - 0.48) / 0.09) ** 2 <= 1] = level
    return img


def test_the_readers_on_real_images_are_right_except_on_grayscale_ones(birds):
    """The real test and training birds at both stages' sizes: every colour image's body and wing read right (the
    metric's ceiling; grayscale JPEGs, like CUB's, read as no colour)."""
    for split in ("train", "test"):
        for size in (64, 256):
            s = load_dataset(birds, split, size)
            asked = attributes.set_attributes(birds, s.filenames)
            body, wing = attributes.read_images(s.images, asked.hue_rgb, asked.shade_levels)
            coloured = body >= 0
            assert coloured.mean() >= 0.9
            np.testing.assert_array_equal(body[coloured], asked.body[coloured])
            np.testing.assert_array_equal(wing[coloured], asked.wing[coloured])
            floats = np.asarray(s.images, np.float32) / 127.5 - 1.0
            np.testing.assert_array_equal(attributes.read_images(floats)[1], wing)
            report = attributes.attribute_report(s.images, asked)
            assert report["both"] == pytest.approx(coloured.mean())
    test = load_dataset(birds, "test", 64)
    asked = attributes.set_attributes(birds, test.filenames)
    rotated = attributes.attribute_report(hue_rotated(test.images), asked)
    assert rotated["body"] < 0.3 and rotated["wing"] >= 0.85  # another colour, the same wings
    shifted = asked._replace(wing=(asked.wing + 1) % len(SHADES))
    assert attributes.attribute_report(test.images, shifted)["wing"] == 0.0


def test_the_wing_is_the_shade_inside_the_body_not_the_background():
    images = [painted(h, w) for h in range(len(HUES)) for w in range(len(SHADES))]
    body, wing = attributes.read_images(np.stack(images))
    np.testing.assert_array_equal(body, np.repeat(np.arange(len(HUES)), len(SHADES)))
    np.testing.assert_array_equal(wing, np.tile(np.arange(len(SHADES)), len(HUES)))
    # a grey wing on a grey background of the same level is still the grey inside the body; no wing is no wing
    grey = SHADES.index("grey")
    level = int(round(synthetic.SHADES["grey"][1] * 255))
    body, wing = attributes.read_images(np.stack([painted(0, grey, background=level), painted(0, None)]))
    assert body.tolist() == [0, 0] and wing.tolist() == [grey, -1]
    black = SHADES.index("black")
    assert attributes.read_images(painted(2, black, size=256))[1].tolist() == [black]  # any size
    assert attributes.read_images(np.full((2, 64, 64, 3), 128, np.uint8))[0].tolist() == [-1, -1]  # no colour


def test_attribute_report_counts_both_unseen_pairs_and_mistakes():
    red, yellow, green = (HUES.index(h) for h in ("red", "yellow", "green"))
    black, grey, white = (SHADES.index(s) for s in ("black", "grey", "white"))
    asked = attributes.default_attributes(
        body=[red, red, green, green, yellow, yellow], wing=[black, black, black, black, grey, grey]
    )
    assert asked.unseen.tolist() == [False, False, True, True, False, False]  # green/black is held out by default
    drawn = [painted(red, black), painted(red, white), painted(green, black), painted(green, grey)]
    drawn += [painted(red, grey), np.full((64, 64, 3), 128, np.uint8)]
    report = attributes.attribute_report(np.stack(drawn), asked)
    assert report["images"] == 6 and report["unseen_images"] == 2
    assert report["body"] == pytest.approx(4 / 6) and report["wing"] == pytest.approx(3 / 6)
    assert report["both"] == pytest.approx(2 / 6)
    assert report["both_seen"] == pytest.approx(1 / 4) and report["both_unseen"] == pytest.approx(1 / 2)
    assert report["mistakes"] == [  # ties in the order of the asked pair
        dict(asked="red/black", drawn="red/white", count=1),
        dict(asked="yellow/grey", drawn="no colour/no wing", count=1),
        dict(asked="yellow/grey", drawn="red/grey", count=1),
    ]
    assert attributes.describe(report) == "body 0.667, wing 0.500, both 0.333 (seen pairs 0.250, unseen pairs 0.500)"
    assert (
        attributes.describe_mistakes(report["mistakes"][:2])
        == "red/black drawn as red/white 1, yellow/grey as no colour/no wing 1"
    )
    assert attributes.describe_mistakes([]) == "none"
    seen_only = attributes.attribute_report(np.stack(drawn[:2]), asked.take([0, 1]))
    assert seen_only["both_unseen"] is None and seen_only["unseen_images"] == 0
    with pytest.raises(UserError, match="one row per image"):
        attributes.attribute_report(np.stack(drawn), asked.take([0]))


def test_the_embedding_probe_reads_pairs_it_never_saw(birds):
    """A linear probe fitted on the training embeddings reads body and wing of test embeddings, unseen pairs too."""
    train, test = (load_dataset(birds, s, 64) for s in ("train", "test"))
    probe = attributes.EmbeddingProbe(train.embeddings, attributes.set_attributes(birds, train.filenames))
    asked = attributes.set_attributes(birds, test.filenames)
    assert asked.unseen.any() and not attributes.set_attributes(birds, train.filenames).unseen.any()
    body, wing = probe.read(test.embeddings[:, 0])
    np.testing.assert_array_equal(body, asked.body)
    np.testing.assert_array_equal(wing, asked.wing)


def test_diversity():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert generated.diversity({0: [a, b], 1: [a, a]}) == pytest.approx(0.5)
    assert generated.diversity({0: [a], 1: [b]}) is None


@pytest.fixture(scope="module")
def wanted(birds):
    """The body and wing of each test bird."""
    return attributes.split_attributes(birds, "test")


def run(argv):
    return run_main(evaluate.main, argv)


def fails(argv, capsys):
    return one_line_error(evaluate.main, argv, capsys)


def paint(folder, bodies, wings, samples=1, size=32):
    """Painted birds of the given body and wing indices; sample s > 0 gets a grey corner (differs from sample 0)."""
    os.makedirs(folder, exist_ok=True)
    for i, (b, w) in enumerate(zip(bodies, wings)):
        for s in range(samples):
            img = painted(b, w, size)
            if s:
                img[: size // 8 * s, : size // 8 * s] = 100
            Image.fromarray(img).save(os.path.join(folder, f"{i:05d}_{s}.png"))
    return folder


def test_evaluate_attributes_right_and_wrong_wings(birds, wanted, tmp_path, capsys):
    right = paint(tmp_path / "right", wanted.body, wanted.wing, samples=2)
    assert run(["attributes", "--images", str(right), "--data-dir", birds, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["body"], r["wing"], r["both"], r["both_seen"], r["both_unseen"]) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert r["images"] == 32 and r["embeddings"] == 16 and r["mistakes"] == []
    assert r["unseen_images"] == 2 * int(wanted.unseen.sum()) > 0
    assert r["diversity"] > 0

    wrong = paint(tmp_path / "wrong", wanted.body, (wanted.wing + 1) % len(SHADES))
    assert run(["attributes", "--images", str(wrong), "--data-dir", birds]) == 0
    out = capsys.readouterr().out
    assert out.startswith("body 1.000, wing 0.000, both 0.000 (seen pairs 0.000, unseen pairs 0.000), diversity n/a")
    assert "(16 images of 16 embeddings from the test split" in out and "most frequent mistakes: " in out


def test_attributes_bad_inputs(birds, wanted, tmp_path, capsys):
    base = ["attributes", "--data-dir", birds, "--images"]
    assert "not a folder" in fails(base + [str(tmp_path / "nope")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no" in fails(base + [str(tmp_path / "empty")], capsys)
    too_far = paint(tmp_path / "far", list(wanted.body) + [0], list(wanted.wing) + [0])  # 17 images, 16 rows
    assert "has only 16" in fails(base + [str(too_far)], capsys)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "00000_0.png").write_bytes(b"not a png")
    assert "not a readable image" in fails(base + [str(tmp_path / "bad")], capsys)
    assert "not found" in fails(
        ["attributes", "--images", str(tmp_path / "bad"), "--data-dir", str(tmp_path / "nodata")], capsys
    )
    cub_like = tmp_path / "cub"
    (cub_like / "test").mkdir(parents=True)
    (cub_like / "test" / layout.FILENAMES_FILE).write_bytes(
        open(layout.split_files(birds, "test").filenames, "rb").read()
    )
    assert "not a synthetic birds set" in fails(
        base[:1] + ["--data-dir", str(cub_like), "--images", str(too_far)], capsys
    )


def test_a_set_written_before_wing_shades_asks_to_be_written_again(birds_copy, tmp_path, capsys):
    os.remove(birds.DATASET.attribute_files(birds_copy)[1])
    folder = str(paint(tmp_path / "p", [0], [0]))
    assert "write it again" in fails(["attributes", "--data-dir", birds_copy, "--images", folder], capsys)
    assert len(data.load_filenames(layout.split_files(birds_copy, "test").filenames)) == 16
