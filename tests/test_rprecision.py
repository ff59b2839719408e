"""R-precision (stackgan.metrics.rprecision) by the evaluator trained apart from the GAN (stackgan.metrics.evaluator),
its cache, `evaluate.py rprecision` and the metric card (`evaluate.py card`)."""

import json
import os
import re
import shlex
import types

import numpy as np
import pytest

import evaluate
import generate
from helpers import one_line_error
from stackgan import io
from stackgan.cli import UserError, run_main
from stackgan.datasets import dataset_of
from stackgan.datasets.cache import load_dataset
from stackgan.metrics import evaluator, rprecision

EPOCHS = 40  # the small preset on the 48 training birds of the shared set: about 40 steps


def run(argv, capsys, factory=None):
    capsys.readouterr()
    assert run_main(lambda a: evaluate.main(a, model_factory=factory), argv) == 0
    return capsys.readouterr().out


def fails(argv, capsys):
    return one_line_error(evaluate.main, argv, capsys)


def quiet(line):
    pass


@pytest.fixture(scope="module")
def evaluator_dir(birds, tmp_path_factory):
    """A folder holding the evaluator of the shared birds (small preset, EPOCHS epochs), trained once."""
    folder = str(tmp_path_factory.mktemp("evaluator"))
    evaluator.load_or_train(birds, evaluator.settings_for(birds, epochs=EPOCHS), folder, log=quiet)
    return folder


def flags(folder):
    return ["--evaluator-dir", folder, "--evaluator-epochs", str(EPOCHS)]


@pytest.fixture(scope="module")
def folders(birds, tmp_path_factory):
    """(real, random): the real test birds as generate.py names its images, and 4 noise images per test row."""
    root = tmp_path_factory.mktemp("images")
    real, noise = str(root / "real"), str(root / "noise")
    rng = np.random.default_rng(0)
    for i, image in enumerate(load_dataset(birds, "test", 64).images):
        io.save_png(np.asarray(image), os.path.join(real, io.image_name(i, 0)))
        for s in range(4):
            io.save_png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), os.path.join(noise, io.image_name(i, s)))
    return real, noise


def test_the_protocol():
    class_ids = np.repeat(np.arange(4), 60)
    rows = np.array([0, 70, 130, 239])
    negative_rows, negative_captions = rprecision.mismatched_captions(class_ids, rows, 10, seed=3)
    assert negative_rows.shape == negative_captions.shape == (4, 99)
    for row, negatives in zip(rows, negative_rows):
        assert (class_ids[negatives] != class_ids[row]).all() and len(set(negatives)) == 99
    assert negative_captions.min() >= 0 and negative_captions.max() <= 9 and len(np.unique(negative_captions)) == 10
    again = rprecision.mismatched_captions(class_ids, rows, 10, seed=3)
    np.testing.assert_array_equal(again[0], negative_rows)
    assert (rprecision.mismatched_captions(class_ids, rows, 0)[1] == 0).all()  # 'mean': one vector per row
    with pytest.raises(UserError, match="single class"):
        rprecision.mismatched_captions(np.zeros(5, int), [0], 10)

    e = np.eye(3, dtype=np.float32)
    table = np.stack([e[1], e[2], e[0]])[:, None]  # rows 0, 1: other directions; row 2: the image's own
    images, own = e[[0, 0]], e[[0, 0]]
    hits = rprecision.ranked_first(images, own, table, np.array([[0, 1], [0, 2]]), np.zeros((2, 2), int))
    assert hits.tolist() == [True, False]  # a wrong caption as close as the true one is a miss

    mean, std, used = rprecision.fold_statistics([1, 1, 0, 0, 1], folds=10)
    assert mean == pytest.approx(0.6) and used == 5 and std == pytest.approx(np.std([1, 1, 0, 0, 1]))


def test_real_images_score_the_ceiling_and_random_ones_chance(birds, evaluator_dir, folders, capsys):
    real, noise = folders
    r = json.loads(run(["rprecision", "--images", real, "--data-dir", birds, "--json", *flags(evaluator_dir)], capsys))
    assert r["images"] == 16 and r["candidates"] == 100 and r["chance"] == 0.01
    assert r["evaluator_trained_s"] is None and r["evaluator"].startswith(evaluator_dir)  # read from the cache
    assert r["r_precision"] == r["real_r_precision"] >= 0.75  # the real images themselves: the ceiling
    assert r["unrelated"] <= 0.3  # a real image against another row's caption

    r = json.loads(run(["rprecision", "--images", noise, "--data-dir", birds, "--json", *flags(evaluator_dir)], capsys))
    assert r["images"] == 64 and r["rows"] == 16 and r["folds"] == 10
    assert r["r_precision"] <= 0.3 and r["real_r_precision"] >= 0.75  # 8 classes: an uninformed guess hits ~1/8

    text = run(
        ["rprecision", "--images", real, "--data-dir", birds, "--caption-index", "mean", *flags(evaluator_dir)], capsys
    )
    assert text.startswith("R-precision ") and "the mean caption" in text and "(the ceiling)" in text
    assert "chance 0.010" in text and "trained on the real training images and captions only" in text


def test_the_evaluator_computes_in_float32_whatever_the_policy(birds, evaluator_dir, folders):
    import keras

    settings = evaluator.settings_for(birds, epochs=EPOCHS)
    images = load_dataset(birds, "test", 64).images[:4]
    embeddings = load_dataset(birds, "test", 64).embeddings[:4, 0]
    expected = evaluator.load_or_train(birds, settings, evaluator_dir, log=quiet)
    for policy in ("mixed_bfloat16", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        ev = evaluator.load_or_train(birds, settings, evaluator_dir, log=quiet)
        assert {layer.dtype_policy.compute_dtype for layer in ev.model.layers} == {"float32"}
        np.testing.assert_allclose(ev.image_features(images), expected.image_features(images), atol=1e-5)
        np.testing.assert_allclose(ev.text_features(embeddings), expected.text_features(embeddings), atol=1e-5)
        assert ev.image_features(images).dtype == np.float32


def test_the_cache_follows_the_data_and_refuses_damage(birds, folders, tmp_path, capsys):
    from stackgan.datasets.synthetic import write_synthetic

    folder = str(tmp_path / "evaluators")
    settings = evaluator.settings_for(birds, epochs=1)
    first = evaluator.load_or_train(birds, settings, folder, log=quiet)
    assert first.trained_s is not None and first.path.startswith(folder)
    weights, meta = evaluator.cache_files(folder, evaluator.data_key(birds, settings))
    assert os.path.isfile(weights) and os.path.isfile(meta) and first.path == weights
    assert not [n for n in os.listdir(folder) if n.startswith(io.TEMP_PREFIX)]
    again = evaluator.load_or_train(birds, settings, folder, log=quiet)
    assert again.trained_s is None
    images = load_dataset(birds, "test", 64).images[:3]
    np.testing.assert_allclose(again.image_features(images), first.image_features(images), atol=1e-6)

    other = str(tmp_path / "other")  # another dataset: another key, so its own evaluator
    write_synthetic(other, n_train=16, n_test=8, seed=1)
    assert evaluator.data_key(other, settings) != evaluator.data_key(birds, settings)
    import keras

    keras.config.set_dtype_policy("mixed_bfloat16")  # a bf16 run's process: the evaluator still trains in float32
    trained = evaluator.load_or_train(other, settings, folder, log=quiet)
    keras.config.set_dtype_policy("float32")
    assert trained.trained_s is not None and {w.dtype for w in trained.model.weights} == {"float32"}
    assert len([n for n in os.listdir(folder) if n.endswith(".json")]) == 2
    assert evaluator.data_key(birds, settings.replace(width=8)) != evaluator.data_key(birds, settings)

    real = folders[0]
    argv = ["rprecision", "--images", real, "--data-dir", birds, "--evaluator-dir", folder, "--evaluator-epochs", "1"]
    with open(weights, "r+b") as f:  # a damaged weights file
        f.truncate(100)
    line = fails(argv, capsys)
    assert "damaged R-precision evaluator" in line and weights in line and evaluator.RETRAIN_FLAG in line
    with open(meta, "w") as f:
        f.write("{not json")
    assert "damaged" in fails(argv, capsys) and meta in fails(argv, capsys)
    json.loads(run(argv + ["--retrain-evaluator", "--json"], capsys))  # trains again and replaces both files
    assert json.load(open(meta))["key"] == evaluator.data_key(birds, settings)
    assert json.loads(run(argv + ["--json"], capsys))["evaluator_trained_s"] is None

    os.remove(meta)  # weights without their .json: an unfinished save, trained again
    assert evaluator.load_or_train(birds, settings, folder, log=quiet).trained_s is not None


def test_rprecision_bad_inputs_are_one_line(birds, folders, tmp_path, capsys):
    real = folders[0]
    base = ["rprecision", "--data-dir", birds, "--evaluator-dir", str(tmp_path / "never"), "--images"]
    assert "not a folder" in fails(base + [str(tmp_path / "nope")], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no" in fails(base + [str(tmp_path / "empty")], capsys)
    far = tmp_path / "far"
    io.save_png(np.zeros((64, 64, 3), np.uint8), str(far / "00016_0.png"))
    assert "has only 16 rows" in fails(base + [str(far)], capsys)
    mixed = tmp_path / "mixed"
    io.save_png(np.zeros((64, 64, 3), np.uint8), str(mixed / "00000_0.png"))
    io.save_png(np.zeros((32, 32, 3), np.uint8), str(mixed / "00001_0.png"))
    assert "mixes image sizes 32x32 (00001_0.png), 64x64 (00000_0.png)" in fails(base + [str(mixed)], capsys)
    (mixed / "captions.txt").write_text("00000\ta red bird\n")
    assert "was drawn from captions" in fails(base + [str(mixed)], capsys)
    (mixed / "captions.txt").unlink()
    (mixed / "00000_0.png").write_bytes(b"not a png")
    assert "00000_0.png is not a readable image" in fails(base + [str(mixed)], capsys)
    assert "--caption-index 10 is out of range" in fails(base + [real, "--caption-index", "10"], capsys)
    assert "caption numbers start at 0" in fails(base + [real, "--caption-index", "-1"], capsys)
    assert "not found" in fails(["rprecision", "--images", real, "--data-dir", str(tmp_path / "nodata")], capsys)
    assert "--evaluator-size 8" in fails(base + [real, "--evaluator-size", "8"], capsys)
    assert not os.path.exists(tmp_path / "never")  # every refusal came before any training


def _linked_files(page):
    return re.findall(r"!\[\]\(([^)]+)\)", open(page, encoding="utf-8").read())


def test_the_card_of_tiny_results(birds, tiny_results, evaluator_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no_keras"))  # no Inception weights in Keras' cache
    page = str(tmp_path / "pages" / "tiny.md")
    out = run(["card", tiny_results, "--data-dir", birds, "--out", page, *flags(evaluator_dir)], capsys)
    assert out.strip() == f"metric card: {page}"
    text = open(page, encoding="utf-8").read()
    for heading in ("# Metric card", "## Numbers", "## Test captions and their images"):
        assert heading in text
    for stage in ("Stage-I 64×64", "Stage-II 256×256"):
        assert f"| attributes: body colour | {stage} |" in text
        assert f"| R-precision (1 caption in 100) | {stage} |" in text
        assert f"| FID | {stage} | not measured: no InceptionV3 weights" in text
        assert f"| IS (ImageNet InceptionV3) | {stage} | not measured" in text
    folder = str(tmp_path / "pages" / "tiny")
    for s in (1, 2):
        assert len(io.generated_images(os.path.join(folder, f"stage{s}"))) == 16
    assert f"`python evaluate.py fid --real test --fake {folder}/stage1 --data-dir {birds}`" in text
    for s in (1, 2):  # the images are generate.py's, pixel for pixel
        cmd = f"python generate.py --stage {s} --results-dir {tiny_results} --data-dir {birds} --out {folder}/stage{s}"
        assert cmd in text
        generate.main(shlex.split(cmd.replace(folder, str(tmp_path / "again")))[2:])
        for _, _, path in io.generated_images(os.path.join(folder, f"stage{s}")):
            again = os.path.join(tmp_path / "again", f"stage{s}", os.path.basename(path))
            np.testing.assert_array_equal(io.load_image(path), io.load_image(again))
    assert len(io.generated_images(os.path.join(folder, "real"))) == 16  # synthetic: every row, the attribute ceiling

    links = _linked_files(page)
    assert len(links) == 8 * 3 and all(os.path.isfile(os.path.join(os.path.dirname(page), p)) for p in links)
    test = load_dataset(birds, "test", 64)
    first_caption = open(dataset_of(birds).caption_path(birds, test.filenames[0], test.class_ids[0]))
    assert f"| 0 | {first_caption.readline().strip()} |" in text

    # the command beside a number gives that number
    row = next(line for line in text.splitlines() if line.startswith("| R-precision") and "Stage-II" in line)
    value = row.split(" | ")[2].split(" ± ")[0]
    cmd = shlex.split(row.rsplit("`", 2)[1])
    assert cmd[:3] == ["python", "evaluate.py", "rprecision"]
    r = json.loads(run(cmd[2:] + ["--json"], capsys))
    assert f"{r['r_precision']:.3f}" == value and r["evaluator_trained_s"] is None


def test_the_card_measures_fid_and_is_with_inception_weights(birds_copy, tiny_results, tmp_path, capsys):
    import keras
    from keras import layers

    def tiny_inception(include_top, weights_path):
        keras.utils.set_random_seed(0)
        x = keras.Input((32, 32, 3))
        h = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, strides=2)(x))
        return keras.Model(x, layers.Dense(10, activation="softmax")(h) if include_top else layers.Dense(4)(h))

    page = str(tmp_path / "card.md")
    argv = ["card", tiny_results, "--data-dir", birds_copy, "--out", page, "--evaluator-epochs", "1", "--grid", "2"]
    run(argv, capsys, factory=tiny_inception)
    text = open(page, encoding="utf-8").read()
    fid = [line for line in text.splitlines() if line.startswith("| FID |")]
    inception_score = [line for line in text.splitlines() if line.startswith("| IS ")]
    assert len(fid) == len(inception_score) == 2 and "not measured" not in text
    assert all(re.search(r"\| \d+\.\d\d \(16 images against 16 real\) \| \d+\.\d\d \(16 real training", f) for f in fid)
    assert all(
        re.search(r"\| \d+\.\d{3} ± \d+\.\d{3} \(16 images, 10 splits\) \| \d+\.\d{3} ± ", s) for s in inception_score
    )
    assert len(_linked_files(page)) == 2 * 3


def test_card_bad_inputs_are_one_line(birds, tmp_path, capsys):
    assert "stage1_config.json not found" in fails(["card", str(tmp_path / "none"), "--data-dir", birds], capsys)
    (tmp_path / "r").mkdir()
    assert "ending in .md" in fails(["card", str(tmp_path / "r"), "--out", str(tmp_path / "card")], capsys)


def test_the_demo_prints_the_cards_command(capsys):
    from stackgan import demo

    config = types.SimpleNamespace(results_dir="results/demo", stage=1, log_dir="logs/demo", dataset="birds")
    assert demo.report(types.SimpleNamespace(config=config, eval_attributes=None, test_split=None)) is None
    assert "python evaluate.py card results/demo   (writes results/demo/card.md)" in capsys.readouterr().out


def test_the_trained_demo_nears_its_r_precision_ceiling(trained_demo, tmp_path, capsys):
    """The demo's Stage-I, 16 of its 56 epochs, drawing caption 0 of every test bird: its R-precision against that of
    the real test birds (the ceiling), with the evaluator the synthetic birds get by default."""
    birds, results = trained_demo
    images, evaluators = str(tmp_path / "images"), str(tmp_path / "evaluator")
    generate.main(["--stage", "1", "--results-dir", results, "--data-dir", birds, "--out", images])
    argv = ["rprecision", "--images", images, "--data-dir", birds, "--evaluator-dir", evaluators, "--json"]
    r = json.loads(run(argv, capsys))
    assert r["images"] == 160 and r["evaluator_trained_s"] is not None and r["real_r_precision"] >= 0.9, r
    assert r["r_precision"] >= 0.6 * r["real_r_precision"] and r["r_precision"] >= 4 * r["unrelated"], r
