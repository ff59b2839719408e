"""The caption encoder with tiny widths (stackgan.text, text_encoder.py): text checks, padding invariance, train +
resume, save/load/encode, metrics, the bag-of-words baseline, evaluate and the held-out wording accuracy."""

import json
import os
import re
import shutil

import numpy as np
import pytest

import data
import text_encoder
from stackgan import config as settings
from stackgan import io, layout
from stackgan.cli import UserError, run_main
from stackgan.config import EncoderConfig
from stackgan.datasets import synthetic
from stackgan.text import encoder, evaluation, pairs, training


TINY = dict(epochs=1, batch_size=32, lr=1e-2, char_dim=4, conv_dims=(8, 8), rnn_dim=8)
GEN_CONFIG = {"gf_dim": 8, "df_dim": 4, "z_dim": 10, "condition_dim": 4, "embedding_dim": 1024}


def train(data_dir, results, logs, log=lambda *a: None, **settings):
    return training.train(EncoderConfig(data_dir=data_dir, results_dir=results, log_dir=logs, **settings), log=log)


@pytest.fixture(scope="module")
def trained(birds, tmp_path_factory):
    """(results, logs, printed lines) of a one-epoch tiny encoder."""
    root = tmp_path_factory.mktemp("te")
    results, logs, lines = str(root / "results"), str(root / "logs"), []
    train(birds, results, logs, fresh=True, log=lines.append, **TINY)
    return results, logs, lines


def test_normalize_and_check_captions():
    assert encoder.normalize_caption("  A Bird\ufffd\ufffdwith  ÉMERALD wings—and a tail\n") == (
        "a bird with emerald wings and a tail"
    )
    assert encoder.check_captions(["Red bird!"], 20) == ["red bird!"]
    for bad, message in (
        ("", "caption 1 is empty"),
        ("   \t", "caption 1 is empty"),
        ("123 !!! ...", r"caption 1 \('123 !!! \.\.\.'\) has no letters"),
        (
            "\U0001f426\U0001f426 \u2728",
            r"caption 1 \('\U0001f426\U0001f426 \u2728'\) has no letters the encoder reads",
        ),
        ("a" * 21, "caption 1 has 21 characters but the text encoder reads at most 20; shorten it"),
    ):
        with pytest.raises(UserError, match=message):
            encoder.check_captions([bad], 20)
    with pytest.raises(UserError, match="line 7 is empty"):
        encoder.check_captions(["fine", ""], 20, labels=["line 1", "line 7"])
    with pytest.raises(UserError, match="no caption given"):
        encoder.check_captions([], 20)


def test_tokens_and_padding_do_not_change_a_vector():
    config = encoder.make_config(4, (8, 8, 8), 8, 30, "mse", "aligned", embedding_dim=16)
    tokens = encoder.tokenize(["ab", "a bird"], config)
    assert tokens.shape == (2, 9) and tokens.dtype == np.int32  # padded to a multiple of 3 * 3
    vocab = encoder.vocabulary(settings.TEXT_ALPHABET)
    assert list(tokens[0, :3]) == [vocab["a"], vocab["b"], 0] and len(vocab) == len(set(settings.TEXT_ALPHABET))
    assert encoder.tokenize(["x" * 40], config).shape == (1, 36)  # cut at max_length 30, rounded up to 36
    model = encoder.build_encoder(config)
    alone = encoder.encode(model, config, ["a red bird"])
    batched = encoder.encode(model, config, ["a red bird", "a much longer caption about a small bird with wings"])
    np.testing.assert_allclose(batched[0], alone[0], rtol=1e-5, atol=1e-6)


def test_train_writes_weights_config_checkpoint_and_logs(trained):
    results, logs, lines = trained
    config = json.load(open(layout.text_encoder_config_path(results)))
    for key in encoder.ARCHITECTURE_KEYS + ("loss", "target", "output_norm", "epochs_trained", "test_cosine"):
        assert key in config, key
    assert config["epochs_trained"] == 1 and config["conv_dims"] == [8, 8] and config["max_length"] == 201
    assert os.path.isfile(layout.text_encoder_weights_path(results))
    assert os.listdir(layout.text_encoder_checkpoint_dir(results))
    assert any(f.startswith("events.") for f in os.listdir(layout.text_encoder_log_dir(logs)))
    assert any("epoch 1/1: train_loss" in line for line in lines)


def test_resume_fresh_and_mismatch(birds, trained, tmp_path):
    results, logs = str(tmp_path / "r"), str(tmp_path / "l")
    shutil.copytree(trained[0], results)  # one epoch done
    lines = []
    config = train(birds, results, logs, log=lines.append, **dict(TINY, epochs=2))
    assert any("Resumed from" in line and "at epoch 1" in line for line in lines)
    assert config["epochs_trained"] == 2
    assert json.load(open(layout.text_encoder_config_path(results)))["epochs_trained"] == 2
    with pytest.raises(UserError, match=r"trained with rnn_dim=8 \(now 6\); .*--fresh"):
        train(birds, results, logs, **dict(TINY, rnn_dim=6))
    lines = []
    assert train(birds, results, logs, fresh=True, log=lines.append, **dict(TINY, rnn_dim=6))["epochs_trained"] == 1
    assert not any("Resumed" in line for line in lines)


def test_encode_captions_round_trip(trained):
    results, _, _ = trained
    vectors = encoder.encode_captions(["a small yellow bird with dark wings", "A RED BIRD"], results)
    assert vectors.shape == (2, 1024) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    model, config = encoder.load_encoder(results)
    rebuilt = encoder.build_encoder(config)  # from the JSON config alone
    rebuilt.load_weights(layout.text_encoder_weights_path(results))
    np.testing.assert_allclose(encoder.encode(rebuilt, config, ["a red bird"])[0], vectors[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="caption 2 is empty"):
        encoder.encode_captions(["a bird", " "], results)


def test_no_trained_encoder_names_the_command(tmp_path):
    with pytest.raises(
        UserError, match=r"no trained text encoder in .*; run `python text_encoder.py train --results-dir"
    ):
        encoder.encode_captions(["a bird"], str(tmp_path))
    assert encoder.train_command("results/demo/") == "python text_encoder.py train --demo"


def test_cosine_loss_rescales_to_the_embeddings_length(birds, tmp_path):
    train(birds, str(tmp_path / "r"), str(tmp_path / "l"), loss="cosine", **TINY)
    model, config = encoder.load_encoder(str(tmp_path / "r"))
    norms = np.linalg.norm(encoder.encode(model, config, ["a red bird", "a blue bird"], calibrate=False), axis=1)
    np.testing.assert_allclose(norms, config["output_norm"], rtol=1e-4)
    emb = data.load_embeddings(layout.split_files(birds, "train").embeddings)
    assert config["output_norm"] == pytest.approx(np.linalg.norm(emb, axis=2).mean(), rel=1e-3)


def test_word_noise_inserts_drops_and_reorders_words():
    texts = ["this bird is mostly red with dark wings"] * 400
    assert encoder.augment_captions(texts, np.random.default_rng(0), 0.0) == texts
    noisy = encoder.augment_captions(texts, np.random.default_rng(0), 0.15)
    assert noisy == encoder.augment_captions(texts, np.random.default_rng(0), 0.15)  # the rng decides
    assert all(t and re.fullmatch("[a-z ]+", t) for t in noisy)
    lengths = np.array([len(t.split()) for t in noisy])
    assert 0.2 < np.mean(noisy != np.array(texts)) < 0.95 and lengths.min() >= 1
    assert np.mean(lengths) == pytest.approx(8 * (1 + 0.15 - 0.075), rel=0.1)
    assert any(t.split()[0] != "this" and "red" in t for t in noisy)  # some start elsewhere
    assert encoder.augment_captions(["red"] * 50, np.random.default_rng(1), 1.0)[0]  # never empty
    with pytest.raises(UserError, match="--augment 1.5: the word noise rate is a probability"):
        train("unused", "unused", "unused", augment=1.5)


def test_calibration_pushes_shrunken_vectors_out_to_the_training_spread(trained, birds):
    calibration = {"mean": [1.0, 0.0, 0.0], "spread": 2.0, "max_gain": 1.25}
    vectors = np.array([[1.0, 1.8, 0.0], [1.0, 0.0, 1.0], [1.0, 3.0, 0.0]], np.float32)
    out = encoder.calibrated(vectors, calibration)
    np.testing.assert_allclose(out[0], [1.0, 2.0, 0.0], rtol=1e-6)  # out to the spread
    np.testing.assert_allclose(out[1], [1.0, 0.0, 1.25], rtol=1e-6)  # at most max_gain
    np.testing.assert_allclose(out[2], vectors[2])  # never pulled in
    results = trained[0]
    model, config = encoder.load_encoder(results)
    emb = data.load_embeddings(layout.split_files(birds, "train").embeddings)
    np.testing.assert_allclose(config["calibration"]["mean"], emb.reshape(-1, 1024).mean(axis=0), atol=1e-4)
    assert config["calibration"]["max_gain"] == encoder.CALIBRATION_MAX_GAIN and config["calibration"]["spread"] > 0
    texts = ["a small yellow bird with dark wings", "zzz qqq"]
    raw = encoder.encode(model, config, texts, calibrate=False)
    np.testing.assert_allclose(
        encoder.encode_captions(texts, results), encoder.calibrated(raw, config["calibration"]), rtol=1e-5, atol=1e-5
    )


def test_targets_and_metrics():
    rng = np.random.default_rng(0)
    emb = (rng.standard_normal((5, 1, 64)) * 2 + rng.standard_normal((5, 3, 64))).astype(np.float32)
    images, indices = np.repeat(np.arange(5), 4), np.tile(np.arange(4), 5)  # 4 captions, only 3 embeddings
    aligned = pairs.targets_for(emb, images, indices, "aligned")
    np.testing.assert_array_equal(aligned[1], emb[0, 1])
    np.testing.assert_allclose(aligned[3], emb[0].mean(axis=0), rtol=1e-6)  # caption 4 has no embedding 4
    mean = pairs.targets_for(emb, images, indices, "mean")
    np.testing.assert_allclose(mean[1], emb[0].mean(axis=0), rtol=1e-6)
    perfect = evaluation.retrieval_metrics(aligned, emb, images, indices)
    assert perfect["cosine"] == pytest.approx(1.0) and perfect["R@1"] == 1.0 and perfect["R@10"] == 1.0
    assert perfect["alignment_gain"] > 0.05
    averaged = evaluation.retrieval_metrics(mean, emb, images, indices)
    assert abs(averaged["alignment_gain"]) < 1e-6 and averaged["cosine_mean"] == pytest.approx(1.0)
    shuffled = evaluation.retrieval_metrics(np.roll(aligned, 4, axis=0), emb, images, indices)
    assert shuffled["R@1"] == 0.0


def test_bag_of_words_ridge():
    texts = ["red bird", "blue bird", "red wings", "blue wings", "bird", "red", "blue"] * 4
    w = {"red": 1.0, "blue": -1.0, "bird": 0.5, "wings": 2.0}
    targets = np.array([[sum(w[x] for x in t.split()), 1.0] for t in texts], np.float32)
    model = evaluation.BagOfWords(ridge=1e-4).fit(texts, targets)
    np.testing.assert_allclose(model.predict(["red bird", "unknown"]), [[1.5, 1.0], [0.0, 1.0]], atol=0.05)


def test_evaluate_cli(trained, birds, capsys):
    results, _, _ = trained
    assert run_main(text_encoder.main, ["evaluate", "--data-dir", birds, "--results-dir", results, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("encoder", "baseline"):
        assert report[name]["captions"] == 160 and report[name]["images"] == 16
        for key in ("cosine", "R@1", "R@10", "heldout_wording_colour"):
            assert 0.0 <= abs(report[name][key]) <= 1.0, key
    assert run_main(text_encoder.main, ["evaluate", "--data-dir", birds, "--results-dir", results]) == 0
    table = capsys.readouterr().out
    assert "text encoder" in table and "bag of words + ridge" in table and "R@10" in table


def test_heldout_caption_accuracy(trained, birds, tmp_path, capsys):
    import models

    results = str(tmp_path / "results")
    shutil.copytree(trained[0], results)
    gen = models.build_generator(1, GEN_CONFIG)
    io.save_weights(gen, layout.weights_path(results, 1, "gen"))
    io.write_json(layout.config_path(results, 1), dict(GEN_CONFIG, stage=1))
    got = evaluation.heldout_caption_accuracy(results, birds, 1, batch_size=32)
    assert got["images"] == 16 * len(synthetic.HELDOUT_TEMPLATES) and got["stage"] == 1
    for source in ("from_caption", "from_embedding"):
        report = got[source]
        assert report["images"] == got["images"] and report["unseen_images"] > 0
        assert all(0.0 <= report[k] <= 1.0 for k in ("body", "wing", "both", "both_seen", "both_unseen"))
    argv = ["evaluate", "--data-dir", birds, "--results-dir", results, "--generated-stage", "1"]
    assert run_main(text_encoder.main, argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"Stage-1 images from held-out wording \(96 images, \d+ of unseen pairs\): body [\d.]+, wing", out)
    assert "from the set's own embeddings: body" in out
    with pytest.raises(UserError, match="not the synthetic bird set"):
        evaluation.heldout_caption_accuracy(results, str(tmp_path), 1)


def test_train_help_shows_defaults_and_demo_preset(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info:
        text_encoder.main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--epochs EPOCHS" in out and "(default: 60)" in out and "(default: 256,384,256)" in out
    calls = []
    monkeypatch.setattr(training, "train", lambda settings, **k: calls.append(settings) or {})
    monkeypatch.setattr(synthetic, "ensure_synthetic", lambda d: False)
    training.train_demo_encoder("d", "r", "l")
    assert (calls[0].data_dir, calls[0].results_dir, calls[0].log_dir) == ("d", "r", "l")
    assert calls[0].conv_dims == settings.ENCODER_DEMO["conv_dims"]
    with pytest.raises(SystemExit) as exit_info:
        run_main(text_encoder.main, ["train", "--conv-dims", "8,x"])
    assert exit_info.value.code == 2


def test_a_damaged_encoder_checkpoint_folder_is_recovered_or_refused(birds, trained, tmp_path):
    """The caption encoder's checkpoints have the faults of the stages' (stackgan.checkpointing): a garbled state
    file resumes from the newest readable checkpoint, a corrupt config.json is refused naming --fresh."""
    results, logs = str(tmp_path / "r"), str(tmp_path / "l")
    shutil.copytree(trained[0], results)  # one epoch done
    ckpt_dir = layout.text_encoder_checkpoint_dir(results)
    with open(os.path.join(ckpt_dir, "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: {{{")
    lines = []
    assert train(birds, results, logs, log=lines.append, **dict(TINY, epochs=2))["epochs_trained"] == 2
    assert any(f"Recovered {ckpt_dir}: its state file checkpoint is unreadable" in line for line in lines)
    assert any("Resumed from" in line and "at epoch 1" in line for line in lines)
    with open(os.path.join(ckpt_dir, "config.json"), "w") as f:
        f.write("{")
    with pytest.raises(UserError, match=r"config\.json is unreadable .*--fresh"):
        train(birds, results, logs, **dict(TINY, epochs=3))
    assert json.load(open(layout.text_encoder_config_path(results)))["epochs_trained"] == 2
