"""A run on flowers, end to end at tiny widths on the shared synthetic flowers: Stage-I and Stage-II train on the whole
images (no box crop) and say flowers, the caption encoder trains and evaluates, generate.py draws from the flowers'
test split and from captions, evaluate.py scores petal colours and FID, the Python API and the page speak of
flowers."""

import contextlib
import io as text_io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

import app
import evaluate
import generate
import stage1
import stage2
import text_encoder
from helpers import TINY, common, one_line_error
from stackgan import layout, page
from stackgan.api import StackGAN
from stackgan.datasets import captions, synthetic_flowers
from stackgan.datasets.cache import load_dataset
from stackgan.datasets.flowers import DATASET
from stackgan.metrics import petals

COLOURS = [name for name, _ in synthetic_flowers.PALETTE]
FORMS = [form.name for form in synthetic_flowers.FORMS]
CAPTION = "a flower with pointed blue petals"


@pytest.fixture(scope="module")
def flowers_run(flowers, tmp_path_factory):
    """(results folder, what the three commands printed) of Stage-I (two steps), Stage-II (one step) and a tiny
    caption encoder (one epoch) trained on the shared flowers, the dataset found from the folder's layout."""
    root = tmp_path_factory.mktemp("flowers_run")
    results, logs = str(root / "results"), str(root / "logs")
    printed = text_io.StringIO()
    with contextlib.redirect_stdout(printed):
        stage1.main(common(flowers, results, logs) + TINY + ["--epochs", "1", "--steps-per-epoch", "2"])
        stage2.main(
            common(flowers, results, logs)
            + ["--gf-dim", "4", "--df-dim", "2", "--batch-size", "4", "--xla", "off", "--epochs", "1"]
            + ["--steps-per-epoch", "1"]
        )
        text_encoder.main(
            ["train", "--data-dir", flowers, "--results-dir", results, "--log-dir", logs, "--epochs", "1"]
            + ["--char-dim", "4", "--conv-dims", "8,8", "--rnn-dim", "8", "--batch-size", "64"]
        )
    return results, printed.getvalue()


def test_both_stages_train_on_flowers_and_say_so(flowers, flowers_run):
    results, printed = flowers_run
    assert f"Training Stage-I on synthetic flowers in {flowers}" in printed
    assert f"Training Stage-II on synthetic flowers in {flowers}" in printed
    for stage in (1, 2):
        config = json.load(open(layout.config_path(results, stage)))
        assert config["dataset"] == "flowers" and config["data_dir"] == flowers
    # The grid of each stage is scored on the petal colour (a number, whatever the two steps learned).
    history = json.load(open(layout.history_path(results, 1)))
    assert 0.0 <= history[-1]["eval_colour"] <= 1.0
    assert re.search(r"stage1 epoch 1/1 .* colour \d\.\d\d", printed)


def test_the_whole_image_is_used(flowers):
    """No box: each cached image is the whole JPEG resized (where the birds take the 1.5x box crop)."""
    split = load_dataset(flowers, "train", 76)
    for row in (0, 7, 33):
        with Image.open(DATASET.image_path(flowers, split.filenames[row])) as im:
            whole = np.asarray(im.convert("RGB").resize((76, 76), Image.BILINEAR))
        np.testing.assert_array_equal(split.images[row], whole)


def test_stage2_refuses_a_stage1_of_the_other_dataset(flowers_run, birds, tmp_path, capsys):
    results, _ = flowers_run
    argv = common(birds, results, tmp_path / "logs") + ["--results-dir", results, "--gf-dim", "4", "--df-dim", "2"]
    err = one_line_error(stage2.main, argv, capsys)
    assert "was trained on flowers, not birds" in err


def test_generate_and_evaluate_flowers(flowers, flowers_run, tmp_path, capsys):
    results, _ = flowers_run
    out = str(tmp_path / "samples")
    generate.main(["--results-dir", results, "--stage", "1", "--out", out, "--samples-per-embedding", "2"])
    assert "wrote 32 images (64x64, 16 embeddings x 2 samples)" in capsys.readouterr().out  # the flowers' test split
    assert evaluate.main(["attributes", "--images", out, "--data-dir", flowers, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 32 and report["embeddings"] == 16 and 0 <= report["colour"] <= 1
    assert all(m["asked"] in COLOURS for m in report["mistakes"])
    assert evaluate.main(["attributes", "--images", out, "--data-dir", flowers]) == 0
    assert capsys.readouterr().out.startswith("petal-colour accuracy ")
    drawn = str(tmp_path / "drawn")
    generate.main(["--results-dir", results, "--out", drawn, "--caption", CAPTION, "--samples-per-embedding", "2"])
    assert "wrote 2 images (256x256, 1 captions x 2 samples)" in capsys.readouterr().out
    assert open(os.path.join(drawn, "captions.txt")).read() == f"00000\t{CAPTION}\n"


def test_fid_against_the_flowers_test_split(flowers, flowers_run, tmp_path, capsys):
    import keras

    def small_network(include_top, weights_path):  # pooled colour features stand in for InceptionV3
        return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D()])

    results, _ = flowers_run
    out = str(tmp_path / "samples")
    generate.main(["--results-dir", results, "--stage", "1", "--out", out])
    capsys.readouterr()
    argv = ["fid", "--real", "test", "--fake", out, "--data-dir", flowers, "--no-cache", "--json"]
    assert evaluate.main(argv, model_factory=small_network) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["real"] == 16 and report["fake"] == 16 and report["features"] == 3 and report["fid"] >= 0


def test_the_api_draws_flowers_and_hears_the_petals(flowers, flowers_run):
    results, _ = flowers_run
    model = StackGAN.from_preset(results)
    assert model.stage == 2 and model.dataset.name == "flowers" and model.data_dir == flowers
    images = model.generate([CAPTION], samples=2, seed=0)
    assert images.shape == (1, 2, 256, 256, 3) and images.dtype == np.uint8
    heard = model.heard(CAPTION, neighbours=3)
    assert heard["read_as"] == CAPTION and heard["wings"] is None
    assert heard["colour"] in COLOURS and heard["petals"] in FORMS  # the one-epoch encoder: some colour and form
    vector = model.encode(CAPTION)[0]
    assert heard["colour"] == COLOURS[int(petals.embedding_colours(vector[None])[0])]
    training = {c for caps in captions.load_caption_split(flowers, "train").captions for c in caps}
    assert len(heard["nearest"]) == 3 and all(n["caption"] in training for n in heard["nearest"])


def test_the_page_says_flowers(flowers, flowers_run):
    results, _ = flowers_run
    model = StackGAN.from_preset(results, stage=1)
    assert page.title(model) == "StackGAN: type a sentence, see a flower"
    assert page.default_caption(model) == DATASET.example_captions[0]
    (images,), panel = page.draw(model, CAPTION, 2, 0, 0)
    assert len(images) == 2 and images[0].shape == (64, 64, 3)
    assert re.search(rf"\*\*Colour:\*\* ({'|'.join(COLOURS)}) · \*\*Petals:\*\* ({'|'.join(FORMS)}) ", panel), panel
    examples = page.example_captions(flowers)
    test = captions.load_caption_split(flowers, "test")
    owners = {int(test.class_ids[next(i for i, c in enumerate(test.captions) if e in c)]) for e in examples}
    assert len(examples) == 8 and owners == set(synthetic_flowers.TEST_CLASSES)
    pytest.importorskip("gradio")
    shown = json.dumps(page.build_page(model).config)
    assert "see a flower" in shown and "Captions of test flowers" in shown and examples[0] in shown
    shown = json.dumps(page.build_page(model, examples=[]).config)  # no test captions: the dataset's own examples
    assert "Example captions of flowers" in shown and DATASET.example_captions[1] in shown


def test_text_encoder_evaluates_on_flowers(flowers, flowers_run, capsys):
    results, _ = flowers_run
    capsys.readouterr()
    argv = ["evaluate", "--data-dir", flowers, "--results-dir", results, "--generated-stage", "1", "--json"]
    assert text_encoder.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    for model in ("encoder", "baseline"):
        for key in ("test_wording_colour", "heldout_wording_colour", "test_wording_petals", "heldout_wording_petals"):
            assert 0.0 <= report[model][key] <= 1.0, key
    # Bag of words reads the colour word of held-out wordings too.
    assert report["baseline"]["heldout_wording_colour"] >= 0.9
    generated = report["generated"]
    assert generated["images"] == 16 * len(synthetic_flowers.HELDOUT_TEMPLATES) and generated["stage"] == 1


def test_the_flowers_demo_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(app.main, ["--demo", "--dataset", "flowers"], capsys)
    assert err == (
        "error: results/demo_flowers/stage1_config.json not found: app.py needs trained Stage-1 weights; "
        "run `python stage1.py --demo --dataset flowers` first"
    )
    err = one_line_error(generate.main, ["--demo", "--dataset", "flowers", "--caption", CAPTION], capsys)
    assert "results/demo_flowers/stage1_config.json not found" in err
    err = one_line_error(stage2.main, ["--demo", "--dataset", "flowers"], capsys)
    assert err.endswith(
        "the Stage-II demo continues from the Stage-I demo; run `python stage1.py --demo --dataset flowers` first"
    )
