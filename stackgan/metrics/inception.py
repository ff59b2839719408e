"""Inception-based numbers for generated images: FID on ImageNet InceptionV3 pool features (2048-d), as in the
published CUB FIDs, with cached reference statistics; and the Inception Score with the ImageNet classifier (not
the CUB-fine-tuned model behind StackGAN's published 3.70, so our IS compares only with itself).
"""

import hashlib
import json
import os
import sys
import warnings

import numpy as np

from stackgan import io, layout
from stackgan.datasets import dataset_of
from stackgan.cli import UserError

INCEPTION_SIZE = 299
# Bump when the way images become features changes, so that cached real statistics are recomputed.
FEATURE_PIPELINE = "pil-bilinear-resize/inception_v3.preprocess_input/v1"
FEW_IMAGES = 2048  # below this the 2048x2048 covariance is rank-deficient
WEIGHT_FILES = {
    False: "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    True: "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
}
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"


# ---------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------
def activation_statistics(features):
    """(N, D) features -> mean (D,) and covariance (D, D), float64."""
    features = np.asarray(features, dtype="float64")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need at least 2 feature rows, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2)), as in the reference FID implementation.

    A singular product S1 S2 (few samples) gets `eps` added to both diagonals; tiny imaginary
    parts of the square root (numerical noise) are discarded.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, "float64")), np.atleast_1d(np.asarray(mu2, "float64"))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, "float64")), np.atleast_2d(np.asarray(sigma2, "float64"))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"matrix square root has a large imaginary component "
                f"({np.max(np.abs(covmean.imag)):.3g}); the covariances are ill-conditioned"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def inception_score(probs, splits=10):
    """exp(E_x KL(p(y|x) || p(y))) over `splits` equal parts: (mean, std) over the parts."""
    from scipy.special import rel_entr

    probs = np.asarray(probs, dtype="float64")
    if probs.ndim != 2 or len(probs) < splits or splits < 1:
        raise ValueError(f"need at least {splits} rows of class probabilities, got shape {probs.shape}")
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = rel_entr(part, marginal).sum(axis=1)  # 0 * log 0 = 0, so confident predictions work
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------
# InceptionV3
# ---------------------------------------------------------------------------
def _first_line(err):
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def build_inception(include_top, weights_path=None):
    """ImageNet InceptionV3: 2048-d pool features (include_top=False) or 1000-way softmax (True).

    weights_path None downloads the ImageNet weights through Keras (cached in ~/.keras/models).
    For pool features, a full (with-top) weights file also works: its avg_pool layer is used.
    """
    import keras

    if weights_path is not None and not os.path.isfile(weights_path):
        raise UserError(
            f"--inception-weights {weights_path} not found; give the path of "
            f"{WEIGHT_FILES[include_top]} (from {WEIGHTS_URL})"
        )

    def build(top):
        with warnings.catch_warnings():  # a wrong .h5 file gives one warning per layer before the error
            warnings.filterwarnings("ignore", message="Skipping nested container")
            return _build(top)

    def _build(top):
        if top:
            return keras.applications.InceptionV3(include_top=True, weights=weights_path or "imagenet")
        return keras.applications.InceptionV3(
            include_top=False,
            pooling="avg",
            weights=weights_path or "imagenet",
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        )

    try:
        return build(include_top)
    except Exception as err:
        first = err
    if weights_path is None:
        raise UserError(
            f"could not get the ImageNet InceptionV3 weights ({_first_line(first)}); download "
            f"{WEIGHTS_URL}{WEIGHT_FILES[include_top]} where there is internet access and pass "
            f"--inception-weights PATH"
        )
    if not include_top:  # maybe the full weights file: take the pool features from it
        try:
            full = build(True)
        except Exception:
            full = None
        if full is not None:
            return keras.Model(full.inputs, full.get_layer("avg_pool").output, name="inception_v3_pool")
    raise UserError(
        f"--inception-weights {weights_path} does not fit InceptionV3 ({_first_line(first)}); "
        f"it should be {WEIGHT_FILES[include_top]} from {WEIGHTS_URL}"
    )


def input_size(model):
    shape = model.input_shape
    size = shape[1]
    if size is None or shape[2] != size:
        return INCEPTION_SIZE
    return int(size)


def model_digest(model):
    """A fingerprint of the network's weights, so that cached statistics follow the weights."""
    h = hashlib.sha256(f"{model.input_shape}{model.output_shape}".encode())
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    return h.hexdigest()


def model_outputs(model, batches):
    """Run uint8 image batches through the network (resized to its input size): (N, D) float32."""
    import keras

    size = input_size(model)
    outs = []
    for batch in batches:
        x = keras.applications.inception_v3.preprocess_input(io.resize_batch(batch, size).astype("float32"))
        y = model.predict_on_batch(x)
        outs.append(np.asarray(y, dtype="float32").reshape(len(x), -1))
    return np.concatenate(outs)


# ---------------------------------------------------------------------------
# fid
# ---------------------------------------------------------------------------
def _file_fingerprint(path):
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns]


def reference_fingerprint(real, data_dir):
    """What the real statistics depend on, besides the network: the folder's files or the split's files."""
    if real == "test":
        split_dir = layout.split_dir(data_dir, "test")
        files = [
            os.path.join(split_dir, f)
            for f in sorted(os.listdir(split_dir))
            if os.path.isfile(os.path.join(split_dir, f)) and ".cache" not in f and not f.startswith(".")
        ]
        files += [f for f in dataset_of(data_dir).key_files(data_dir) if os.path.isfile(f)]
        return {"split": "test", "data_dir": os.path.realpath(data_dir), "files": [_file_fingerprint(f) for f in files]}
    return {"folder": os.path.realpath(real), "files": [_file_fingerprint(p) for p in io.list_images(real, "--real")]}


def real_statistics(real, data_dir, model, batch_size, cache_dir=None, digest=None):
    """(mu, sigma, n, cached) of the reference set, from the .npz cache when the same set and weights were seen."""
    cache_path = None
    if cache_dir is not None:
        key = {
            "reference": reference_fingerprint(real, data_dir),
            "weights": digest or model_digest(model),
            "input_size": input_size(model),
            "pipeline": FEATURE_PIPELINE,
        }
        name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        cache_path = os.path.join(cache_dir, f"fid_real_{name}.npz")
        if os.path.isfile(cache_path):
            try:
                with np.load(cache_path) as z:
                    return z["mu"], z["sigma"], int(z["n"]), cache_path
            except (OSError, ValueError, KeyError) as err:
                print(f"note: {cache_path} is unreadable ({type(err).__name__}); recomputing it", file=sys.stderr)
    if real == "test":
        from stackgan.datasets.cache import load_dataset

        split = load_dataset(data_dir, "test", INCEPTION_SIZE)
        batches, n = io.array_batches(split.images, batch_size), len(split.images)
    else:
        paths = io.list_images(real, "--real")
        batches, n = io.folder_batches(paths, batch_size, input_size(model)), len(paths)
    if n < 2:
        raise UserError(f"the reference {real} has {n} image(s); FID needs at least 2 (thousands for a useful number)")
    mu, sigma = activation_statistics(model_outputs(model, batches))
    if cache_path is not None:
        try:
            with io.atomic_path(cache_path, ".npz") as tmp:
                np.savez(tmp, mu=mu, sigma=sigma, n=n, key=json.dumps(key, sort_keys=True))
        except io.WriteError as err:  # a read-only or full cache folder: the statistics are still good
            print(f"warning: reference statistics not cached ({err})", file=sys.stderr)
    return mu, sigma, n, None


def fid(real, fake, model, data_dir, batch_size=32, cache_dir=None):
    """FID between the reference `real` ('test' or a folder) and the image folder `fake`."""
    fake_paths = io.list_images(fake, "--fake")
    if len(fake_paths) < 2:
        raise UserError(
            f"--fake {fake} has {len(fake_paths)} image(s); FID needs at least 2 (thousands for a useful number)"
        )
    mu_r, sigma_r, n_real, cached = real_statistics(real, data_dir, model, batch_size, cache_dir)
    mu_f, sigma_f = activation_statistics(
        model_outputs(model, io.folder_batches(fake_paths, batch_size, input_size(model)))
    )
    if mu_r.shape != mu_f.shape:
        raise UserError(
            f"cached real statistics have {mu_r.shape[0]} features but the network gives "
            f"{mu_f.shape[0]}; delete the cache folder {cache_dir}"
        )
    return {
        "fid": frechet_distance(mu_r, sigma_r, mu_f, sigma_f),
        "real": n_real,
        "fake": len(fake_paths),
        "features": int(mu_f.shape[0]),
        "real_stats_cached": cached,
    }


def check_reference(real, data_dir):
    if real == "test":
        if not os.path.isdir(layout.split_dir(data_dir, "test")):
            raise UserError(
                f"--real test needs the prepared dataset at {data_dir}/test; "
                f"run `python data.py prepare` or pass --data-dir"
            )
    elif not os.path.isdir(real):
        raise UserError(f"--real {real} is neither a folder of images nor 'test' (the cropped test split)")
