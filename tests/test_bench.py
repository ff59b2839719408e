"""bench.py: one JSON line, and a chapter-loop baseline that really trains (else the ratio means nothing)."""

import json

import numpy as np

import bench
import data

TINY = ["--gf-dim", "8", "--df-dim", "4", "--batch-size", "4", "--steps", "2", "--warmup", "1"]


def test_bench_prints_one_json_line_with_the_baseline_ratio(capsys):
    result = bench.main(["--stage", "1", "--baseline", *TINY])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == result
    assert result["img_per_s"] > 0 and result["baseline_img_per_s"] > 0
    assert abs(result["speedup"] - result["img_per_s"] / result["baseline_img_per_s"]) < 0.05
    assert (result["stage"], result["batch_size"], result["backend"]) == (1, 4, "tensorflow")


def test_chapter_loop_baseline_updates_both_networks():
    config = {"gf_dim": 8, "df_dim": 4, "z_dim": 100, "condition_dim": 128, "embedding_dim": 1024}
    step = bench.chapter_loop_step(config, 1, 4, None)
    models = dict(zip(step.__code__.co_freevars, (c.cell_contents for c in step.__closure__)))
    dis, gen = models["dis"], models["gen"]
    d_before = [w.numpy().copy() for w in dis.trainable_weights]
    g_before = [w.numpy().copy() for w in gen.trainable_weights]
    loss = step(next(bench.random_batches(1, 4, 0, np.asarray)()))
    assert np.isfinite(loss)
    assert all(not np.array_equal(b, w.numpy()) for b, w in zip(d_before, dis.trainable_weights))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(g_before, gen.trainable_weights))


def test_bench_feeds_the_real_input_pipeline(tmp_path, capsys):
    data.write_synthetic(str(tmp_path), n_train=16, n_test=8, seed=0)
    result = bench.main(["--stage", "1", "--data-dir", str(tmp_path), *TINY])
    assert result["input"] == "pipeline" and result["img_per_s"] > 0
