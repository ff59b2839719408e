"""bench.py: one JSON line, and a chapter-loop baseline that really trains (else the ratio means nothing)."""

import json

import numpy as np

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
