"""Training end to end on the shared synthetic set (stage1.py, stage2.py, stackgan.training): files written, logs,
resume, the frozen Stage-I generator, one-line errors; and the step itself (stackgan.training.step)."""

import json
import os
import re

import numpy as np
import pytest

import stage1
from helpers import TINY, TINY_NETWORKS, common, run_cli
from stackgan import api, io
from stackgan.cli import run_main
from stackgan.config import StageConfig
from stackgan.datasets.cache import load_dataset
from stackgan import config as command
from stackgan.training import loop
from stackgan.training import input as training_input
from stackgan.config import learning_rate_at
from stackgan.training.step import LOSS_KEYS, StackGANTrainer, stackgan_losses


def tiny_config(**changes):
    return StageConfig(stage=1, batch_size=8, **dict(TINY_NETWORKS, **changes))


@pytest.fixture(scope="module")
def stage1_run(birds, tmp_path_factory):
    """Stage-I trained two epochs with tiny widths; shared by the tests that only read its outputs."""
    results, logs = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("logs")
    stage1.main(common(birds, results, logs) + TINY + ["--epochs", "2"])
    return results, logs


def test_stage1_writes_weights_config_grids_checkpoints_and_logs(stage1_run):
    results, logs = stage1_run
    for name in (
        "stage1_gen.weights.h5",
        "stage1_dis.weights.h5",
        "stage1_config.json",
        "stage1/epoch_0001.png",
        "stage1/epoch_0002.png",
    ):
        assert (results / name).is_file(), name
    config = json.loads((results / "stage1_config.json").read_text())
    assert (config["gf_dim"], config["df_dim"], config["z_dim"], config["condition_dim"]) == (8, 4, 8, 8)
    assert config["epochs_trained"] == 2
    assert any(f.startswith("ckpt-2") for f in os.listdir(results / "stage1_ckpt"))
    assert os.listdir(logs / "stage1"), "no TensorBoard event file"
    assert not [f for f in os.listdir(results) if ".tmp-" in f], "a temporary file was left behind"


def test_tensorboard_logs_hold_the_losses_and_the_grid(stage1_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, logs = stage1_run
    events = EventAccumulator(str(logs / "stage1"), size_guidance={"tensors": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    for tag in (
        "loss/d_loss",
        "loss/d_loss_real",
        "loss/d_loss_fake",
        "loss/d_loss_wrong",
        "loss/g_loss",
        "loss/kl_loss",
        "D/d_real",
        "D/d_fake",
        "lr/generator",
        "lr/discriminator",
        "samples",
        "eval/body",
        "eval/wing",
        "eval/both",
        "eval/both_unseen",
    ):
        assert tag in tags, tag
    import tensorflow as tf

    values = [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors("loss/d_loss")]
    assert len(values) == 2 and all(np.isfinite(values))


def test_grid_is_rescaled_from_tanh(stage1_run):
    from PIL import Image

    results, _ = stage1_run
    grid = np.asarray(Image.open(results / "stage1" / "epoch_0002.png"))
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[:2] == (2 + 2 * 66, 2 + 8 * 66)  # 16 test images, 8 per row, 64 px + 2 px padding
    tiles = grid[2:, 2:].reshape(2, 66, 8, 66, 3)[:, :64, :, :64].astype(float)  # the 16 samples
    assert len(np.unique(tiles)) > 20 and 40 < tiles.mean() < 215  # tanh output mapped to [0,255], not clipped
    np.testing.assert_array_equal(io.to_uint8(np.array([-1.0, 0.0, 1.0])), [0, 128, 255])


def test_one_step_changes_both_networks_and_losses_are_finite(birds):
    trainer = StackGANTrainer(tiny_config())
    split = load_dataset(birds, "train", 76)
    batch = next(iter(training_input.make_dataset(split, 8, 64, augment=True, seed=0)))
    g_before = [v.numpy().copy() for v in trainer.gen.trainable_variables]
    d_before = [v.numpy().copy() for v in trainer.dis.trainable_variables]
    metrics = {k: float(v) for k, v in trainer.train_step(batch).items()}
    assert all(np.isfinite(list(metrics.values())))
    assert metrics["d_loss"] == pytest.approx(
        metrics["d_loss_real"] + 0.5 * (metrics["d_loss_fake"] + metrics["d_loss_wrong"]), rel=1e-5
    )
    assert metrics["g_loss"] == pytest.approx(metrics["g_loss_adv"] + 2.0 * metrics["kl_loss"], rel=1e-5)
    changed = lambda before, now: [not np.array_equal(b, v.numpy()) for b, v in zip(before, now)]
    assert all(changed(g_before, trainer.gen.trainable_variables))
    assert all(changed(d_before, trainer.dis.trainable_variables))
    assert int(trainer.g_opt.iterations.numpy()) == int(trainer.d_opt.iterations.numpy()) == 1


def test_losses_match_the_closed_form():
    logits = np.array([[0.0], [2.0]], "float32")
    mls = np.zeros((2, 8), "float32")
    losses = stackgan_losses(logits, logits, logits, mls, kl_coef=2.0, global_batch_size=2)
    bce = lambda t, x: np.mean(np.logaddexp(0, x) - t * x)
    assert float(losses["d_loss_real"]) == pytest.approx(bce(0.9, logits), rel=1e-5)
    assert float(losses["d_loss_fake"]) == pytest.approx(bce(0.0, logits), rel=1e-5)
    assert float(losses["kl_loss"]) == pytest.approx(0.0, abs=1e-7)
    assert float(losses["d_real"]) == pytest.approx(np.mean(1 / (1 + np.exp(-logits))), rel=1e-5)


def test_resume_continues_from_the_next_epoch_with_the_optimizer_state(birds, tmp_path, capsys):
    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY + ["--checkpoint-every", "1"]
    stage1.main(args + ["--epochs", "1"])
    capsys.readouterr()
    stage1.main(args + ["--epochs", "2"])
    out = capsys.readouterr().out
    assert "Resumed from" in out and "at epoch 1 (optimizer step 6)" in out  # 48 images / batch 8
    assert "epoch 1/2" not in out.replace("Resumed", "") and "stage1 epoch 2/2" in out
    config = json.loads((tmp_path / "r" / "stage1_config.json").read_text())
    assert config["epochs_trained"] == 2
    trainer = StackGANTrainer(tiny_config())
    ckpt = trainer.checkpoint()
    import tensorflow as tf

    ckpt.restore(tf.train.latest_checkpoint(str(tmp_path / "r" / "stage1_ckpt"))).expect_partial()
    assert int(trainer.epoch.numpy()) == 2 and int(trainer.g_opt.iterations.numpy()) == 12
    stage1.main(args + ["--epochs", "2"])
    assert "Already trained 2 epochs" in capsys.readouterr().out


def test_resume_with_other_widths_is_refused(birds, tmp_path, capsys):
    args = common(birds, tmp_path / "r", tmp_path / "l")
    stage1.main(args + TINY + ["--epochs", "1"])
    wider = [a if a != "4" else "6" for a in TINY]  # --df-dim 6
    with pytest.raises(SystemExit) as exit_info:
        run_main(stage1.main, args + wider + ["--epochs", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "df_dim=4 (now 6)" in err and "--fresh" in err and err.count("\n") == 1


def test_resume_of_a_checkpoint_of_other_networks_is_refused_in_one_line(birds, tmp_path, capsys):
    import models
    import tensorflow as tf
    from stackgan.layers import CHAPTER_KERNELS

    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY
    stage1.main(args + ["--epochs", "1"])
    # A checkpoint of a generator with other layers: Keras' UpSampling2D + Conv2D blocks, not UpSampleConv2D.
    two_layer = models.build_generator(1, dict(TINY_NETWORKS, embedding_dim=1024), CHAPTER_KERNELS)
    tf.train.Checkpoint(gen=two_layer, epoch=tf.Variable(2, dtype=tf.int64)).save(
        str(tmp_path / "r" / "stage1_ckpt" / "ckpt")
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(stage1.main, args + ["--epochs", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit these networks" in err and "--fresh" in err and err.count("\n") == 1
    (gen,), _ = api.load_generators(str(tmp_path / "r"), 1)  # its exported weights still load
    assert gen.count_params() > 0


def test_stage2_trains_on_a_frozen_stage1(stage1_run, birds, tmp_path):
    results1, _ = stage1_run
    results = tmp_path / "r"
    results.mkdir()
    for name in ("stage1_gen.weights.h5", "stage1_config.json"):
        (results / name).write_bytes((results1 / name).read_bytes())
    before = (results / "stage1_gen.weights.h5").read_bytes()
    (g1,), _ = api.load_generators(str(results), 1)
    weights_before = [w.numpy().copy() for w in g1.weights]
    ctx = loop.run(
        command.parse_args(
            2,
            common(birds, results, tmp_path / "l")
            + ["--gf-dim", "4", "--df-dim", "2", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "2"],
        )
    )
    assert ctx.config.z_dim == 8 and ctx.config.gf_dim == 4  # Stage-I's settings carried over
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(weights_before, ctx.trainer.stage1_gen.weights))
    assert (results / "stage1_gen.weights.h5").read_bytes() == before
    for name in ("stage2_gen.weights.h5", "stage2_dis.weights.h5", "stage2_config.json", "stage2/epoch_0001.png"):
        assert (results / name).is_file(), name
    from PIL import Image

    grid = Image.open(results / "stage2" / "epoch_0001.png")
    assert grid.size[1] > 256 and grid.size[0] > 512  # 64x64 input (upscaled) beside each 256x256 output


def test_missing_data_exits_2_with_one_line(tmp_path):
    result = run_cli(
        "stage1.py", "--data-dir", str(tmp_path / "nowhere"), "--results-dir", str(tmp_path / "r"), "--epochs", "1"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "nowhere" in line and "data.py" in line


def test_stage2_without_stage1_weights_exits_2_naming_the_file_and_stage1(tmp_path, birds):
    result = run_cli("stage2.py", "--data-dir", birds, "--results-dir", str(tmp_path / "empty"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "stage1_config.json" in line and "python stage1.py" in line


def test_stage2_with_mismatched_stage1_weights_exits_2(stage1_run, birds, tmp_path):
    results1, _ = stage1_run
    results = tmp_path / "r"
    results.mkdir()
    (results / "stage1_gen.weights.h5").write_bytes((results1 / "stage1_gen.weights.h5").read_bytes())
    config = json.loads((results1 / "stage1_config.json").read_text())
    (results / "stage1_config.json").write_text(json.dumps(dict(config, gf_dim=16)))
    result = run_cli("stage2.py", "--data-dir", birds, "--results-dir", str(results), "--gf-dim", "4", "--df-dim", "2")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "stage1_gen.weights.h5" in line and "python stage1.py" in line


@pytest.mark.parametrize(
    "flag,value", [("--epochs", "0"), ("--gf-dim", "7"), ("--batch-size", "1000"), ("--g-ema", "1.5")]
)
def test_bad_values_exit_2(birds, tmp_path, flag, value):
    result = run_cli("stage1.py", "--data-dir", birds, "--results-dir", str(tmp_path / "r"), *TINY, flag, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and value in result.stderr


def test_help_documents_every_flag():
    for script in ("stage1.py", "stage2.py"):
        out = run_cli(script, "--help").stdout
        for flag in (
            "--data-dir",
            "--results-dir",
            "--log-dir",
            "--epochs",
            "--batch-size",
            "--g-lr",
            "--d-lr",
            "--lr-decay-epochs",
            "--kl-coef",
            "--gf-dim",
            "--df-dim",
            "--no-augment",
            "--seed",
            "--sample-every",
            "--checkpoint-every",
            "--fresh",
            "--demo",
            "--mixed-precision",
            "--distribute",
            "--g-ema",
        ):
            assert flag in out, (script, flag)


def test_learning_rate_halves_every_decay_period():
    assert [learning_rate_at(2e-4, e, 600) for e in (0, 599, 600, 1200)] == [2e-4, 2e-4, 1e-4, 5e-5]


def test_g_ema_samples_the_average_and_leaves_the_training_weights(birds, tmp_path):
    trainer = StackGANTrainer(tiny_config(g_ema=0.75))
    split = load_dataset(birds, "train", 76)
    batches = iter(training_input.make_dataset(split, 8, 64, augment=True, seed=0))
    after = []
    for _ in range(2):
        trainer.train_step(next(batches))
        after.append([v.numpy().copy() for v in trainer.gen.trainable_variables])
    with trainer.sampling_generator() as gen:
        averaged = [v.numpy().copy() for v in gen.weights]
        for first, second, avg in zip(*after, gen.trainable_variables):
            np.testing.assert_allclose(avg.numpy(), 0.75 * first + 0.25 * second, rtol=1e-5, atol=1e-7)
    for second, live in zip(after[1], trainer.gen.trainable_variables):
        np.testing.assert_array_equal(live.numpy(), second)  # training continues from its own weights
    # The average is part of the checkpoint: a resumed run samples the same generator.
    path = trainer.checkpoint().save(str(tmp_path / "ckpt"))
    restored = StackGANTrainer(tiny_config(g_ema=0.75))
    restored.checkpoint().restore(path).assert_existing_objects_matched()
    with restored.sampling_generator() as gen:
        for a, b in zip(gen.weights, averaged):
            np.testing.assert_array_equal(a.numpy(), b)


def test_g_ema_exports_the_average_and_resume_needs_the_same_setting(birds, tmp_path, capsys):
    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY
    stage1.main(args + ["--epochs", "1", "--g-ema", "0.9"])
    assert json.loads((tmp_path / "r" / "stage1_config.json").read_text())["g_ema"] == 0.9
    (gen,), _ = api.load_generators(str(tmp_path / "r"), 1)
    trainer = StackGANTrainer(tiny_config(g_ema=0.9))
    import tensorflow as tf

    trainer.checkpoint().restore(tf.train.latest_checkpoint(str(tmp_path / "r" / "stage1_ckpt"))).expect_partial()
    with trainer.sampling_generator() as averaged:
        for exported, average in zip(gen.trainable_variables, averaged.trainable_variables):
            np.testing.assert_array_equal(exported.numpy(), average.numpy())
    assert any(
        not np.array_equal(e.numpy(), v.numpy())
        for e, v in zip(gen.trainable_variables, trainer.gen.trainable_variables)
    )
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(stage1.main, args + ["--epochs", "2"])
    assert exit_info.value.code == 2 and "g_ema=0.9 (now None)" in capsys.readouterr().err


def test_demo_report_scores_every_caption_of_every_test_bird(birds, tmp_path, capsys):
    stage1.main(common(birds, tmp_path / "r", tmp_path / "l") + TINY + ["--demo", "--epochs", "1"])
    out = capsys.readouterr().out
    line = re.search(
        r"Attributes of 160 generated 64x64 test images \(16 birds x 10 captions, (\d+) of pairs never .*", out
    )
    assert line and int(line.group(1)) > 0, out
    assert re.search(
        r": body [\d.]+, wing [\d.]+, both [\d.]+ \(seen pairs [\d.]+, unseen pairs [\d.]+\)", line.group(0)
    )
    assert re.search(r"most frequent mistakes: (none|[a-z]+/[a-z]+ drawn as [a-z ]+/[a-z ]+ \d+)", line.group(0))


def test_steps_per_call_gives_the_same_weights_as_single_steps(birds):
    split = load_dataset(birds, "train", 76)
    weights, sums = [], []
    for calls in ([3], [1, 1, 1]):
        trainer = StackGANTrainer(tiny_config(seed=5), source=training_input.DeviceSplit(split, 64))
        iterator = iter(training_input.make_plan_dataset(split, 8, 64, seed=0))
        for count in calls:
            trainer.train_steps(iterator, count)
        assert int(trainer.g_opt.iterations.numpy()) == 3
        sums.append(trainer.pop_mean_losses())
        weights.append([v.numpy() for v in trainer.gen.weights + trainer.dis.weights])
    for one_call, single in zip(*weights):
        np.testing.assert_allclose(one_call, single, rtol=1e-4, atol=1e-6)
    assert sums[0] == pytest.approx(sums[1], rel=1e-4)
    assert set(sums[0]) == set(LOSS_KEYS) and all(np.isfinite(list(sums[0].values())))


def test_a_diverged_epoch_stops_the_run_and_keeps_the_last_good_checkpoint(birds, tmp_path, capsys):
    args = common(birds, tmp_path / "r", tmp_path / "l") + TINY
    stage1.main(args + ["--epochs", "1"])
    exported = (tmp_path / "r" / "stage1_gen.weights.h5").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # steps of 1e30 overflow the weights within the epoch
        run_main(stage1.main, args + ["--epochs", "2", "--g-lr", "1e30", "--d-lr", "1e30"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "diverged in epoch 2" in err and re.search(r"loss=(nan|inf)", err) and "last good checkpoint" in err
    ckpts = sorted(f for f in os.listdir(tmp_path / "r" / "stage1_ckpt") if f.startswith("ckpt-"))
    assert ckpts and all(f.startswith("ckpt-1.") for f in ckpts)
    assert (tmp_path / "r" / "stage1_gen.weights.h5").read_bytes() == exported


def test_startup_line_says_what_the_run_is_on(birds, tmp_path, capsys, monkeypatch):
    """Also auto on an AVX2 CPU class (oneDNN capped to it; this process's kernels are already loaded, so only the
    choices change): XLA and forward-convolution gradients, the whole run compiled with XLA."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    default_xla = [a for a in TINY if a not in ("--xla", "off")]
    stage1.main(
        common(birds, tmp_path / "r", tmp_path / "l") + default_xla + ["--epochs", "1", "--mixed-precision", "off"]
    )
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("Running on"))
    assert "precision float32 (requested)" in line and "global batch 8" in line and "1 replica" in line
    assert "XLA on (auto: faster than oneDNN alone on AVX2 CPUs)" in line and "AVX2)" in line
    assert "conv gradients forward (auto: faster on AVX2 CPUs)" in line
    assert os.path.exists(tmp_path / "r" / "stage1_gen.weights.h5")


def test_the_xla_step_assembles_plan_batches_on_the_device(birds):
    """--xla auto compiles the step: the device-side batch assembly must be XLA-compilable."""
    from stackgan.runtime import Runtime

    split = load_dataset(birds, "train", 76)
    runtime = Runtime.choose(mixed_precision="off", xla="on")
    trainer = StackGANTrainer(tiny_config(), runtime, source=training_input.DeviceSplit(split, 64))
    trainer.train_steps(iter(training_input.make_plan_dataset(split, 8, 64, seed=0)), 2)
    losses = trainer.pop_mean_losses()
    assert int(trainer.d_opt.iterations.numpy()) == 2 and all(np.isfinite(list(losses.values())))


def test_the_options_beyond_the_chapter_train_both_stages(stage1_run, birds, tmp_path):
    """--matching projection with --text-loss, --hard-wrong, --mix-conditions and --generator-condition film on
    Stage-I, --stage1-l1, film and --residual on Stage-II: each adds its loss to the history (finite) and its layers
    to the networks, and the run's config records it; the API rebuilds the exported film generators."""
    from stackgan import models

    results = tmp_path / "r"
    options = ["--matching", "projection", "--text-loss", "1", "--hard-wrong", "0.5", "--mix-conditions", "0.5"]
    options += ["--generator-condition", "film"]
    ctx = loop.run(command.parse_args(1, common(birds, results, tmp_path / "l") + TINY + ["--epochs", "1", *options]))
    last = ctx.history[-1]
    for key in LOSS_KEYS + ("d_text_loss", "g_text_loss"):
        assert np.isfinite(last[key]), key
    names = {layer.name for layer in ctx.trainer.dis.layers}
    assert {"projection", "projection_logits", "text_head"} <= names and "compressor_dense" not in names
    config = json.loads((results / "stage1_config.json").read_text())
    assert (config["matching"], config["text_loss"], config["hard_wrong"], config["mix_conditions"]) == (
        "projection",
        1.0,
        0.5,
        0.5,
    )
    assert config["generator_condition"] == "film"
    assert sum(isinstance(layer, models.ConditionalAffine) for layer in ctx.trainer.gen.layers) == 4
    # The same heads on Stage-II's discriminator, and Stage-II's L1 to the Stage-I image it refines.
    dis2 = models.build_discriminator(2, dict(TINY_NETWORKS, df_dim=2), text_head=True, matching="projection")
    assert [tuple(o.shape) for o in dis2.outputs] == [(None, 1), (None, 1024)]
    ctx2 = loop.run(
        command.parse_args(
            2,
            common(birds, results, tmp_path / "l")
            + ["--gf-dim", "4", "--df-dim", "2", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "2"]
            + ["--stage1-l1", "10", "--generator-condition", "film", "--residual"],
        )
    )
    assert np.isfinite(ctx2.history[-1]["g_stage1_l1"]) and ctx2.history[-1]["g_stage1_l1"] > 0
    generators, config2 = api.load_generators(str(results), 2)
    assert (config2["generator_condition"], config2["residual"]) == ("film", True)
    assert isinstance(generators[1].get_layer("image"), models.ResidualImage)
    assert [sum(isinstance(layer, models.ConditionalAffine) for layer in g.layers) for g in generators] == [4, 4]
    with ctx2.trainer.sampling_generator() as gen:
        trained = [w.numpy() for w in gen.weights]
    assert len(generators[1].weights) == len(trained)
    for loaded, own in zip(generators[1].weights, trained):
        np.testing.assert_array_equal(loaded.numpy(), own)
