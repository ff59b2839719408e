"""Train StackGAN Stage-II (256x256 from the frozen Stage-I generator's 64x64 images).

python stage2.py            # the chapter's settings on data/birds
python stage2.py --demo     # small networks on synthetic birds, minutes on a CPU
python stage2.py --help
"""

from cli import run_main
from train import main_for_stage


def main(argv=None):
    return main_for_stage(2, argv)


if __name__ == "__main__":
    run_main(main)
