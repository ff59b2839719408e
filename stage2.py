"""Train StackGAN Stage-II (256x256 from the frozen Stage-I generator's 64x64 images).

python stage2.py            # the chapter's settings on data/birds, after stage1.py
python stage2.py --demo     # small networks on synthetic birds, after stage1.py --demo
python stage2.py --dataset flowers              # Oxford-102 flowers, after stage1.py --dataset flowers
python stage2.py --help
"""

from stackgan.cli import run_main
from stackgan.training import loop


def main(argv=None):
    return loop.main(2, argv)


if __name__ == "__main__":
    run_main(main)
