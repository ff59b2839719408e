"""A Keras char-CNN-RNN text encoder: captions -> 1024-d vectors in the space of the char-CNN-RNN embeddings
that the birds archive ships (Reed et al. 2016), so a generator trained on those embeddings draws new text.

    python text_encoder.py train    [--data-dir data/birds --results-dir results --epochs 60 ...] [--demo]
    python text_encoder.py evaluate [--data-dir data/birds --results-dir results] [--json]
    python text_encoder.py evaluate --demo --generated-stage 2     # held-out wording -> images -> colour

The network (stackgan/text/encoder.py) follows Reed's HybridCNNLong; it learns by regression onto the
archive's embeddings (stackgan/text/training.py). Training writes <results>/text_encoder.weights.h5 and
text_encoder_config.json, checkpoints in <results>/text_encoder_ckpt (resumed by default) and TensorBoard
scalars in <logs>/text_encoder. It computes in float32, whatever precision a GAN run in the same process used.
"""

import argparse
import dataclasses
import json
import sys

from stackgan import runtime
from stackgan.cli import (
    ArgumentParser,
    DefaultsHelpFormatter,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    run_main,
)
from stackgan.config import EncoderConfig, encoder_defaults
from stackgan.datasets import NAMES, dataset_of, get_dataset
from stackgan.layout import DEFAULT_DATASET
from stackgan.text.encoder import LOSSES, TARGETS
from stackgan.text.evaluation import evaluate_encoder, heldout_caption_accuracy
from stackgan.text.training import train


def build_parser(demo=False, dataset=DEFAULT_DATASET):
    preset = dataclasses.asdict(encoder_defaults(demo, dataset))
    parser = ArgumentParser(
        prog="text_encoder.py",
        description="A Keras char-CNN-RNN text encoder: captions -> the 1024-d char-CNN-RNN embedding space "
        "that StackGAN's generators are conditioned on.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate}")
    t = sub.add_parser(
        "train",
        help="train the encoder by regression onto the archive's embeddings",
        description="Train on the captions of DATA_DIR and its training embeddings; resumes from "
        "RESULTS_DIR/text_encoder_ckpt unless --fresh. --demo: the synthetic birds (flowers with --dataset flowers) "
        "and small settings (explicit flags win).",
        formatter_class=DefaultsHelpFormatter,
    )
    t.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="synthetic birds in data/synthetic, results/demo, logs/demo (with --dataset flowers: "
        "data/synthetic_flowers, results/demo_flowers, logs/demo_flowers)",
    )
    t.add_argument("--dataset", choices=NAMES, default=preset["dataset"], help="birds or flowers (found from DATA_DIR)")
    t.add_argument("--data-dir", default=preset["data_dir"], help="dataset with captions")
    t.add_argument("--results-dir", default=preset["results_dir"], help="where the weights and config go")
    t.add_argument("--log-dir", default=preset["log_dir"], help="TensorBoard scalars go to LOG_DIR/text_encoder")
    t.add_argument("--epochs", type=positive_int, default=preset["epochs"], help="total epochs")
    t.add_argument("--batch-size", type=positive_int, default=preset["batch_size"], help="captions per step")
    t.add_argument("--lr", type=positive_float, default=preset["lr"], help="Adam learning rate")
    t.add_argument("--char-dim", type=positive_int, default=preset["char_dim"], help="character embedding width")
    t.add_argument(
        "--conv-dims",
        type=_widths,
        default=",".join(str(w) for w in preset["conv_dims"]),
        help="widths of the Conv1D blocks, comma-separated (max-pooled by 3 between them)",
    )
    t.add_argument(
        "--rnn-dim",
        type=non_negative_int,
        default=preset["rnn_dim"],
        help="GRU width; 0: no GRU (a char-CNN: the last block's features averaged over the caption)",
    )
    t.add_argument("--max-length", type=positive_int, default=preset["max_length"], help="characters read per caption")
    t.add_argument("--loss", choices=LOSSES, default=preset["loss"], help="regression loss")
    t.add_argument(
        "--target",
        choices=TARGETS,
        default=preset["target"],
        help="caption k -> embedding k of its image (aligned) or -> the mean of its image's embeddings",
    )
    t.add_argument(
        "--augment",
        type=probability,
        default=preset["augment"],
        help="word noise rate: made-up words inserted (and half as many words dropped) per word, and captions "
        "rotated to start later, so the encoder reads wordings it never saw; 0 turns it off",
    )
    t.add_argument("--seed", type=non_negative_int, default=preset["seed"], help="weights and data order")
    t.add_argument("--fresh", action="store_true", default=None, help="ignore an existing checkpoint")
    e = sub.add_parser(
        "evaluate",
        help="held-out quality on the test split, against a bag-of-words baseline",
        description="Mean cosine to the true test embeddings and caption->image retrieval R@1/R@10, for the encoder "
        "and for bag of words + ridge regression. With --generated-stage (synthetic birds or flowers): the attribute "
        "accuracy of images that the trained generators draw from held-out wording.",
        formatter_class=DefaultsHelpFormatter,
    )
    e.add_argument(
        "--demo",
        action="store_true",
        default=None,
        help="data/synthetic and results/demo (flowers: data/synthetic_flowers, results/demo_flowers)",
    )
    e.add_argument("--dataset", choices=NAMES, default=preset["dataset"], help="birds or flowers (found from DATA_DIR)")
    e.add_argument("--data-dir", default=preset["data_dir"], help="dataset with captions")
    e.add_argument("--results-dir", default=preset["results_dir"], help="holds the trained encoder (and generators)")
    e.add_argument(
        "--generated-stage",
        type=int,
        choices=(1, 2),
        default=None,
        help="also generate images from held-out wording with the Stage-1 or Stage-1+2 generators in RESULTS_DIR",
    )
    e.add_argument("--batch-size", type=positive_int, default=64, help="images per generator pass")
    e.add_argument("--json", action="store_true", default=None, help="print the numbers as JSON")
    return parser


def _widths(text):
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one width, each at least 1")
    return widths


def print_report(report):
    """The evaluate numbers as a small table: one row per metric, one column per model."""
    enc, base = report["encoder"], report["baseline"]
    print(
        f"{report['data_dir']} test split: {enc['captions']} captions of {enc['images']} images; "
        f"encoder: {report['loss']} onto {report['target']} embeddings"
    )
    print(f"{'':24}{'text encoder':>14}{'bag of words + ridge':>22}")
    for key in [k for k in enc if k not in ("captions", "images")]:
        print(f"{key:24}{enc[key]:>14.3f}{base[key]:>22.3f}")
    if "generated" in report:
        g = report["generated"]
        unseen = g["from_caption"].get("unseen_images")
        print(
            f"Stage-{g['stage']} images from held-out wording ({g['images']} images"
            + ("" if unseen is None else f", {unseen} of unseen pairs")
            + f"): {g['from_caption']['summary']}; from the set's own embeddings: {g['from_embedding']['summary']}"
        )


def main(argv=None):
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--demo", action="store_true")
    first.add_argument("--dataset", choices=NAMES)
    first.add_argument("--data-dir")
    known = first.parse_known_args(argv)[0]
    args = build_parser(known.demo, dataset_of(known.data_dir, known.dataset).name).parse_args(argv)
    runtime.import_tensorflow()
    if args.command == "train":
        if args.demo:
            get_dataset(args.dataset).synthetic().ensure_synthetic(args.data_dir)
        fields = {k: v for k, v in vars(args).items() if k in EncoderConfig.__dataclass_fields__}
        train(EncoderConfig(**dict(fields, conv_dims=tuple(args.conv_dims), fresh=bool(args.fresh))))
        return 0
    report = evaluate_encoder(args.results_dir, args.data_dir)
    if args.generated_stage:
        report["generated"] = heldout_caption_accuracy(
            args.results_dir, args.data_dir, args.generated_stage, args.batch_size
        )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
