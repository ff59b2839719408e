"""The command line of data.py: download, prepare and check a dataset's real data (birds or flowers), or write its
synthetic set."""

import argparse

from stackgan import cli
from stackgan.datasets import NAMES, dataset_of, get_dataset, prepare
from stackgan.datasets import synthetic as synthetic_birds
from stackgan.layout import DEFAULT_DATASET, dataset_dir, demo_dirs

DATA_DIR = dataset_dir(DEFAULT_DATASET)
SYNTHETIC_DATA_DIR = demo_dirs(DEFAULT_DATASET)["data_dir"]
BIRDS_DESIGN = (synthetic_birds.DEFAULT_HUES, synthetic_birds.DEFAULT_SHADES, synthetic_birds.DEFAULT_UNSEEN)


def _archives(role):
    """'CUB_200_2011.tgz (birds), 102flowers.tgz (flowers)' for the archives of a role."""
    return ", ".join(f"{get_dataset(n).archive(role).filename} ({n})" for n in NAMES)


def _sources():
    """Where download gets each dataset's archives, for its help."""
    return "; ".join(
        f"{name}: " + ", ".join(f"{a.filename} ({a.link})" for a in get_dataset(name).archives) for name in NAMES
    )


def main(argv=None):
    parser = cli.ArgumentParser(
        prog="data.py",
        description="The data of StackGAN, CUB-200-2011 birds or Oxford-102 flowers with char-CNN-RNN embeddings: "
        "download, prepare, check, or write a synthetic set.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{download,prepare,check,synthetic}")

    def dataset_flags(p, default_dir_help):
        p.add_argument(
            "--dataset",
            choices=NAMES,
            default=None,
            help="birds (CUB-200-2011, the chapter's) or flowers (Oxford-102); default: the one DATA_DIR holds, "
            "else birds",
        )
        p.add_argument("--data-dir", default=None, help=default_dir_help)

    p = sub.add_parser(
        "download",
        help="download the dataset's images, embeddings and captions archives, then prepare",
        description=f"Download the dataset's archives into DATA_DIR/downloads (images MD5-checked, Google Drive files "
        f"via gdown; the captions are optional) and unpack them. {_sources()}. If a link is dead, download by hand "
        "and use `prepare`.",
    )
    dataset_flags(p, "where to put the data (default: data/birds or data/flowers)")
    p = sub.add_parser(
        "prepare",
        help="unpack local copies of the archives",
        description="Unpack local archives into DATA_DIR/{train,test}/*.pickle, the images folder (DATA_DIR/"
        "CUB_200_2011, DATA_DIR/jpg) and the captions (DATA_DIR/text, DATA_DIR/text_c10). --captions-archive alone "
        "adds the captions to an existing data folder. Everything is verified before anything is replaced.",
    )
    dataset_flags(p, "where to put the data (default: data/birds or data/flowers)")
    p.add_argument(
        "--images-archive",
        "--cub-archive",
        dest="images_archive",
        default=None,
        help=f"path of the images archive: {_archives('images')}",
    )
    p.add_argument(
        "--embeddings-archive", default=None, help=f"path of StackGAN's embeddings archive: {_archives('embeddings')}"
    )
    p.add_argument(
        "--captions-archive",
        default=None,
        help=f"captions (a zip or a tar with text/ or text_c10/): {_archives('captions')}",
    )
    p = sub.add_parser(
        "check",
        help="summarise a data folder or say what is missing",
        description="Load what training reads and print images per split, classes, embedding shape, missing "
        "images/boxes and images that do not decode (every image is decoded, with a progress bar); exit status 2 "
        "and what to get, from where, when required files are missing or unusable.",
    )
    dataset_flags(p, "data folder (default: data/birds or data/flowers)")
    p = sub.add_parser(
        "synthetic",
        help="write a synthetic set (birds or flowers)",
        description="Write a deterministic synthetic set in the real layout, for quick training runs and tests: "
        "birds (a body colour and a wing shade each, some pairs only in the test split; class = body colour or pair) "
        "or flowers (class = petal colour and form, a class-disjoint split).",
    )
    p.add_argument("--dataset", choices=NAMES, default=DEFAULT_DATASET, help="birds or flowers (default: %(default)s)")
    p.add_argument(
        "--out", default=None, help=f"output folder (default: {SYNTHETIC_DATA_DIR}, for flowers data/synthetic_flowers)"
    )
    p.add_argument("--n-train", type=cli.positive_int, default=800, help="training images (default: %(default)s)")
    p.add_argument("--n-test", type=cli.positive_int, default=160, help="test images (default: %(default)s)")
    p.add_argument("--seed", type=cli.non_negative_int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--hues",
        type=_names,
        default=synthetic_birds.DEFAULT_HUES,
        help=f"birds: body colours, comma-separated, of {', '.join(synthetic_birds.COLOURS)} (default: %(default)s)",
    )
    p.add_argument(
        "--shades",
        type=_names,
        default=synthetic_birds.DEFAULT_SHADES,
        help=f"birds: wing shades, comma-separated, of {', '.join(synthetic_birds.SHADES)} (default: %(default)s)",
    )
    p.add_argument(
        "--unseen",
        type=_pairs,
        default=synthetic_birds.DEFAULT_UNSEEN,
        help="birds: (colour, shade) pairs held out of training (only the test split has them), as colour/shade, "
        "comma-separated, or 'none' (default: one per colour, %(default)s)",
    )
    p.add_argument(
        "--classes",
        choices=synthetic_birds.CLASS_KINDS,
        default="hue",
        help="birds: what class_info.pickle numbers, the body colour or the (colour, shade) pair "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)

    if args.command == "synthetic":
        dataset = get_dataset(args.dataset)
        out = args.out or demo_dirs(dataset.name)["data_dir"]
        if dataset.name == DEFAULT_DATASET:
            design = synthetic_birds.SetDesign(args.hues, args.shades, args.unseen, args.classes)
            synthetic_birds.write_synthetic(out, args.n_train, args.n_test, args.seed, design)
            kind = (
                f"{len(design.hues)} colours x {len(design.shades)} wing shades, {len(design.unseen)} pairs only in "
                f"the test split, {len(design.class_names())} classes"
            )
        else:
            design_flags = (args.hues, args.shades, args.unseen, args.classes)
            if design_flags != (*BIRDS_DESIGN, "hue"):
                raise cli.UserError("--hues, --shades, --unseen and --classes describe synthetic birds; drop them")
            flowers = dataset.synthetic()
            flowers.write_synthetic(out, args.n_train, args.n_test, args.seed)
            kind = f"{flowers.N_CLASSES} classes"
        print(f"Wrote {args.n_train} training and {args.n_test} test synthetic {dataset.name} ({kind}) to {out}")
        return 0
    dataset = dataset_of(args.data_dir, args.dataset)
    data_dir = args.data_dir or dataset.default_dir
    if args.command == "download":
        prepare.download(data_dir, dataset)
    elif args.command == "prepare":
        prepare.prepare(args.images_archive, args.embeddings_archive, data_dir, args.captions_archive, dataset)
    elif args.command == "check":
        prepare.check(data_dir, dataset=dataset)
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
