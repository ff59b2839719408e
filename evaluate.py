"""Evaluate generated images.

    python evaluate.py attributes --images samples/ [--data-dir data/birds] [--split test] [--json]
    python evaluate.py fid --real test --fake samples/ [--inception-weights notop.h5]
    python evaluate.py is --images samples/ [--inception-weights full.h5] [--splits 10]
    python evaluate.py rprecision --images samples/ [--data-dir data/birds] [--split test] [--caption-index 0]
    python evaluate.py card RESULTS_DIR [--data-dir D] [--out RESULTS_DIR/card.md]

attributes  For the synthetic birds or flowers only: how often each generated image has what
            its text asks for (a bird's body colour, its wing shade, both, and both on the
            pairs never seen in training; a flower's petal colour), and how different the
            samples of one embedding are from each other (0 = mode collapse).
fid         Frechet Inception Distance between a reference set and generated images, on
            ImageNet InceptionV3 pool features (2048-d), as in the published CUB FIDs.
is          Inception Score with the ImageNet InceptionV3 classifier. This is NOT the
            CUB-fine-tuned Inception model behind StackGAN's published 3.70, so these numbers
            compare only with each other, not with the papers.
rprecision  R-precision (AttnGAN, DM-GAN): each image's own caption ranked among 100 (99 from
            other classes) by an evaluator trained on the real training images and captions only
            (cached in <data-dir>/evaluator); beside it the real test images (the ceiling).
card        Generate the test split with every trained stage of RESULTS_DIR and write one
            Markdown page with every number that can be measured here, each with its reference
            and command, and a grid of test captions with their images.

Generated images are read as FOLDER/{index:05d}_{sample}.png (what generate.py writes; its
grid.png is skipped). A folder without such names is read as every .png/.jpg in it.
"""

import argparse
import json
import sys

from stackgan import io, layout, runtime
from stackgan.cli import ArgumentParser, UserError, caption_index, non_negative_int, positive_int, run_main
from stackgan.datasets import dataset_of
from stackgan.layout import DEFAULT_DATASET, SPLITS, dataset_dir
from stackgan.metrics import evaluator, generated, inception, rprecision


def build_parser():
    p = ArgumentParser(
        prog="evaluate.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{attributes,fid,is,rprecision,card}")

    a = sub.add_parser(
        "attributes",
        help="body colour, wing shade, both, on seen and unseen pairs (synthetic birds); petal colour (flowers)",
        description="Attributes of generated synthetic birds or flowers: does each image show what its text asks "
        "for (a bird's body colour and wing shade, each alone, both together, and both on the (colour, shade) pairs "
        "never seen in training; a flower's petal colour)? Plus diversity: the mean absolute pixel "
        "distance (0..1) between samples of the same embedding; 0 means mode collapse, "
        "'n/a' with one sample per embedding (use generate.py --samples-per-embedding).",
    )
    a.add_argument("--images", required=True, help="folder of {index:05d}_{sample}.png written by generate.py")
    a.add_argument(
        "--data-dir",
        default=dataset_dir(DEFAULT_DATASET),
        help="dataset the embeddings came from: a synthetic birds or flowers set (default: %(default)s)",
    )
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
    f.add_argument(
        "--data-dir", default=dataset_dir(DEFAULT_DATASET), help="dataset for --real test (default: %(default)s)"
    )
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

    r = sub.add_parser(
        "rprecision",
        help="R-precision with an evaluator trained apart from the GAN, beside its real-image ceiling",
        description="R-precision as AttnGAN and DM-GAN report it: for each generated image, the caption it was "
        "drawn from (row `index` of the split, caption --caption-index) is ranked by cosine score among 100 "
        "captions, 99 of them drawn from other classes; the hit rate over folds, mean and std. The evaluator, an "
        "image CNN and a projection of the caption embeddings, is trained contrastively (DAMSM's loss) on the "
        "real training images and captions only, never on generated ones, when it is missing, and cached. The "
        "same protocol on the real test images of the same rows is the ceiling; chance is 0.01.",
    )
    r.add_argument("--images", required=True, help="folder of {index:05d}_{sample}.png written by generate.py")
    r.add_argument(
        "--data-dir",
        default=dataset_dir(DEFAULT_DATASET),
        help="dataset the embeddings came from (default: %(default)s)",
    )
    r.add_argument(
        "--split",
        default="test",
        choices=SPLITS,
        help="split whose row `index` each image was generated from (default: %(default)s)",
    )
    r.add_argument(
        "--caption-index",
        type=caption_index,
        default=0,
        help="the caption of each row the images were drawn from, as generate.py --caption-index: a number or "
        "'mean' (default: %(default)s)",
    )
    r.add_argument("--folds", type=positive_int, default=10, help="folds of the mean and std (default: %(default)s)")
    r.add_argument(
        "--seed", type=non_negative_int, default=0, help="draws the wrong captions and the folds (default: %(default)s)"
    )
    add_evaluator_flags(r)
    r.add_argument("--json", action="store_true", help="print one JSON line instead of text")

    c = sub.add_parser(
        "card",
        help="one Markdown page of every number, its reference and its command, with test captions and images",
        description="Generate the test split's images (caption 0, seed 0) with every trained stage of RESULTS_DIR "
        "into the folder beside the page (RESULTS_DIR/card/stage{1,2}/) and write a Markdown page: attribute "
        "accuracy (synthetic birds), R-precision, FID and IS, each with its real-image ceiling or reference and the "
        "command that gives it (FID and IS only with Inception weights: --inception-weights or Keras' cache; else "
        "listed as not measured), and a grid of test captions with the images of both stages.",
    )
    c.add_argument("results_dir", metavar="RESULTS_DIR", help="a results folder: stage1_config.json + weights")
    c.add_argument(
        "--data-dir",
        default=None,
        help="dataset of the test captions (default: the one the generators were trained on)",
    )
    c.add_argument("--out", default=None, help="the page (default: RESULTS_DIR/card.md; images in RESULTS_DIR/card/)")
    c.add_argument("--limit", type=positive_int, default=None, help="only the first N test rows (default: all)")
    c.add_argument("--grid", type=positive_int, default=8, help="test captions shown with images (default: 8)")
    c.add_argument(
        "--inception-weights",
        default=None,
        metavar="PATH",
        help=f"full InceptionV3 weights ({inception.WEIGHT_FILES[True]}) for FID and IS; default: Keras' cache "
        f"if it holds them, else FID and IS are listed as not measured",
    )
    add_evaluator_flags(c)
    return p


def add_evaluator_flags(p):
    p.add_argument(
        "--evaluator-dir",
        default=None,
        help="where trained R-precision evaluators are cached, one per dataset and setting "
        "(default: <data-dir>/evaluator)",
    )
    p.add_argument(
        "--evaluator-preset",
        default="auto",
        choices=("auto",) + tuple(evaluator.PRESETS),
        help="the evaluator's size: 'cub' (128x128, 40 epochs: minutes on a GPU), 'small' (64x64, 15 epochs: "
        "seconds on a CPU for the synthetic birds); auto: small on synthetic sets (default: %(default)s)",
    )
    p.add_argument("--evaluator-epochs", type=positive_int, default=None, help="training epochs (default: preset)")
    p.add_argument("--evaluator-width", type=positive_int, default=None, help="filters of its first convolution")
    p.add_argument("--evaluator-size", type=positive_int, default=None, help="pixels its images are resized to")
    p.add_argument(
        evaluator.RETRAIN_FLAG,
        action="store_true",
        help="train the evaluator again and replace the cached one (a damaged cache is refused without it)",
    )


def evaluator_settings(args, data_dir):
    return evaluator.settings_for(
        data_dir,
        args.evaluator_preset,
        epochs=args.evaluator_epochs,
        width=args.evaluator_width,
        image_size=args.evaluator_size,
    )


def evaluator_loader(args, data_dir):
    """A function that returns the R-precision evaluator of data_dir (trained and cached when missing)."""
    settings = evaluator_settings(args, data_dir)

    def get():
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731 - stdout keeps only the result
        return evaluator.load_or_train(data_dir, settings, args.evaluator_dir, args.retrain_evaluator, log)

    return get


def _fmt(x):
    return "n/a" if x is None else f"{x:.4f}"


def main(argv=None, model_factory=None):
    """model_factory(include_top, weights_path) -> Keras model; default build_inception (tests inject small ones)."""
    args = build_parser().parse_args(argv)
    injected_factory, model_factory = model_factory, model_factory or inception.build_inception
    if args.command != "attributes":
        runtime.import_tensorflow()

    if args.command == "rprecision":
        get_evaluator = evaluator_loader(args, args.data_dir)
        r = rprecision.score_folder(
            args.images, args.data_dir, get_evaluator, args.split, args.caption_index, args.folds, args.seed
        )
        print(json.dumps(r, sort_keys=True) if args.json else rprecision.describe(r, args.images, args.data_dir))
        return 0

    if args.command == "card":
        from stackgan.metrics import card

        path = card.write_card(
            args.results_dir,
            args.data_dir,
            args.out,
            limit=args.limit,
            grid=args.grid,
            inception_weights=args.inception_weights,
            evaluator_options=dict(
                preset=args.evaluator_preset,
                epochs=args.evaluator_epochs,
                width=args.evaluator_width,
                image_size=args.evaluator_size,
                evaluator_dir=args.evaluator_dir,
                retrain=args.retrain_evaluator,
            ),
            model_factory=injected_factory,
        )
        print(f"metric card: {path}")
        return 0

    if args.command == "attributes":
        metrics = dataset_of(args.data_dir).attributes()  # the reader of the set's birds or flowers
        r = generated.evaluate_folder(args.images, args.data_dir, args.split)
        if args.json:
            print(json.dumps(r, sort_keys=True))
        else:
            print(
                f"{metrics.describe(r)}, diversity {_fmt(r['diversity'])} "
                f"({r['images']} images of {r['embeddings']} embeddings from the {args.split} split, "
                + ("" if "unseen_images" not in r else f"{r['unseen_images']} of unseen pairs, ")
                + f"{r['image_size']}x{r['image_size']}); most frequent mistakes: "
                + metrics.describe_mistakes(r["mistakes"])
            )
        return 0

    if args.command == "fid":
        inception.check_reference(args.real, args.data_dir)
        if len(io.list_images(args.fake, "--fake")) < 2:
            raise UserError(f"--fake {args.fake} has fewer than 2 images; write them with generate.py --out")
        cache_dir = None if args.no_cache else (args.cache_dir or layout.fid_cache_dir(args.data_dir))
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
