"""The command line of stage1.py and stage2.py: flags -> one StageConfig -> a training run (and, with --demo, the
demo's report and caption encoder)."""

import argparse

from stackgan import cli
from stackgan.cli import UserError
from stackgan.config import DEMO_PRESETS, IMAGE_SIZE, StageConfig, stage_defaults


def make_parser(stage, demo=False):
    """The stage's flags; their defaults are the chapter's, or with demo=True the --demo preset's."""
    size = IMAGE_SIZE[stage]
    p = cli.ArgumentParser(
        prog=f"stage{stage}.py",
        formatter_class=cli.DefaultsHelpFormatter,
        description=f"Train StackGAN Stage-{'I' * stage} ({size}x{size})"
        + ("" if stage == 1 else " on the frozen Stage-I generator from --results-dir")
        + ". Resumes from the latest checkpoint in --results-dir unless --fresh.",
    )
    p.add_argument("--data-dir", help="dataset root (CUB layout)")
    p.add_argument("--results-dir", help="weights, config, checkpoints, sample grids")
    p.add_argument("--log-dir", help=f"TensorBoard logs go to LOG_DIR/stage{stage}")
    p.add_argument("--epochs", type=cli.positive_int, help="total epochs to train (a resumed run continues up to it)")
    p.add_argument("--batch-size", type=cli.positive_int, help="global batch size")
    p.add_argument("--g-lr", type=cli.positive_float, help="generator Adam learning rate")
    p.add_argument("--d-lr", type=cli.positive_float, help="discriminator Adam learning rate")
    p.add_argument("--beta1", type=cli.beta, help="Adam beta_1 (beta_2 is 0.999)")
    p.add_argument("--lr-decay-epochs", type=cli.positive_int, help="halve both learning rates every N epochs")
    p.add_argument("--kl-coef", type=cli.non_negative_float, help="weight of the KL term in the generator loss")
    p.add_argument(
        "--g-ema",
        type=cli.momentum,
        help="sample and export an exponential moving average of the generator's weights with this "
        "momentum per step, e.g. 0.995 (not in the chapter; off unless given)",
    )
    p.add_argument(
        "--hard-wrong",
        type=cli.probability,
        help="fraction of the discriminator's wrong images taken from the most similar other descriptions (by the "
        "cosine of their caption embeddings) instead of a random other class (not in the chapter: 0)",
    )
    p.add_argument(
        "--text-loss",
        type=cli.non_negative_float,
        help="weight of a text head on D that regresses each image's sentence embedding (D on real images, G on its "
        "own: a fake must say its text) (not in the chapter: 0)",
    )
    p.add_argument(
        "--mix-conditions",
        type=cli.probability,
        help="fraction of fakes drawn from mixed conditions: analogies e_b + e_c - e_a of an image a and two "
        "neighbours that each differ from it in one respect, so that the generator meets combinations no training "
        "image has (not in the chapter: 0)",
    )
    p.add_argument(
        "--matching",
        choices=["concat", "projection"],
        help="how D reads the text: the chapter's compressed embedding tiled beside the image features (concat), or "
        "a projection term, the inner product of its features with a linear map of the embedding (not in the chapter)",
    )
    if stage == 2:
        p.add_argument(
            "--stage1-l1",
            type=cli.non_negative_float,
            help="weight of the mean absolute difference between the Stage-II image shrunk to 64x64 and the Stage-I "
            "image it refines: Stage-II keeps what Stage-I drew (not in the chapter: 0)",
        )
    p.add_argument("--gf-dim", type=cli.positive_int, help="generator width" + ("" if stage == 1 else " (Stage-II)"))
    p.add_argument("--df-dim", type=cli.positive_int, help="discriminator width")
    if stage == 1:
        p.add_argument("--z-dim", type=cli.positive_int, help="noise dimension")
        p.add_argument("--condition-dim", type=cli.positive_int, help="conditioning vector dimension")
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="plain resize of the crops (the chapter) instead of random crop + flip (the original StackGAN)",
    )
    p.add_argument("--seed", type=cli.non_negative_int, help="seed for weights, noise and data order")
    p.add_argument("--sample-every", type=cli.positive_int, help="write a sample grid every N epochs")
    p.add_argument("--checkpoint-every", type=cli.positive_int, help="checkpoint and export weights every N epochs")
    p.add_argument(
        "--steps-per-epoch", type=cli.positive_int, help="cap on steps per epoch, for quick runs (default: all)"
    )
    p.add_argument(
        "--steps-per-call",
        type=cli.positive_int,
        help="training steps per compiled call (Keras' steps_per_execution): fewer round trips to Python",
    )
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start from scratch")
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "off", "bf16", "fp16"],
        help="compute in bfloat16/float16 (weights, outputs and losses stay float32); auto: bf16 where it is "
        "native (GPUs of compute capability 8.0+, CPUs with AVX512-BF16/AMX), fp16 on older GPUs, else float32",
    )
    p.add_argument(
        "--xla",
        choices=["auto", "on", "off"],
        help="compile the step with XLA; auto: on, except on a CPU for bf16 or several replicas",
    )
    p.add_argument(
        "--distribute",
        choices=["none", "mirrored", "multiworker"],
        help="tf.distribute strategy: all local GPUs, or several machines configured by TF_CONFIG",
    )
    p.add_argument(
        "--input",
        choices=["auto", "device", "host"],
        help="where the training images live: device (as variables in GPU memory, or RAM on a CPU), host (memory-"
        "mapped, each batch read and prefetched to the device); auto: device when one copy per replica takes at "
        "most half of the device's free memory and the run still fits",
    )
    preset = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in DEMO_PRESETS[stage].items())
    p.add_argument(
        "--demo",
        action="store_true",
        help="synthetic birds (written if absent) and small networks that learn in minutes on a CPU; "
        f"sets {preset}; explicit flags still win",
    )
    p.set_defaults(**stage_defaults(stage, demo).to_dict())
    return p


def parse_args(stage, argv=None):
    """The StageConfig of a stage's command line: a first pass finds --demo, whose preset becomes the defaults."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--demo", action="store_true")
    demo = first.parse_known_args(argv)[0].demo
    args = vars(make_parser(stage, demo).parse_args(argv))
    config = StageConfig(**{k: v for k, v in args.items() if k in StageConfig.__dataclass_fields__})
    for key in ("gf_dim", "df_dim"):
        if getattr(config, key) % 2:
            raise UserError(
                f"--{key.replace('_', '-')} must be even (the last block has half its width), got {getattr(config, key)}"
            )
    return config


def main_for_stage(stage, argv=None):
    from stackgan import demo
    from stackgan.training.loop import run

    config = parse_args(stage, argv)
    ctx = run(config)
    if config.demo:
        demo.after_training(ctx)
    return 0
