"""generate.py on a tiny fake trained result (random weights, narrow networks)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import cli
import generate
import sampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = {"gf_dim": 8, "df_dim": 4, "z_dim": 10, "condition_dim": 4, "embedding_dim": 1024}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """results/ with stage{1,2}_config.json and stage{1,2}_gen.weights.h5 as training would write them."""
    import models

    out = str(tmp_path_factory.mktemp("results"))
    for stage in (1, 2):
        gen = models.build_generator(stage, CONFIG)
        gen.save_weights(sampling.weights_path(out, stage, "gen"))
        sampling.write_json_atomic(sampling.config_path(out, stage), dict(CONFIG, stage=stage))
    return out


def embeddings(n, captions=None, dim=1024, seed=0):
    shape = (n, dim) if captions is None else (n, captions, dim)
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def pngs(folder):
    return sorted(f for f in os.listdir(folder) if generate.IMAGE_NAME.match(f))


def size_of(path):
    with Image.open(path) as im:
        return im.size


def run(argv):
    return cli.run_main(generate.main, argv)


def fails(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_stage1_npy_samples_and_seed(results, tmp_path, capsys):
    emb = tmp_path / "emb.npy"
    np.save(emb, embeddings(5))
    out = tmp_path / "out"
    argv = [
        "--stage",
        "1",
        "--results-dir",
        results,
        "--embeddings",
        str(emb),
        "--samples-per-embedding",
        "2",
        "--batch-size",
        "4",
    ]
    assert run(argv + ["--out", str(out)]) == 0
    assert pngs(out) == [f"{i:05d}_{s}.png" for i in range(5) for s in range(2)]
    assert {size_of(out / f) for f in pngs(out)} == {(64, 64)}
    assert (out / "grid.png").exists()
    assert "wrote 10 images" in capsys.readouterr().out
    a0, a1 = (np.asarray(Image.open(out / f"00003_{s}.png")) for s in (0, 1))
    assert np.abs(a0.astype(int) - a1).mean() > 0  # each sample has its own z

    again = tmp_path / "again"  # same seed -> same pictures
    assert run(argv + ["--out", str(again)]) == 0
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in pngs(out))


def test_stage1_pickle_list_of_arrays_and_caption_index(results, tmp_path):
    emb = tmp_path / "char-CNN-RNN-embeddings.pickle"
    with open(emb, "wb") as f:
        pickle.dump(list(embeddings(3, captions=10)), f, protocol=2)  # list of (10,1024), as some files are
    out = tmp_path / "out"
    assert (
        run(
            [
                "--stage",
                "1",
                "--results-dir",
                results,
                "--embeddings",
                str(emb),
                "--caption-index",
                "9",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert pngs(out) == ["00000_0.png", "00001_0.png", "00002_0.png"]


def test_stage2_default_test_split_mean_caption_save_stage1(results, tmp_path, capsys):
    data_dir = tmp_path / "birds"
    (data_dir / "test").mkdir(parents=True)
    with open(data_dir / "test" / generate.EMBEDDINGS_FILE, "wb") as f:
        pickle.dump(embeddings(6, captions=10), f, protocol=2)
    out = tmp_path / "out"
    assert (
        run(
            [
                "--stage",
                "2",
                "--results-dir",
                results,
                "--data-dir",
                str(data_dir),
                "--caption-index",
                "mean",
                "--limit",
                "3",
                "--save-stage1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert pngs(out) == ["00000_0.png", "00001_0.png", "00002_0.png"]
    assert {size_of(out / f) for f in pngs(out)} == {(256, 256)}
    assert pngs(out / "stage1") == pngs(out)
    assert {size_of(out / "stage1" / f) for f in pngs(out)} == {(64, 64)}
    grid_w, grid_h = size_of(out / "grid.png")
    assert grid_w > 2 * 256 and grid_h > 256  # Stage-I input beside the Stage-II output
    assert "wrote 3 images (256x256" in capsys.readouterr().out


def test_select_embeddings_mean_and_index():
    raw = embeddings(4, captions=3, dim=8)
    np.testing.assert_allclose(generate.select_embeddings(raw, "x", 8, "mean"), raw.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(generate.select_embeddings(raw, "x", 8, 2, limit=2), raw[:2, 2])
    flat = embeddings(4, dim=8)
    np.testing.assert_array_equal(generate.select_embeddings(flat, "x", 8, 0), flat)


def test_bad_inputs_exit_2(results, tmp_path, capsys):
    base = ["--stage", "1", "--results-dir", results, "--out", str(tmp_path / "out")]
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, embeddings(2, dim=512))
    assert "512-dimensional" in fails(base + ["--embeddings", str(wrong)], capsys)
    flat = tmp_path / "flat.npy"
    np.save(flat, embeddings(2, dim=1024)[0])  # (1024,): no row axis
    assert "shape (1024,)" in fails(base + ["--embeddings", str(flat)], capsys)
    ten = tmp_path / "ten.npy"
    np.save(ten, embeddings(2, captions=10))
    assert "--caption-index 10 is out of range" in fails(
        base + ["--embeddings", str(ten), "--caption-index", "10"], capsys
    )
    assert "not found" in fails(base + ["--embeddings", str(tmp_path / "missing.npy")], capsys)
    assert "not found" in fails(base + ["--data-dir", str(tmp_path / "nodata")], capsys)
    junk = tmp_path / "junk.pickle"
    junk.write_bytes(b"not a pickle")
    assert "junk.pickle" in fails(base + ["--embeddings", str(junk)], capsys)
    err = fails(
        [
            "--stage",
            "2",
            "--results-dir",
            str(tmp_path / "empty"),
            "--embeddings",
            str(ten),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert "stage1_config.json not found" in err


def test_missing_weights_subprocess(tmp_path):
    np.save(tmp_path / "e.npy", embeddings(2))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "generate.py"),
            "--stage",
            "1",
            "--results-dir",
            str(tmp_path / "results"),
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "stage1.py" in lines[0], proc.stderr
