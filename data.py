"""CUB-200-2011 birds with char-CNN-RNN text embeddings, loaded as the chapter loads them: its loaders under its
names. The code lives in the stackgan package (stackgan/datasets/); this module is where a reader of the chapter
finds each function, and the data command line (birds, or Oxford-102 flowers with --dataset flowers):

    python data.py download  [--dataset flowers] [--data-dir data/birds]
    python data.py prepare   --cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip [--data-dir ...]
                             [--captions-archive attngan_birds.zip]
    python data.py prepare   --dataset flowers --images-archive 102flowers.tgz --embeddings-archive flowers.zip
                             [--captions-archive cvpr2016_flowers.tar.gz]
    python data.py check     [--data-dir data/birds]
    python data.py synthetic [--dataset flowers] [--out data/synthetic] [--n-train 800 --n-test 160 --seed 0]
"""

from stackgan.datasets.birds import load_bounding_boxes
from stackgan.datasets.cache import load_dataset
from stackgan.datasets.loaders import get_img, load_class_ids, load_embeddings, load_filenames

__all__ = ["get_img", "load_bounding_boxes", "load_class_ids", "load_dataset", "load_embeddings", "load_filenames"]


def main(argv=None):
    from stackgan.datasets.commands import main as commands

    return commands(argv)


if __name__ == "__main__":
    from stackgan.cli import run_main

    run_main(main)
