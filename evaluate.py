"""Evaluate generated images.

    python evaluate.py attributes --images samples/ [--data-dir data/birds] [--split test] [--json]
    python evaluate.py fid --real test --fake samples/ [--inception-weights notop.h5]
    python evaluate.py is --images samples/ [--inception-weights full.h5] [--splits 10]

attributes  For the synthetic birds only: how often the colours in each generated image
            match the colours its text embedding asks for, and how different the samples of
            one embedding are from each other (0 = mode collapse).
fid         Frechet Inception Distance between a reference set and generated images, on
            ImageNet InceptionV3 pool features (2048-d), as in the published CUB FIDs.
is          Inception Score with the ImageNet InceptionV3 classifier. This is NOT the
            CUB-fine-tuned Inception model behind StackGAN's published 3.70, so these numbers
            compare only with each other, not with the papers.

Generated images are read as FOLDER/{index:05d}_{sample}.png (what generate.py writes; its
grid.png is skipped). A folder without such names is read as every .png/.jpg in it.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import warnings
from collections import defaultdict

import numpy as np
from PIL import Image

import cli
import files
from cli import UserError, positive_int
from settings import DATA_DIR, EMBEDDINGS_FILE, SYNTHETIC_MARKER

GENERATED = re.compile(r"^(\d{5,})_(\d+)\.png$")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
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


def diversity(images_by_index):
    """Mean absolute pixel distance (in [0, 1] units) between different samples of one embedding.

    `images_by_index`: {index: [uint8 image, ...]}. Averaged over pairs within an embedding, then
    over embeddings with at least two samples; None if there are none.
    """
    per_embedding = []
    for images in images_by_index.values():
        if len(images) < 2:
            continue
        x = np.stack(images).astype("float32") / 255.0
        d = [np.abs(x[i] - x[j]).mean() for i in range(len(x)) for j in range(i + 1, len(x))]
        per_embedding.append(np.mean(d))
    return float(np.mean(per_embedding)) if per_embedding else None


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------
def generated_images(folder):
    """[(index, sample, path)] of FOLDER/{index:05d}_{sample}.png, sorted."""
    found = []
    for name in os.listdir(folder):
        m = GENERATED.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, name)))
    return sorted(found)


def list_images(folder, what="--images"):
    """Image paths of a folder: generate.py's {index}_{sample}.png if any, else every image file."""
    if not os.path.isdir(folder):
        raise UserError(f"{what} {folder} is not a folder; give the folder of images (e.g. generate.py --out)")
    generated = generated_images(folder)
    if generated:
        return [path for _, _, path in generated]
    return sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))
    )


def load_image(path, size=None):
    """uint8 (H, W, 3); resized to size x size (bilinear) when size is given and differs."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable image ({type(err).__name__}); remove or replace it") from None


def resize_batch(images, size):
    """uint8 images (any sizes) -> uint8 (N, size, size, 3), bilinear, like load_image."""
    out = []
    for im in images:
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out.append(im)
    return np.stack(out)


def folder_batches(paths, batch_size, size):
    for start in range(0, len(paths), batch_size):
        yield np.stack([load_image(p, size) for p in paths[start : start + batch_size]])


def array_batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


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
    except Exception as err:  # noqa: BLE001 - a failed download or a wrong h5 file raise many types
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
        except Exception:  # noqa: BLE001 - not the full file either: report the first error
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
        x = keras.applications.inception_v3.preprocess_input(resize_batch(batch, size).astype("float32"))
        y = model.predict_on_batch(x)
        outs.append(np.asarray(y, dtype="float32").reshape(len(x), -1))
    return np.concatenate(outs)


# ---------------------------------------------------------------------------
# attributes
# ---------------------------------------------------------------------------
def attributes(images_dir, data_dir=DATA_DIR, split="test"):
    """Attribute accuracy and diversity of generate.py output for the synthetic birds."""
    import data
    import synthetic

    if not os.path.isdir(images_dir):
        raise UserError(f"--images {images_dir} is not a folder; give the --out folder of generate.py")
    found = generated_images(images_dir)
    if not found:
        raise UserError(
            f"{images_dir} holds no {{index:05d}}_{{sample}}.png images; "
            f"write them with `python generate.py --out {images_dir}`"
        )
    path = os.path.join(data_dir, split, EMBEDDINGS_FILE)
    if not os.path.isfile(path):
        raise UserError(f"{path} not found; pass the --data-dir and --split the images were generated from")
    if not synthetic.is_synthetic(data_dir):
        raise UserError(
            f"{data_dir} is not a synthetic birds set (no {SYNTHETIC_MARKER}): attribute accuracy "
            f"needs the colour code of the synthetic embeddings; for CUB use `evaluate.py fid` or `is`"
        )
    embeddings = np.asarray(data.load_embeddings(path))
    indices = np.array([i for i, _, _ in found])
    if indices.max() >= len(embeddings):
        raise UserError(
            f"{images_dir} has images for embedding {indices.max()} but the {split} split of "
            f"{data_dir} has only {len(embeddings)}; pass the --data-dir/--split used by generate.py"
        )
    images = [load_image(p) for _, _, p in found]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise UserError(f"{images_dir} mixes image sizes {sorted(shapes)}; evaluate one generate.py run at a time")
    images = np.stack(images)
    accuracy, mistakes = synthetic.attribute_report(images, embeddings[indices])
    by_index = defaultdict(list)
    for (index, _, _), im in zip(found, images):
        by_index[index].append(im)
    return {
        "images": len(images),
        "embeddings": len(by_index),
        "max_samples_per_embedding": max(len(v) for v in by_index.values()),
        "attribute_accuracy": accuracy,
        "mistakes": mistakes,
        "diversity": diversity(by_index),
        "image_size": int(images.shape[1]),
    }


# ---------------------------------------------------------------------------
# fid
# ---------------------------------------------------------------------------
def _file_fingerprint(path):
    st = os.stat(path)
    return [os.path.basename(path), st.st_size, st.st_mtime_ns]


def reference_fingerprint(real, data_dir):
    """What the real statistics depend on, besides the network: the folder's files or the split's files."""
    if real == "test":
        split_dir = os.path.join(data_dir, "test")
        files = [
            os.path.join(split_dir, f)
            for f in sorted(os.listdir(split_dir))
            if os.path.isfile(os.path.join(split_dir, f)) and ".cache" not in f and not f.startswith(".")
        ]
        cub = os.path.join(data_dir, "CUB_200_2011")
        files += [
            os.path.join(cub, f) for f in ("images.txt", "bounding_boxes.txt") if os.path.isfile(os.path.join(cub, f))
        ]
        return {"split": "test", "data_dir": os.path.realpath(data_dir), "files": [_file_fingerprint(f) for f in files]}
    return {"folder": os.path.realpath(real), "files": [_file_fingerprint(p) for p in list_images(real, "--real")]}


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
        import data

        split = data.load_split(data_dir, "test", INCEPTION_SIZE)
        batches, n = array_batches(split.images, batch_size), len(split.images)
    else:
        paths = list_images(real, "--real")
        batches, n = folder_batches(paths, batch_size, input_size(model)), len(paths)
    if n < 2:
        raise UserError(f"the reference {real} has {n} image(s); FID needs at least 2 (thousands for a useful number)")
    mu, sigma = activation_statistics(model_outputs(model, batches))
    if cache_path is not None:
        with files.atomic_path(cache_path, ".npz") as tmp:
            np.savez(tmp, mu=mu, sigma=sigma, n=n, key=json.dumps(key, sort_keys=True))
    return mu, sigma, n, None


def fid(real, fake, model, data_dir=DATA_DIR, batch_size=32, cache_dir=None):
    """FID between the reference `real` ('test' or a folder) and the image folder `fake`."""
    fake_paths = list_images(fake, "--fake")
    if len(fake_paths) < 2:
        raise UserError(
            f"--fake {fake} has {len(fake_paths)} image(s); FID needs at least 2 (thousands for a useful number)"
        )
    mu_r, sigma_r, n_real, cached = real_statistics(real, data_dir, model, batch_size, cache_dir)
    mu_f, sigma_f = activation_statistics(
        model_outputs(model, folder_batches(fake_paths, batch_size, input_size(model)))
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


def _check_reference(real, data_dir):
    if real == "test":
        if not os.path.isdir(os.path.join(data_dir, "test")):
            raise UserError(
                f"--real test needs the prepared dataset at {data_dir}/test; "
                f"run `python data.py prepare` or pass --data-dir"
            )
    elif not os.path.isdir(real):
        raise UserError(f"--real {real} is neither a folder of images nor 'test' (the cropped test split)")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------
def build_parser():
    p = cli.ArgumentParser(
        prog="evaluate.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{attributes,fid,is}")

    a = sub.add_parser(
        "attributes",
        help="attribute accuracy and sample diversity (synthetic birds)",
        description="Attribute accuracy of generated synthetic birds: does each image show the "
        "colours its text embedding asks for? Plus diversity: the mean absolute pixel "
        "distance (0..1) between samples of the same embedding; 0 means mode collapse, "
        "'n/a' with one sample per embedding (use generate.py --samples-per-embedding).",
    )
    a.add_argument("--images", required=True, help="folder of {index:05d}_{sample}.png written by generate.py")
    a.add_argument("--data-dir", default=DATA_DIR, help="dataset the embeddings came from (default: %(default)s)")
    a.add_argument(
        "--split",
        default="test",
        choices=("train", "test"),
        help="split whose row `index` each image was generated from (default: %(default)s)",
    )
    a.add_argument("--json", action="store_true", help="print one JSON line instead of text")

    f = sub.add_parser(
        "fid",
        help="Frechet Inception Distance (ImageNet InceptionV3 pool features)",
        description="Frechet Inception Distance between a reference set and generated images, on "
        "2048-d ImageNet InceptionV3 pool features of images resized to 299x299 "
        "(bilinear). Papers use ~30k generated images; with fewer than 2048 the "
        "number is biased upward and only comparable at equal counts. The reference "
        "statistics are cached.",
    )
    f.add_argument(
        "--real", required=True, help="reference images: a folder, or 'test' for the cropped test split of --data-dir"
    )
    f.add_argument("--fake", required=True, help="folder of generated images (generate.py --out)")
    f.add_argument("--data-dir", default=DATA_DIR, help="dataset for --real test (default: %(default)s)")
    f.add_argument(
        "--inception-weights",
        default=None,
        metavar="PATH",
        help=f"local InceptionV3 weights for offline use ({WEIGHT_FILES[False]}, or the full "
        f"{WEIGHT_FILES[True]}); default: Keras downloads the ImageNet weights once",
    )
    f.add_argument("--batch-size", type=positive_int, default=32, help="images per pass (default: %(default)s)")
    f.add_argument(
        "--cache-dir",
        default=None,
        help="where reference statistics are cached as .npz (default: <data-dir>/fid_cache)",
    )
    f.add_argument("--no-cache", action="store_true", help="neither read nor write cached reference statistics")
    f.add_argument("--json", action="store_true", help="print one JSON line instead of text")

    s = sub.add_parser(
        "is",
        help="Inception Score (ImageNet InceptionV3, not the paper's CUB model)",
        description="Inception Score with the ImageNet InceptionV3 classifier (1000 classes). "
        "NOT the CUB-fine-tuned Inception model behind StackGAN's published 3.70: "
        "numbers compare only among runs of this command.",
    )
    s.add_argument("--images", required=True, help="folder of generated images (generate.py --out)")
    s.add_argument(
        "--inception-weights",
        default=None,
        metavar="PATH",
        help=f"local full InceptionV3 weights for offline use ({WEIGHT_FILES[True]}); "
        f"default: Keras downloads the ImageNet weights once",
    )
    s.add_argument("--splits", type=positive_int, default=10, help="number of splits (default: %(default)s)")
    s.add_argument("--batch-size", type=positive_int, default=32, help="images per pass (default: %(default)s)")
    s.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    return p


def _fmt(x):
    return "n/a" if x is None else f"{x:.4f}"


def main(argv=None, model_factory=None):
    """model_factory(include_top, weights_path) -> Keras model; default build_inception (tests inject small ones)."""
    args = build_parser().parse_args(argv)
    model_factory = model_factory or build_inception
    if args.command != "attributes":
        import hardware

        hardware.import_tensorflow()

    if args.command == "attributes":
        import synthetic

        r = attributes(args.images, args.data_dir, args.split)
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            print(
                f"attribute accuracy {r['attribute_accuracy']:.4f}, diversity {_fmt(r['diversity'])} "
                f"({r['images']} images of {r['embeddings']} embeddings from the {args.split} split, "
                f"{r['image_size']}x{r['image_size']}); most frequent mistakes: "
                + synthetic.describe_mistakes(r["mistakes"])
            )
        return 0

    if args.command == "fid":
        _check_reference(args.real, args.data_dir)
        if len(list_images(args.fake, "--fake")) < 2:
            raise UserError(f"--fake {args.fake} has fewer than 2 images; write them with generate.py --out")
        cache_dir = None if args.no_cache else (args.cache_dir or os.path.join(args.data_dir, "fid_cache"))
        model = model_factory(False, args.inception_weights)
        r = fid(args.real, args.fake, model, args.data_dir, args.batch_size, cache_dir)
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            ref = f"the {args.real} split of {args.data_dir}" if args.real == "test" else args.real
            print(
                f"FID {r['fid']:.3f} ({r['real']} real images from {ref}, {r['fake']} generated from "
                f"{args.fake}; {r['features']}-d InceptionV3 pool features"
                + (f"; real statistics from {r['real_stats_cached']}" if r["real_stats_cached"] else "")
                + ")"
            )
        if min(r["real"], r["fake"]) < FEW_IMAGES:
            print(
                f"note: fewer than {FEW_IMAGES} images in a set makes FID biased upward; compare only runs with "
                f"equal counts (papers use ~30k generated images)",
                file=sys.stderr,
            )
        return 0

    # is
    paths = list_images(args.images)
    if len(paths) < args.splits:
        raise UserError(
            f"--images {args.images} has {len(paths)} image(s), fewer than --splits {args.splits}; "
            f"generate more or lower --splits"
        )
    model = model_factory(True, args.inception_weights)
    probs = model_outputs(model, folder_batches(paths, args.batch_size, input_size(model)))
    mean, std = inception_score(probs, args.splits)
    if args.json:
        print(
            json.dumps(
                {
                    "inception_score": mean,
                    "std": std,
                    "images": len(paths),
                    "splits": args.splits,
                    "model": "ImageNet InceptionV3 (not the CUB-fine-tuned model of the paper)",
                }
            )
        )
    else:
        print(
            f"Inception Score {mean:.3f} ± {std:.3f} ({len(paths)} images, {args.splits} splits; ImageNet "
            f"InceptionV3, not the CUB-fine-tuned model behind the paper's 3.70: compare only among runs "
            f"of this command)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
