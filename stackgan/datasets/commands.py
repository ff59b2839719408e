"""The command line of data.py: download, prepare and check the real data, or write the synthetic birds."""

import argparse

from stackgan import cli
from stackgan.datasets import prepare, synthetic
from stackgan.layout import CAPTIONS_DRIVE_ID, DATA_DIR, SYNTHETIC_DATA_DIR


def main(argv=None):
    parser = cli.ArgumentParser(
        prog="data.py",
        description="CUB-200-2011 birds + char-CNN-RNN embeddings "
        "for StackGAN: download, prepare, check, or write synthetic birds.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,prepare,check,synthetic}")
    p = sub.add_parser(
        "download",
        help="download CUB_200_2011.tgz, birds.zip and the captions, then prepare",
        description=f"Download CUB_200_2011.tgz ({prepare.CUB_URL}, MD5-checked), birds.zip (Google "
        f"Drive id {prepare.EMBEDDINGS_DRIVE_ID}, via gdown) and the captions (AttnGAN's birds archive, Google Drive id "
        f"{CAPTIONS_DRIVE_ID}; optional) into DATA_DIR/downloads and unpack them. "
        "If a link is dead, download by hand and use `prepare`.",
    )
    p.add_argument("--data-dir", default=DATA_DIR, help="where to put the data (default: %(default)s)")
    p = sub.add_parser(
        "prepare",
        help="unpack local CUB_200_2011.tgz and birds.zip (and captions)",
        description="Unpack local archives into DATA_DIR/{train,test}/*.pickle, DATA_DIR/CUB_200_2011 and "
        "DATA_DIR/text. --captions-archive alone adds the captions to an existing data folder.",
    )
    p.add_argument("--cub-archive", default=None, help="path of CUB_200_2011.tgz")
    p.add_argument("--embeddings-archive", default=None, help="path of StackGAN's birds.zip")
    p.add_argument(
        "--captions-archive",
        default=None,
        help="captions: AttnGAN's birds.zip (birds/text/, Google Drive id "
        f"{CAPTIONS_DRIVE_ID}) or Reed's CUB archive (text_c10/); a zip or a tar",
    )
    p.add_argument("--data-dir", default=DATA_DIR, help="where to put the data (default: %(default)s)")
    p = sub.add_parser(
        "check",
        help="summarise a data folder or say what is missing",
        description="Load what training reads and print images per split, classes, embedding shape, missing "
        "images/boxes and images that do not decode (every image is decoded, with a progress bar); exit status 2 "
        "and the command to run when required files are missing or unusable.",
    )
    p.add_argument("--data-dir", default=DATA_DIR, help="data folder (default: %(default)s)")
    p = sub.add_parser(
        "synthetic",
        help="write the synthetic birds",
        description="Write a deterministic synthetic bird set (class = body colour) in the real "
        "layout, for quick training runs and tests.",
    )
    p.add_argument("--out", default=SYNTHETIC_DATA_DIR, help="output folder (default: %(default)s)")
    p.add_argument("--n-train", type=cli.positive_int, default=800, help="training images (default: %(default)s)")
    p.add_argument("--n-test", type=cli.positive_int, default=160, help="test images (default: %(default)s)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--hues",
        type=_names,
        default=synthetic.DEFAULT_HUES,
        help=f"body colours, comma-separated, of {', '.join(synthetic.COLOURS)} (default: %(default)s)",
    )
    p.add_argument(
        "--shades",
        type=_names,
        default=synthetic.DEFAULT_SHADES,
        help=f"wing shades, comma-separated, of {', '.join(synthetic.SHADES)} (default: %(default)s)",
    )
    p.add_argument(
        "--unseen",
        type=_pairs,
        default=synthetic.DEFAULT_UNSEEN,
        help="(colour, shade) pairs held out of training (only the test split has them), as colour/shade, "
        "comma-separated, or 'none' (default: one per colour, %(default)s)",
    )
    p.add_argument(
        "--classes",
        choices=synthetic.CLASS_KINDS,
        default="hue",
        help="what class_info.pickle numbers: the body colour or the (colour, shade) pair (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    if args.command == "download":
        prepare.download(args.data_dir)
    elif args.command == "prepare":
        prepare.prepare(args.cub_archive, args.embeddings_archive, args.data_dir, args.captions_archive)
    elif args.command == "check":
        prepare.check(args.data_dir)
    elif args.command == "synthetic":
        design = synthetic.SetDesign(args.hues, args.shades, args.unseen, args.classes)
        synthetic.write_synthetic(args.out, args.n_train, args.n_test, args.seed, design)
        print(
            f"Wrote {args.n_train} training and {args.n_test} test synthetic birds ({len(design.hues)} colours x "
            f"{len(design.shades)} wing shades, {len(design.unseen)} pairs only in the test split, "
            f"{len(design.class_names())} classes) to {args.out}"
        )
    return 0


def _names(text):
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _pairs(text):
    if text.strip().lower() == "none":
        return ()
    pairs = []
    for item in _names(text):
        parts = item.split("/")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"{item!r} is not a colour/shade pair")
        pairs.append(tuple(p.strip() for p in parts))
    return tuple(pairs)
