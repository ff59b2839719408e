"""bench.py: one JSON line, and a chapter-loop baseline that really trains (else the ratio means nothing)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bench
from stackgan import benchmark, runtime

TINY = ["--gf-dim", "8", "--df-dim", "4", "--batch-size", "4", "--steps", "2", "--warmup", "1", "--xla", "off"]


def test_bench_prints_one_json_line_with_the_baseline_ratio(capsys):
    default_xla = [a for a in TINY if a not in ("--xla", "off")]  # the rest of this file: off, to save compiling
    result = bench.main(["--stage", "1", "--baseline", *default_xla])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == result
    flags, cap = runtime.cpu_info()["flags"], runtime.onednn_max_isa_env()
    auto = runtime.choose_xla("auto", runtime.visible_gpus(), result["mixed_precision"], 1, flags, cap)
    assert result["xla"] == auto[0]
    assert result["img_per_s"] > 0 and result["baseline_img_per_s"] > 0
    assert abs(result["speedup"] - result["img_per_s"] / result["baseline_img_per_s"]) < 0.05
    assert (result["stage"], result["batch_size"], result["backend"]) == (1, 4, "tensorflow")


def test_chapter_loop_baseline_updates_both_networks():
    config = {"gf_dim": 8, "df_dim": 4, "z_dim": 100, "condition_dim": 128, "embedding_dim": 1024}
    step = benchmark.chapter_loop_step(config, 1, 4, None)
    dis, gen = step.dis, step.gen
    d_before = [w.numpy().copy() for w in dis.trainable_weights]
    g_before = [w.numpy().copy() for w in gen.trainable_weights]
    loss = step(benchmark.random_batches(1, 4, 0, np.asarray)[0])
    assert np.isfinite(loss)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(d_before, dis.trainable_weights))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(g_before, gen.trainable_weights))


def test_bench_feeds_the_real_input_pipeline(birds, capsys):
    result = bench.main(["--stage", "1", "--data-dir", birds, *TINY])
    assert result["input"] == "pipeline" and result["img_per_s"] > 0


def test_pipeline_only_times_the_input_alone(birds):
    result = bench.main(["--stage", "1", "--pipeline-only", "--data-dir", birds, "--batch-size", "4"])
    assert result["backend"] == "tf.data" and result["input"] == "pipeline" and result["img_per_s"] > 0
    assert "CPU" in result["device"] or "GPU" in result["device"] or "x " in result["device"]


def test_pipeline_only_times_the_host_path_with_and_without_the_crop(birds):
    args = ["--stage", "1", "--pipeline-only", "--data-dir", birds, "--batch-size", "4", "--input", "host"]
    result = bench.main(args + ["--steps", "4", "--warmup", "1"])
    assert result["images_on"] == "host" and result["img_per_s"] > 0
    assert result["host_read_img_per_s"] > 0 and result["host_read_and_cropped_img_per_s"] > 0


def test_bench_times_the_step_on_the_host_path(birds):
    result = bench.main(["--stage", "1", "--data-dir", birds, "--input", "host", *TINY])
    assert result["images_on"] == "host" and result["img_per_s"] > 0


def test_auto_precision_is_reported_with_its_reason():
    result = bench.main(["--stage", "1", *TINY, "--steps-per-call", "2"])
    assert result["mixed_precision"] in ("off", "bf16", "fp16") and result["precision_reason"].startswith("auto")
    assert result["steps_per_call"] == 2


def test_memory_only_estimates_a_split_of_any_size_per_gpu_size():
    args = ["--stage", "2", "--gf-dim", "8", "--df-dim", "4", "--batch-size", "4", "--mixed-precision", "off"]
    result = bench.main([*args, "--memory-only", "--images", "4000", "--gpu-gib", "1", "4"])
    stored = 4000 * (304 * 304 * 3 + 10 * 1024 * 4) / 2**30  # uint8 crops at their stored size, float32 embeddings
    on_device, on_host = result["estimate_gib"]["device"], result["estimate_gib"]["host"]
    assert abs(on_device - on_host - stored) < 0.02 and on_host < 0.1
    assert result["cards"]["1 GiB"] == dict(input="host", needs_gib=on_host, fits=True)  # 1.2 GiB of images: host
    assert result["cards"]["4 GiB"] == dict(input="device", needs_gib=on_device, fits=True)
    assert result["line"].startswith("Memory estimate: at least ") and "float32" in result["line"]


# ---------------------------------------------------------------------------
# --backend jax: the same Keras networks, optimizers and losses, jitted under Keras' JAX backend
# ---------------------------------------------------------------------------
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = dict(stage=1, batch_size=4, gf_dim=8, df_dim=4, g_lr=0.01, d_lr=0.01, seed=0)

# Runs under KERAS_BACKEND=jax with TensorFlow unimportable (as on the GPU machine): the JAX step on the weights
# the TensorFlow trainer saved, two steps with the trainer's noise z, then one drawing its own.
JAX_SIDE = """
import json, sys
sys.modules["tensorflow"] = None  # the GPU machine has no TensorFlow
import numpy as np
import jax, keras
from stackgan import benchmark
from stackgan.config import StageConfig

folder = sys.argv[1]
inputs = np.load(f"{folder}/inputs.npz")
config = StageConfig(**json.loads(sys.argv[2]))
trainer = benchmark.JaxTrainer(config, "off")
trainer.gen.load_weights(f"{folder}/gen.weights.h5")
trainer.dis.load_weights(f"{folder}/dis.weights.h5")
trainer.state = trainer.read_state()
values = lambda variables: [np.array(v.value) for v in variables]
before = {name: values(getattr(trainer, name).variables) for name in ("gen", "dis")}
batch = tuple(jax.numpy.asarray(inputs[k]) for k in ("images", "embeddings", "wrong"))
losses = [trainer.train_step(batch, jax.numpy.asarray(inputs[f"z{i}"])) for i in range(2)]
trainer.assign_back()
moving = lambda model: [v.numpy().tolist() for v in model.non_trainable_variables if v.name.startswith("moving_")]
out = {"gen_moving": moving(trainer.gen), "dis_moving": moving(trainer.dis)}  # after the TensorFlow trainer's 2 steps
losses.append(trainer.train_step(batch))
trainer.assign_back()
after = {name: values(getattr(trainer, name).variables) for name in ("gen", "dis")}
out.update({f"{k}_{i}": float(v) for i, step in enumerate(losses) for k, v in step.items()})
for name in ("gen", "dis"):
    model = getattr(trainer, name)
    for kind, variables in (("trainable", model.trainable_variables), ("moving", model.non_trainable_variables)):
        indices = [i for i, v in enumerate(model.variables) if any(v is w for w in variables)]
        if kind == "moving":
            indices = [i for i in indices if model.variables[i].name.startswith("moving_")]
        out[f"{name}_{kind}_changed"] = [bool(np.any(before[name][i] != after[name][i])) for i in indices]
print(json.dumps(out))
"""


class ZRecorder:
    """The trainer's noise generator, keeping the z of its latest step."""

    def __init__(self, generator):
        import tensorflow as tf

        self.generator, self.last = generator, tf.Variable(tf.zeros((4, 100)), trainable=False)

    def normal(self, shape):
        z = self.generator.normal(shape)
        self.last.assign(z)
        return z


@pytest.fixture(scope="module")
def tensorflow_and_jax_steps(tmp_path_factory):
    """The TensorFlow trainer's losses and batch-norm statistics over two steps from saved weights, and the JAX
    step's over the same two steps and one more (JAX_SIDE's output). The conditioning noise is switched off in
    the saved weights (log sigma -20): the backends draw it differently."""
    from stackgan.config import StageConfig
    from stackgan.training.step import StackGANTrainer

    folder = tmp_path_factory.mktemp("jax")
    trainer = StackGANTrainer(StageConfig(**TINY_CONFIG))
    ca = trainer.gen.get_layer("ca_model").get_layer("ca_dense")
    kernel, bias = ca.get_weights()
    half = kernel.shape[1] // 2
    kernel[:, half:], bias[half:] = 0.0, -100.0  # LeakyReLU(0.2): log sigma = -20
    ca.set_weights([kernel, bias])
    trainer.gen.save_weights(str(folder / "gen.weights.h5"))
    trainer.dis.save_weights(str(folder / "dis.weights.h5"))
    images, embeddings, wrong = benchmark.random_batches(1, 4, 0, np.asarray)[0]
    trainer.noise = ZRecorder(trainer.noise)
    tf_losses, zs = [], []
    for _ in range(2):
        tf_losses.append({k: float(v) for k, v in trainer.train_step((images, embeddings, wrong)).items()})
        zs.append(trainer.noise.last.numpy())
    np.savez(folder / "inputs.npz", images=images, embeddings=embeddings, wrong=wrong, z0=zs[0], z1=zs[1])
    moving = lambda model: [v.numpy() for v in model.non_trainable_variables if v.name.startswith("moving_")]
    tensorflow = dict(losses=tf_losses, gen_moving=moving(trainer.gen), dis_moving=moving(trainer.dis))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-c", JAX_SIDE, str(folder), json.dumps(TINY_CONFIG)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return tensorflow, json.loads(done.stdout.strip().splitlines()[-1])


def test_jax_step_computes_the_tensorflow_trainers_losses_and_statistics(tensorflow_and_jax_steps):
    tensorflow, jax = tensorflow_and_jax_steps
    for step in range(2):  # the second step's losses follow from the first step's updates, with lr 0.01
        for key, expected in tensorflow["losses"][step].items():
            assert abs(jax[f"{key}_{step}"] - expected) <= 1e-4 + 1e-3 * abs(expected), (key, step)
    moved = [abs(jax["d_loss_1"] - jax["d_loss_0"]), abs(jax["g_loss_1"] - jax["g_loss_0"])]
    assert min(moved) > 1e-2  # the updates changed the losses by far more than the backends differ
    for name in ("gen", "dis"):
        assert len(jax[f"{name}_moving"]) == len(tensorflow[f"{name}_moving"]) > 0
        for got, expected in zip(jax[f"{name}_moving"], tensorflow[f"{name}_moving"]):
            np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_jax_step_trains_both_networks_and_their_batch_norm_statistics(tensorflow_and_jax_steps):
    _, jax = tensorflow_and_jax_steps
    assert all(np.isfinite(v) for k, v in jax.items() if k[-2:] in ("_0", "_1", "_2"))
    assert jax["d_loss_2"] != jax["d_loss_1"] and jax["g_loss_2"] != jax["g_loss_1"]  # the step drawing its own z
    for name in ("gen", "dis"):
        assert jax[f"{name}_trainable_changed"] and all(jax[f"{name}_trainable_changed"]), name
        assert jax[f"{name}_moving_changed"] and all(jax[f"{name}_moving_changed"]), name


def test_bench_jax_backend_runs_afresh_and_counts_the_steps_flops(capsys):
    """From this process, whose Keras runs on TensorFlow, bench.py --backend jax runs in a fresh process."""
    args = ["--backend", "jax", "--stage", "1", "--gf-dim", "8", "--df-dim", "4", "--batch-size", "2"]
    result = bench.main([*args, "--steps", "1", "--warmup", "1", "--mixed-precision", "off", "--peak-tflops", "1"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert (result["backend"], result["stage"], result["mixed_precision"]) == ("jax", 1, "off")
    assert result["img_per_s"] > 0 and result["bf16_peak_tflop_per_s"] == 1
    counted, compiled = result["step_tflop"], result["xla_step_tflop"]
    assert 0.8 < counted / compiled < 1.25  # the count from the networks against XLA's
    assert result["share_of_bf16_peak"] == result["tflop_per_s"] > 0
