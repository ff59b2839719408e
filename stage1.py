"""Train StackGAN Stage-I (64x64 from text embeddings).

python stage1.py            # the chapter's settings on data/birds
python stage1.py --demo     # small networks on synthetic birds, minutes on a CPU
python stage1.py --dataset flowers              # Oxford-102 flowers in data/flowers
python stage1.py --demo --dataset flowers       # small networks on synthetic flowers
python stage1.py --help
"""

from stackgan.cli import run_main
from stackgan.training import loop


def main(argv=None):
    return loop.main(1, argv)


if __name__ == "__main__":
    run_main(main)
