"""Mixed precision and tf.distribute: the same training step under other policies and strategies."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers import REPO, TINY_NETWORKS
from stackgan.config import StageConfig
from stackgan.datasets.cache import load_dataset
from stackgan.runtime import Runtime
from stackgan.training.input import make_dataset
from stackgan.training.step import StackGANTrainer

CONFIG = dict(TINY_NETWORKS, embedding_dim=1024)


@pytest.fixture(scope="module")
def batch(birds):
    split = load_dataset(birds, "train", 76)
    return next(iter(make_dataset(split, 8, 64, augment=True, seed=0)))


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_trains_with_float32_outputs_and_losses(batch, mode):
    import keras

    trainer = StackGANTrainer(StageConfig(stage=1, batch_size=8, **TINY_NETWORKS), Runtime.choose(mode, "off"))
    assert keras.config.dtype_policy().name == "float32"  # the run's precision stays with its networks
    assert trainer.gen.layers[-1].compute_dtype == "float32"
    convs = [layer for layer in trainer.gen.layers if layer.__class__.__name__ == "Conv2D"]
    assert convs[0].compute_dtype == ("bfloat16" if mode == "bf16" else "float16")
    before = [v.numpy().copy() for v in trainer.gen.trainable_variables]
    for _ in range(3):
        metrics = trainer.train_step(batch)
    assert all(v.dtype == "float32" and np.isfinite(float(v)) for v in metrics.values())
    assert all(v.dtype == "float32" for v in trainer.gen.trainable_variables)  # master weights
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, trainer.gen.trainable_variables))
    if mode == "fp16":
        assert isinstance(trainer.g_opt, keras.optimizers.LossScaleOptimizer)
        assert isinstance(trainer.d_opt, keras.optimizers.LossScaleOptimizer)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from stackgan.config import StageConfig
    from stackgan.runtime import Runtime
    from stackgan.training.step import StackGANTrainer
    config = StageConfig(stage=1, batch_size=8, seed=3, g_ema=0.9, **json.loads(sys.argv[1]))
    rng = np.random.default_rng(0)
    batch = (rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32"), rng.normal(0, .3, (8, 1024)).astype("float32"),
             rng.uniform(-1, 1, (8, 64, 64, 3)).astype("float32"))
    results = {}
    for name, strategy in [("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
        runtime = Runtime.choose("off", "off")
        runtime.strategy = strategy
        trainer = StackGANTrainer(config, runtime)
        # A zero last convolution makes every fake image 0, whatever the noise: then all of D's terms
        # (D sees real, wrong and fake images in one batch-norm batch) are the same on both setups.
        last_conv = [layer for layer in trainer.gen.layers if layer.__class__.__name__ == "Conv2D"][-1]
        last_conv.kernel.assign(tf.zeros_like(last_conv.kernel))
        dataset = tf.data.Dataset.from_tensors(batch)
        step_input = next(iter(strategy.experimental_distribute_dataset(dataset)))
        metrics = trainer.train_step(step_input)
        results[name] = {k: float(v) for k, v in metrics.items()}
        results[name]["replicas"] = strategy.num_replicas_in_sync
        results[name]["d_steps"] = int(trainer.d_opt.iterations.numpy())
        # After one step the weight average is the weights themselves.
        live = [v.numpy().copy() for v in trainer.gen.trainable_variables]
        with trainer.sampling_generator() as gen:
            results[name]["ema_gap"] = max(float(np.max(np.abs(v.numpy() - w))) for v, w in
                                           zip(gen.trainable_variables, live))
    print("RESULT " + json.dumps(results))
""")


def test_mirrored_strategy_on_two_cpus_matches_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(TINY_NETWORKS)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.split("RESULT ", 1)[1])
    one, mirrored = results["one"], results["mirrored"]
    assert (one["replicas"], mirrored["replicas"]) == (1, 2)
    assert one["d_steps"] == mirrored["d_steps"] == 1
    assert one["ema_gap"] == mirrored["ema_gap"] == 0.0
    # Losses are scaled by the global batch and batch norm is synchronised, so two half-batches compute
    # what one device computes (the noise draws differ per replica, but here the fakes do not depend on them).
    for key in (
        "d_loss",
        "d_loss_real",
        "d_loss_wrong",
        "d_loss_fake",
        "d_real",
        "d_wrong",
        "d_fake",
        "g_loss_adv",
        "kl_loss",
    ):
        assert mirrored[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    assert all(np.isfinite(list(mirrored.values())))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_local_workers_train_together_and_write_one_checkpoint(birds, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    args = [
        sys.executable,
        os.path.join(REPO, "stage1.py"),
        "--distribute",
        "multiworker",
        "--data-dir",
        birds,
        "--results-dir",
        str(tmp_path / "results"),
        "--log-dir",
        str(tmp_path / "logs"),
        "--gf-dim",
        "8",
        "--df-dim",
        "4",
        "--z-dim",
        "8",
        "--condition-dim",
        "8",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--g-ema",
        "0.9",
    ]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="3")
        procs.append(
            subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path)
            )
        )
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "stage1 epoch 1/1" in outputs[0][0]  # the chief reports; the other worker stays quiet
    ckpt_dir = tmp_path / "results" / "stage1_ckpt"
    assert sorted(f for f in os.listdir(ckpt_dir) if f.startswith("ckpt-")) == [
        "ckpt-1.data-00000-of-00001",
        "ckpt-1.index",
    ]
    assert (tmp_path / "results" / "stage1_gen.weights.h5").is_file()
    listing = set(os.listdir(tmp_path / "results"))
    assert ".lock" in listing  # the chief held the folder (the lock file stays; the lock ended with the run)
    assert sorted(listing - {".lock"}) == [  # the other worker's temporary checkpoint is gone
        "stage1",
        "stage1_ckpt",
        "stage1_config.json",
        "stage1_dis.weights.h5",
        "stage1_gen.weights.h5",
        "stage1_history.json",
        "stage1_losses.png",
    ]
