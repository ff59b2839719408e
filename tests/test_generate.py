"""generate.py on a tiny fake trained result (random weights, narrow networks)."""

import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import generate
from helpers import REPO, one_line_error
from stackgan import io, layout
from stackgan.cli import run_main


@pytest.fixture(scope="module")
def results(tiny_results):
    return tiny_results


def embeddings(n, captions=None, dim=1024, seed=0):
    shape = (n, dim) if captions is None else (n, captions, dim)
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def pngs(folder):
    return sorted(f for f in os.listdir(folder) if io.GENERATED.match(f))


def size_of(path):
    with Image.open(path) as im:
        return im.size


def run(argv):
    return run_main(generate.main, argv)


def fails(argv, capsys):
    return one_line_error(generate.main, argv, capsys)


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
    with open(data_dir / "test" / layout.EMBEDDINGS_FILE, "wb") as f:
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
            os.path.join(REPO, "generate.py"),
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


# ---------------------------------------------------------------------------
# --caption / --captions-file / --demo
# ---------------------------------------------------------------------------
def test_captions_stage1_in_order_with_sheet(results, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--stage", "1", "--results-dir", results, "--out", str(out), "--samples-per-embedding", "2"]
    argv += ["--caption", "a small yellow bird with dark wings", "--caption", "A RED BIRD."]
    captions_file = tmp_path / "caps.txt"
    captions_file.write_bytes("\ufeffthis bird is blue\r\n\r\n  a green bird with white wings  \r\n".encode())
    assert run(argv + ["--captions-file", str(captions_file)]) == 0
    assert pngs(out) == [f"{i:05d}_{s}.png" for i in range(4) for s in range(2)]
    assert {size_of(out / f) for f in pngs(out)} == {(64, 64)}
    assert (out / "grid.png").exists() and size_of(out / "captions.png")[1] > 4 * 64
    assert (out / "captions.txt").read_text().splitlines() == [
        "00000\ta small yellow bird with dark wings",
        "00001\tA RED BIRD.",
        "00002\tthis bird is blue",
        "00003\ta green bird with white wings",
    ]
    printed = capsys.readouterr().out
    assert "wrote 8 images (64x64, 4 captions x 2 samples)" in printed and "captions.png" in printed


def test_caption_default_stage_is_2_when_its_weights_exist(results, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(["--results-dir", results, "--out", str(out), "--caption", "a pink bird"]) == 0
    assert pngs(out) == ["00000_0.png"] and size_of(out / "00000_0.png") == (256, 256)
    assert "wrote 1 images (256x256, 1 captions" in capsys.readouterr().out


def test_demo_defaults(results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(results, tmp_path / "results" / "demo")
    os.remove(layout.weights_path("results/demo", 2, "gen"))  # no Stage-II demo yet: Stage-I
    assert run(["--demo", "--caption", "a small yellow bird with dark wings"]) == 0
    assert pngs(tmp_path / layout.demo_dirs("birds")["samples_dir"]) == ["00000_0.png"]
    assert size_of(tmp_path / layout.demo_dirs("birds")["samples_dir"] / "00000_0.png") == (64, 64)
    assert "samples/demo" in capsys.readouterr().out


def test_caption_bad_inputs_exit_2(results, tmp_path, capsys):
    base = ["--stage", "1", "--results-dir", results, "--out", str(tmp_path / "out")]
    assert "--caption 1 is empty" in fails(base + ["--caption", ""], capsys)
    assert "--caption 2 ('!!! 42') has no letters" in fails(
        base + ["--caption", "a bird", "--caption", "!!! 42"], capsys
    )
    assert "has 70 characters but the text encoder reads at most 60; shorten it" in fails(
        base + ["--caption", "a" * 70], capsys
    )
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("un oiseau tr\xe8s rouge\n".encode("latin-1"))
    assert "latin1.txt is not UTF-8 text (byte offset 12 is" in fails(base + ["--captions-file", str(latin1)], capsys)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    assert "blank.txt holds no caption" in fails(base + ["--captions-file", str(blank)], capsys)
    assert "captions file" in fails(base + ["--captions-file", str(tmp_path / "nothere.txt")], capsys)
    empty_line = tmp_path / "dots.txt"
    empty_line.write_text("a red bird\n...\n")
    assert "dots.txt line 2 ('...') has no letters" in fails(base + ["--captions-file", str(empty_line)], capsys)
    no_encoder = tmp_path / "no_encoder"
    shutil.copytree(results, no_encoder)
    os.remove(layout.text_encoder_weights_path(str(no_encoder)))
    err = fails(["--stage", "1", "--results-dir", str(no_encoder), "--out", "o", "--caption", "a red bird"], capsys)
    assert "no trained text encoder" in err and f"python text_encoder.py train --results-dir {no_encoder}" in err
    assert "not allowed with argument" in fails(base + ["--caption", "a bird", "--embeddings", "e.npy"], capsys)
    assert "--caption-index" in fails(base + ["--caption", "a bird", "--caption-index", "1"], capsys)
    assert "--out is required" in fails(["--results-dir", results, "--caption", "a bird"], capsys)


def test_malicious_embeddings_pickle_is_refused(results, tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    err = fails(
        ["--stage", "1", "--results-dir", results, "--out", str(tmp_path / "o"), "--embeddings", str(evil)], capsys
    )
    assert "evil.pickle is refused: it names 'posix.system'" in err
    assert not marker.exists()
