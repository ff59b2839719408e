"""Every precision on any CPU: the demo chain (Stage-I with its caption encoder, generate.py --caption, Stage-II,
evaluate.py) and bench.py run to the end under bf16 and fp16 forced explicitly, in one process, and leave Keras'
process-wide dtype policy as they found it. bf16 and fp16 are emulated (slow) on most CPUs: tiny widths."""

import json

import keras
import numpy as np
import pytest

import bench
import evaluate
import generate
import stage1
import stage2
from helpers import common
from stackgan import layout
from stackgan.config import StageConfig
from stackgan.datasets.cache import load_dataset
from stackgan.runtime import Runtime
from stackgan.training import input as training_input
from stackgan.training.step import StackGANTrainer

TINY1 = ["--gf-dim", "8", "--df-dim", "4", "--z-dim", "8", "--condition-dim", "8", "--batch-size", "8"]
TINY2 = ["--gf-dim", "4", "--df-dim", "2", "--batch-size", "4", "--steps-per-epoch", "2"]
COMPUTE = {"bf16": "bfloat16", "fp16": "float16"}


@pytest.mark.parametrize("mode", ["bf16", "fp16"])  # float32 runs it in test_train.py and test_learning.py
def test_the_demo_chain_runs_to_the_end_in_every_precision(birds_copy, tmp_path, mode, capsys):
    results, logs = tmp_path / "results", tmp_path / "logs"
    folders = common(birds_copy, results, logs)
    precision = ["--mixed-precision", mode, "--xla", "off", "--epochs", "1"]
    stage1.main(["--demo", *folders, *TINY1, *precision])  # Stage-I, then the demo's caption encoder
    assert keras.config.dtype_policy().name == "float32"
    printed = capsys.readouterr().out
    assert "Attributes of 160 generated 64x64 test images" in printed
    assert "Wrote " in printed and layout.text_encoder_weights_path(str(results)) in printed
    encoder = json.loads(open(layout.text_encoder_config_path(str(results))).read())
    assert encoder["epochs_trained"] == 5  # the demo encoder trained in float32 after a run in `mode`

    out = tmp_path / "samples"
    caption = "a small yellow bird with dark wings"
    assert generate.main(["--results-dir", str(results), "--caption", caption, "--out", str(out)]) == 0
    assert (out / "00000_0.png").is_file()

    stage2.main(["--demo", *folders, *TINY2, *precision])
    assert keras.config.dtype_policy().name == "float32"
    assert "Attributes of 160 generated 256x256 test images" in capsys.readouterr().out
    assert evaluate.main(["attributes", "--images", str(out), "--data-dir", birds_copy, "--split", "test"]) == 0
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_bench_computes_in_the_precision_asked_for_and_puts_the_policy_back(mode):
    args = ["--stage", "1", "--gf-dim", "8", "--df-dim", "4", "--batch-size", "4", "--steps", "1", "--warmup", "1"]
    result = bench.main([*args, "--mixed-precision", mode, "--xla", "off"])
    assert result["mixed_precision"] == mode and result["precision_reason"] == "requested" and result["img_per_s"] > 0
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_the_xla_step_on_device_side_batches_in_reduced_precision(birds, mode):
    """The GPU path on a CPU: XLA, batches assembled inside the step from device variables, bf16 or fp16 with loss
    scaling; the networks compute in `mode`, the weights, outputs and losses stay float32."""
    split = load_dataset(birds, "train", 76)
    config = StageConfig(stage=1, batch_size=8, gf_dim=8, df_dim=4, z_dim=8, condition_dim=8)
    trainer = StackGANTrainer(config, Runtime.choose(mode, "on"), source=training_input.DeviceSplit(split, 64))
    conv = next(layer for layer in trainer.gen.layers if isinstance(layer, keras.layers.Conv2D))
    assert conv.compute_dtype == COMPUTE[mode] and trainer.gen.get_layer("image").compute_dtype == "float32"
    before = [v.numpy().copy() for v in trainer.dis.trainable_variables]
    trainer.train_steps(iter(training_input.make_plan_dataset(split, 8, 64, seed=0)), 2)
    losses = trainer.pop_mean_losses()
    assert int(trainer.d_opt.iterations.numpy()) == 2 and all(np.isfinite(list(losses.values())))
    assert all(v.dtype == "float32" for v in trainer.gen.trainable_variables)
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.dis.trainable_variables))
    assert keras.config.dtype_policy().name == "float32"
