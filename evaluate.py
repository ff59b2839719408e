"""Evaluate generated images.

    python evaluate.py attributes --images samples/ [--data-dir data/birds] [--split test] [--json]
    python evaluate.py fid --real test --fake samples/ [--inception-weights notop.h5]
    python evaluate.py is --images samples/ [--inception-weights full.h5] [--splits 10]

attributes  For the synthetic birds only: how often each generated image has the body colour,
            the wing shade and both that its bird has (both also on the pairs never seen in
            training), and how different the samples of one embedding are from each other
            (0 = mode collapse).
fid         Frechet Inception Distance between a reference set and generated images, on
            ImageNet InceptionV3 pool features (2048-d), as in the published CUB FIDs.
is          Inception Score with the ImageNet InceptionV3 classifier. This is NOT the
            CUB-fine-tuned Inception model behind StackGAN's published 3.70, so these numbers
            compare only with each other, not with the papers.

Generated images are read as FOLDER/{index:05d}_{sample}.png (what generate.py writes; its
grid.png is skipped). A folder without such names is read as every .png/.jpg in it.
"""

import argparse
import json
import os
import sys

from stackgan import io, runtime
from stackgan.cli import ArgumentParser, UserError, positive_int, run_main
from stackgan.layout import DATA_DIR
from stackgan.metrics import attributes, inception


def build_parser():
    p = ArgumentParser(
        prog="evaluate.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{attributes,fid,is}")

    a = sub.add_parser(
        "attributes",
        help="body colour, wing shade and both right, on seen and unseen pairs (synthetic birds)",
        description="Attributes of generated synthetic birds: does each image show the body colour and "
        "the wing shade of the bird whose embedding drew it (each alone, both together, and both on the "
        "(colour, shade) pairs never seen in training)? Plus diversity: the mean absolute pixel "
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
        help=f"local InceptionV3 weights for offline use ({inception.WEIGHT_FILES[False]}, or the full "
        f"{inception.WEIGHT_FILES[True]}); default: Keras downloads the ImageNet weights once",
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
        help=f"local full InceptionV3 weights for offline use ({inception.WEIGHT_FILES[True]}); "
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
    model_factory = model_factory or inception.build_inception
    if args.command != "attributes":
        runtime.import_tensorflow()

    if args.command == "attributes":
        r = attributes.evaluate_folder(args.images, args.data_dir, args.split)
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            print(
                f"{attributes.describe(r)}, diversity {_fmt(r['diversity'])} "
                f"({r['images']} images of {r['embeddings']} embeddings from the {args.split} split, "
                f"{r['unseen_images']} of unseen pairs, {r['image_size']}x{r['image_size']}); most frequent mistakes: "
                + attributes.describe_mistakes(r["mistakes"])
            )
        return 0

    if args.command == "fid":
        inception.check_reference(args.real, args.data_dir)
        if len(io.list_images(args.fake, "--fake")) < 2:
            raise UserError(f"--fake {args.fake} has fewer than 2 images; write them with generate.py --out")
        cache_dir = None if args.no_cache else (args.cache_dir or os.path.join(args.data_dir, "fid_cache"))
        model = model_factory(False, args.inception_weights)
        r = inception.fid(args.real, args.fake, model, args.data_dir, args.batch_size, cache_dir)
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
        if min(r["real"], r["fake"]) < inception.FEW_IMAGES:
            print(
                f"note: fewer than {inception.FEW_IMAGES} images in a set makes FID biased upward; compare only runs with "
                f"equal counts (papers use ~30k generated images)",
                file=sys.stderr,
            )
        return 0

    # is
    paths = io.list_images(args.images)
    if len(paths) < args.splits:
        raise UserError(
            f"--images {args.images} has {len(paths)} image(s), fewer than --splits {args.splits}; "
            f"generate more or lower --splits"
        )
    model = model_factory(True, args.inception_weights)
    probs = inception.model_outputs(model, io.folder_batches(paths, args.batch_size, inception.input_size(model)))
    mean, std = inception.inception_score(probs, args.splits)
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
    sys.exit(run_main(main))
