"""The attribute metric (stackgan.metrics.attributes): the body colour read back from images, its accuracy against
the embeddings, and the most frequent mistakes."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import data
import evaluate
from helpers import one_line_error
from stackgan import layout
from stackgan.cli import run_main
from stackgan.datasets import synthetic
from stackgan.datasets.cache import load_dataset
from stackgan.metrics import attributes


def hue_rotated(images):
    out = []
    for im in images:
        hsv = np.asarray(Image.fromarray(np.asarray(im)).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(int) + 128) % 256
        out.append(np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")))
    return np.stack(out)


def test_colour_metric(birds):
    assert len(synthetic.PALETTE) == 8 and len({rgb for _, rgb in synthetic.PALETTE}) == 8
    for split in ("train", "test"):
        s64 = load_dataset(birds, split, 64)
        assert attributes.attribute_accuracy(s64.images, s64.embeddings) >= 0.95
        floats = np.asarray(s64.images, np.float32) / 127.5 - 1.0
        np.testing.assert_array_equal(attributes.image_colours(floats), attributes.image_colours(s64.images))
        assert attributes.attribute_accuracy(hue_rotated(s64.images), s64.embeddings) < 0.3
        wrong = np.roll(s64.embeddings, len(s64.embeddings) // 8 + 1, axis=0)  # another colour's captions
        assert (attributes.embedding_colours(wrong) != attributes.embedding_colours(s64.embeddings)).all()
        assert attributes.attribute_accuracy(s64.images, wrong) < 0.3
    s256 = load_dataset(birds, "test", 256)
    assert attributes.attribute_accuracy(s256.images, s256.embeddings[:, 0]) >= 0.95
    gray = np.full((4, 64, 64, 3), 128, np.uint8)
    assert (attributes.image_colours(gray) == -1).all()
    flat = np.stack([np.full((32, 32, 3), rgb, np.uint8) for _, rgb in synthetic.PALETTE])
    np.testing.assert_array_equal(attributes.image_colours(flat), np.arange(8))


def test_attribute_report_names_the_most_frequent_mistakes(birds):
    train = load_dataset(birds, "train", 64)
    colours = attributes.embedding_colours(train.embeddings)
    one_of = {k: train.embeddings[np.flatnonzero(colours == k)[0], 0] for k in range(len(synthetic.PALETTE))}
    flat = {k: np.full((16, 16, 3), rgb, np.uint8) for k, (_, rgb) in enumerate(synthetic.PALETTE)}
    gray = np.full((16, 16, 3), 128, np.uint8)
    # asked: red, orange x3, yellow, blue; drawn: red, red x2 + orange, no colour, purple
    images = np.stack([flat[0], flat[0], flat[0], flat[1], gray, flat[6]])
    embeddings = np.stack([one_of[k] for k in (0, 1, 1, 1, 2, 5)])
    accuracy, mistakes = attributes.attribute_report(images, embeddings)
    assert accuracy == pytest.approx(2 / 6) and accuracy == attributes.attribute_accuracy(images, embeddings)
    assert mistakes == [
        dict(asked="orange", drawn="red", count=2),
        dict(asked="yellow", drawn="no colour", count=1),
        dict(asked="blue", drawn="purple", count=1),
    ]
    assert attributes.attribute_report(images, embeddings, top=1)[1] == mistakes[:1]
    assert attributes.describe_mistakes(mistakes) == "orange drawn as red 2, yellow as no colour 1, blue as purple 1"
    assert attributes.attribute_report(images[[0, 3]], embeddings[[0, 3]]) == (1.0, [])
    assert attributes.describe_mistakes([]) == "none"


def test_diversity():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert attributes.diversity({0: [a, b], 1: [a, a]}) == pytest.approx(0.5)
    assert attributes.diversity({0: [a], 1: [b]}) is None


@pytest.fixture(scope="module")
def wanted(birds):
    """The body colour each test bird's embeddings ask for."""
    return attributes.embedding_colours(data.load_embeddings(layout.split_files(birds, "test").embeddings))


def run(argv):
    return run_main(evaluate.main, argv)


def fails(argv, capsys):
    return one_line_error(evaluate.main, argv, capsys)


def paint(folder, colours, samples=1, size=32):
    """Solid images in the given palette colours; sample s > 0 gets a grey square (differs from sample 0)."""

    os.makedirs(folder, exist_ok=True)
    for i, k in enumerate(colours):
        for s in range(samples):
            img = np.empty((size, size, 3), np.uint8)
            img[:] = synthetic.PALETTE[k][1]
            if s:
                img[: size // 4 * s, : size // 4 * s] = 128
            Image.fromarray(img).save(os.path.join(folder, f"{i:05d}_{s}.png"))
    return folder


def test_attributes_matching_and_wrong_colours(birds, wanted, tmp_path, capsys):
    data_dir = birds
    right = paint(tmp_path / "right", wanted, samples=2)
    assert run(["attributes", "--images", str(right), "--data-dir", str(data_dir), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["attribute_accuracy"] == 1.0 and r["images"] == 32 and r["embeddings"] == 16 and r["mistakes"] == []
    # sample 1 differs from sample 0 only in an 8x8 grey square of 32x32
    expected = np.mean([np.abs(np.array(synthetic.PALETTE[k][1]) - 128).mean() / 255 * 64 / 1024 for k in wanted])
    assert r["diversity"] == pytest.approx(expected, rel=1e-5)

    wrong = paint(tmp_path / "wrong", (wanted + 1) % len(synthetic.PALETTE))
    assert run(["attributes", "--images", str(wrong), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("attribute accuracy 0.0000, diversity n/a (16 images of 16 embeddings")
    names = [name for name, _ in synthetic.PALETTE]
    counts = np.bincount(wanted, minlength=len(names))
    first = int(np.argmax(counts))  # the most frequent colour (the lowest index among ties), drawn as the next
    assert f"most frequent mistakes: {names[first]} drawn as {names[(first + 1) % len(names)]} {counts[first]}" in out


def test_attributes_bad_inputs(birds, wanted, tmp_path, capsys):
    data_dir = birds
    base = ["attributes", "--data-dir", str(data_dir), "--images"]
    assert "not a folder" in fails(base + [str(tmp_path / "nope")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no" in fails(base + [str(tmp_path / "empty")], capsys)
    too_far = paint(tmp_path / "far", list(wanted) + [0])  # 17 images, the test split has 16 rows
    assert "has only 16" in fails(base + [str(too_far)], capsys)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "00000_0.png").write_bytes(b"not a png")
    assert "not a readable image" in fails(base + [str(tmp_path / "bad")], capsys)
    assert "not found" in fails(
        ["attributes", "--images", str(tmp_path / "bad"), "--data-dir", str(tmp_path / "nodata")], capsys
    )
    cub_like = tmp_path / "cub"
    (cub_like / "test").mkdir(parents=True)
    (cub_like / "test" / layout.EMBEDDINGS_FILE).write_bytes(
        open(layout.split_files(data_dir, "test").embeddings, "rb").read()
    )
    assert "not a synthetic birds set" in fails(
        base[:1] + ["--data-dir", str(cub_like), "--images", str(tmp_path / "bad")], capsys
    )
