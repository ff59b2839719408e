"""FID and Inception Score (stackgan.metrics.inception, evaluate.py fid / is): the arithmetic against direct
computations, the feature pipeline on untrained networks, cached reference statistics, and one-line errors."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import linalg

import evaluate
from helpers import one_line_error
from stackgan.cli import run_main
from stackgan.metrics import inception


def direct_fid(a, b):
    """FID straight from the definition, for two sample sets."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_frechet_distance_matches_direct_computation():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 8)) @ rng.standard_normal((8, 8))
    b = rng.standard_normal((400, 8)) * 2.0 + 0.5
    mu1, s1 = inception.activation_statistics(a)
    mu2, s2 = inception.activation_statistics(b)
    assert inception.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct_fid(a, b), rel=1e-6)
    assert inception.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_known_answers():
    d = 16
    shift = np.arange(d) / 4.0
    eye = np.eye(d)
    assert inception.frechet_distance(np.zeros(d), eye, shift, eye) == pytest.approx(float(shift @ shift))
    # Scaled identity: Tr(S1 + S2 - 2 sqrt(S1 S2)) = d (1 + 4 - 2*2) = d.
    assert inception.frechet_distance(np.zeros(d), eye, np.zeros(d), 4 * eye) == pytest.approx(d)


def test_frechet_distance_singular_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 32)), rng.standard_normal((5, 32)) + 1.0  # 5 samples: rank 4 of 32
    value = inception.frechet_distance(*inception.activation_statistics(a), *inception.activation_statistics(b))
    assert np.isfinite(value) and value > 0


def test_inception_score_extremes():
    assert inception.inception_score(np.full((100, 7), 1 / 7), splits=10) == pytest.approx((1.0, 0.0))
    k = 5
    confident = np.tile(np.eye(k), (20, 1))  # 100 rows, each split of 10 sees every class twice
    mean, std = inception.inception_score(confident, splits=10)
    assert mean == pytest.approx(k) and std == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def untrained():
    """model_factory giving untrained InceptionV3s (weights=None), built once each."""
    import keras

    built = {}

    def factory(include_top, weights_path):
        assert weights_path is None
        if include_top not in built:
            keras.utils.set_random_seed(0)
            if include_top:  # small input: any size works without ImageNet weights
                built[True] = keras.applications.InceptionV3(include_top=True, weights=None, input_shape=(75, 75, 3))
            else:
                built[False] = keras.applications.InceptionV3(
                    include_top=False, pooling="avg", weights=None, input_shape=(299, 299, 3)
                )
        return built[include_top]

    return factory


def write_images(folder, n, size, seed, names="{i:05d}_0.png"):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(os.path.join(folder, names.format(i=i)))
    return folder


def run(argv, factory=None):
    return run_main(lambda a: evaluate.main(a, model_factory=factory), argv)


def fails(argv, capsys, factory=None):
    return one_line_error(lambda a: evaluate.main(a, model_factory=factory), argv, capsys)


def test_fid_end_to_end_with_cache(untrained, tmp_path, capsys):
    real = write_images(tmp_path / "real", 4, 48, seed=0, names="bird{i}.jpg")
    fake = write_images(tmp_path / "fake", 3, 64, seed=1)
    Image.new("RGB", (500, 300)).save(fake / "grid.png")  # generate.py's grid: must be skipped
    cache = tmp_path / "cache"
    argv = ["fid", "--real", str(real), "--fake", str(fake), "--cache-dir", str(cache), "--batch-size", "2", "--json"]
    assert run(argv, untrained) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["real"] == 4 and first["fake"] == 3 and first["features"] == 2048
    assert np.isfinite(first["fid"]) and first["fid"] > 0 and first["real_stats_cached"] is None
    written = list(cache.glob("fid_real_*.npz"))
    assert len(written) == 1 and not list(cache.glob("*.tmp*"))

    # Same reference and weights: the statistics come from the cache (sqrtm of 2048x2048 is slow, so no more FIDs).
    model = untrained(False, None)
    mu, _, n, cached = inception.real_statistics(str(real), None, model, 2, str(cache))
    assert cached == str(written[0]) and n == 4
    fresh_mu, _, _, _ = inception.real_statistics(str(real), None, model, 2, None)
    np.testing.assert_allclose(mu, fresh_mu, rtol=1e-5, atol=1e-6)

    write_images(tmp_path / "real", 5, 48, seed=2, names="bird{i}.jpg")  # reference changed: recomputed
    _, _, n, cached = inception.real_statistics(str(real), None, model, 2, str(cache))
    assert n == 5 and cached is None
    assert len(list(cache.glob("fid_real_*.npz"))) == 2


def test_inception_score_command(untrained, tmp_path, capsys):
    images = write_images(tmp_path / "gen", 6, 32, seed=3)
    assert run(["is", "--images", str(images), "--splits", "3", "--batch-size", "4"], untrained) == 0
    out = capsys.readouterr().out
    assert out.startswith("Inception Score ") and "not the CUB-fine-tuned" in out
    score = float(out.split()[2])
    assert 1.0 <= score <= 1000.0


def test_inception_download_failure_names_the_flag(monkeypatch, tmp_path, capsys):
    import keras

    def offline(*args, weights=None, **kwargs):
        if weights == "imagenet":  # what a machine without internet access meets when Keras fetches the weights
            raise OSError("URL fetch failure on https://storage.googleapis.com/...: None -- no network")
        raise ValueError(f"{weights} is not an InceptionV3 weights file")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    images = write_images(tmp_path / "gen", 2, 16, seed=4)
    err = fails(["fid", "--real", str(images), "--fake", str(images), "--no-cache"], capsys)
    assert "--inception-weights" in err and "notop" in err
    err = fails(
        ["fid", "--real", str(images), "--fake", str(images), "--inception-weights", str(tmp_path / "missing.h5")],
        capsys,
    )
    assert "missing.h5 not found" in err


def test_fid_and_is_bad_inputs(tmp_path, capsys):
    images = write_images(tmp_path / "gen", 3, 16, seed=5)
    assert "neither a folder" in fails(["fid", "--real", str(tmp_path / "nope"), "--fake", str(images)], capsys)
    assert "python data.py prepare" in fails(
        ["fid", "--real", "test", "--fake", str(images), "--data-dir", str(tmp_path / "nodata")], capsys
    )
    assert "not a folder" in fails(["fid", "--real", str(images), "--fake", str(tmp_path / "nope")], capsys)
    assert "fewer than --splits 10" in fails(["is", "--images", str(images)], capsys)


def test_real_statistics_of_the_test_split_are_cached(untrained, birds, tmp_path):
    model = untrained(False, None)
    mu, sigma, n, cached = inception.real_statistics("test", birds, model, 4, str(tmp_path / "c"))
    assert n == 16 and mu.shape == (2048,) and sigma.shape == (2048, 2048) and cached is None
    mu2, _, n2, cached = inception.real_statistics("test", birds, model, 4, str(tmp_path / "c"))
    assert n2 == 16 and cached is not None and np.array_equal(mu, mu2)
