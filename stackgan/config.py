"""Every setting with a default, in one place: one config object per stage and one for the caption encoder, with
the chapter's defaults and the --demo presets, and the command line of stage1.py and stage2.py that makes a
StageConfig from its flags.

A StageConfig is made once from the command line (or by hand), flows through the run, and is saved with the
first checkpoint; a resumed run compares the whole of it with the saved one (see `resume_changes`).
"""

import argparse
import dataclasses
import os

from stackgan import cli
from stackgan.cli import UserError
from stackgan.datasets import NAMES, dataset_of
from stackgan.layout import DEFAULT_DATASET, dataset_dir, demo_dirs

EMBEDDING_DIM = 1024  # char-CNN-RNN sentence embeddings
IMAGE_SIZE = {1: 64, 2: 256}
NETWORK_KEYS = ("gf_dim", "df_dim", "z_dim", "condition_dim", "embedding_dim", "generator_condition", "residual")
# How the generator takes its condition c: "input" (the chapter: once, beside z / the image features) or "film"
# (also every up-sampling block: its batch-normalised features scaled and shifted by a linear map of c).
GENERATOR_CONDITIONS = ("input", "film")


def stored_size(image_size, augment):
    """Size images are stored at before random cropping: the original StackGAN's 76 for 64 and 304 for 256
    (size * 76 / 64) when augmenting, else image_size itself."""
    image_size = int(image_size)
    return image_size * 76 // 64 if augment else image_size


def learning_rate_at(base_lr, epoch, decay_epochs):
    """Halve every decay_epochs epochs (the original StackGAN's schedule)."""
    return base_lr * 0.5 ** (epoch // decay_epochs)


@dataclasses.dataclass
class StageConfig:
    """One stage's training run: data, networks, recipe, outputs and runtime. Defaults are the chapter's."""

    stage: int = 1
    dataset: str = DEFAULT_DATASET  # birds or flowers (stackgan.datasets)
    data_dir: str = dataset_dir(DEFAULT_DATASET)
    results_dir: str = "results"
    log_dir: str = "logs"
    # networks: every layer width derives from gf_dim / df_dim (Stage-II takes z_dim, condition_dim and
    # embedding_dim from its Stage-I generator)
    gf_dim: int = 128
    df_dim: int = 64
    z_dim: int = 100
    condition_dim: int = 128
    embedding_dim: int = EMBEDDING_DIM
    generator_condition: str = "input"
    residual: bool = False  # Stage-II: draw a change to the enlarged Stage-I image
    # recipe
    epochs: int = 1000
    batch_size: int = 64
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    kl_coef: float = 2.0
    lr_decay_epochs: int = 600
    g_ema: float | None = None
    hard_wrong: float = 0.0
    text_loss: float = 0.0
    mix_conditions: float = 0.0
    matching: str = "concat"
    stage1_l1: float = 0.0
    augment: bool = True
    seed: int = 0
    # outputs
    sample_every: int = 1
    checkpoint_every: int = 1
    steps_per_epoch: int | None = None
    # runtime
    steps_per_call: int = 1
    mixed_precision: str = "auto"
    xla: str = "auto"
    distribute: str = "none"
    input: str = "auto"
    fresh: bool = False
    demo: bool = False

    @property
    def image_size(self):
        return IMAGE_SIZE[self.stage]

    def learning_rates(self, epoch):
        """(generator, discriminator) learning rates of an epoch (counted from 0): both halve every
        lr_decay_epochs epochs, the original StackGAN's schedule."""
        return tuple(learning_rate_at(lr, epoch, self.lr_decay_epochs) for lr in (self.g_lr, self.d_lr))

    def network(self):
        """The widths that build the networks."""
        return {k: getattr(self, k) for k in NETWORK_KEYS}

    def to_dict(self):
        return dataclasses.asdict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# The chapter's widths, as StageConfig holds them: what every network builder defaults to.
NETWORK_DEFAULTS = {key: StageConfig.__dataclass_fields__[key].default for key in NETWORK_KEYS}

# What a resumed run may change: the length of the run, its outputs and how it runs. The learning-rate schedule
# may change too (after a diverged epoch, say) and is announced; anything else is refused with a line naming it.
FREE_ON_RESUME = (
    "data_dir",
    "results_dir",
    "log_dir",
    "epochs",
    "sample_every",
    "checkpoint_every",
    "steps_per_epoch",
    "steps_per_call",
    "mixed_precision",
    "xla",
    "distribute",
    "input",
    "fresh",
    "demo",
)
ANNOUNCED_ON_RESUME = ("g_lr", "d_lr", "lr_decay_epochs")


def changed_settings(saved, now, free=(), announced=()):
    """(refused, announced): the settings of the dict `now` that differ from the `saved` dict of a checkpoint, each
    as 'key=saved (now new)'; keys in `free` may change, keys in `announced` may change and are said. Keys the saved
    dict lacks (a setting added since the checkpoint) are not compared."""
    refused, said = [], []
    for key, value in now.items():
        if key in free or key not in saved or saved[key] == value:
            continue
        (said if key in announced else refused).append(f"{key}={saved[key]} (now {value})")
    return refused, said


def resume_changes(saved, config):
    """changed_settings of a stage's run: what a resumed run (a StageConfig) may change is FREE_ON_RESUME, its
    learning-rate schedule is announced."""
    return changed_settings(saved, config.to_dict(), FREE_ON_RESUME, ANNOUNCED_ON_RESUME)


_CHAPTER = {
    1: dict(stage=1, batch_size=64, epochs=1000),
    2: dict(stage=2, batch_size=8, epochs=10),
}
# --demo: small networks on the synthetic birds (or flowers), sized for an ordinary 2-core CPU: a high learning rate
# with a generator weight average (g_ema) keeps the colours steady. The folders are the dataset's demo_dirs.
# (docs/experiments.md has the recipes tried; README's Differences says where the demo departs from the chapter.)
_DEMO_COMMON = dict(gf_dim=16, df_dim=8, g_lr=1e-3, d_lr=1e-3, g_ema=0.99)
DEMO_PRESETS = {
    # Stage-I learns in a few minutes: batch 16 gives twice the updates of 32 for the same images.
    1: dict(
        _DEMO_COMMON,
        z_dim=20,
        condition_dim=16,
        batch_size=16,
        epochs=28,
        lr_decay_epochs=10,
        sample_every=7,
        checkpoint_every=7,
    ),
    # Stage-II: the chapter's batch of 8, a rate of 2e-3 halved every 3 epochs.
    2: dict(
        _DEMO_COMMON,
        batch_size=8,
        epochs=9,
        g_lr=2e-3,
        d_lr=2e-3,
        lr_decay_epochs=3,
        sample_every=3,
        checkpoint_every=3,
    ),
}
# The birds' demo asks for two attributes (body colour and wing shade). Stage-I: a 64-d condition with a lighter KL
# term carries the wing through the conditioning augmentation; the generator reads c in every up-sampling block
# (film); D's text head gives the generator the wing as plainly as the colour; half the fakes come from mixed
# conditions (combinations no training image has); 56 epochs, the rates halved every 14. Stage-II: film, and it
# draws a change to the enlarged Stage-I image (residual) that an L1 term keeps close to it at 64x64.
DEMO_DATASET_PRESETS = {
    "birds": {
        1: dict(
            condition_dim=64,
            kl_coef=0.5,
            text_loss=2.0,
            mix_conditions=0.5,
            generator_condition="film",
            epochs=56,
            lr_decay_epochs=14,
        ),
        2: dict(stage1_l1=50.0, generator_condition="film", residual=True),
    },
}


def demo_folders(dataset):
    """The data, results and log folders of a dataset's --demo, which its commands share."""
    return {k: v for k, v in demo_dirs(dataset).items() if k != "samples_dir"}


def demo_flags(results_dir):
    """'--demo' (or '--demo --dataset flowers') when results_dir is a dataset's demo folder, else None."""
    for name in NAMES:
        if os.path.normpath(results_dir) == os.path.normpath(demo_dirs(name)["results_dir"]):
            return "--demo" if name == DEFAULT_DATASET else f"--demo --dataset {name}"
    return None


def demo_preset(stage, dataset=DEFAULT_DATASET):
    """What --demo sets for a stage on a dataset: the common preset, then the dataset's own."""
    return dict(DEMO_PRESETS[stage], **DEMO_DATASET_PRESETS.get(dataset, {}).get(stage, {}))


def stage_defaults(stage, demo=False, dataset=DEFAULT_DATASET):
    """The StageConfig of the chapter's settings for a stage on a dataset, or of its --demo preset."""
    folders = demo_folders(dataset) if demo else dict(data_dir=dataset_dir(dataset))
    preset = demo_preset(stage, dataset) if demo else {}
    return StageConfig(**dict(_CHAPTER[stage], **preset, **folders), dataset=dataset, demo=demo)


# ---------------------------------------------------------------------------
# The caption encoder (Reed's char-CNN-RNN, trained by regression onto the archive's embeddings)
# ---------------------------------------------------------------------------
CAPTIONS_PER_IMAGE = 10
# Reed's char-CNN-RNN alphabet (icml2016, cvpr2016); characters outside it are dropped.
TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "
TEXT_MAX_LENGTH = 201  # Reed's doc_length


@dataclasses.dataclass
class EncoderConfig:
    """One training run of the caption encoder."""

    dataset: str = DEFAULT_DATASET
    data_dir: str = dataset_dir(DEFAULT_DATASET)
    results_dir: str = "results"
    log_dir: str = "logs"
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    char_dim: int = 32
    conv_dims: tuple = (256, 384, 256)
    rnn_dim: int = 512
    max_length: int = TEXT_MAX_LENGTH
    loss: str = "mse"
    target: str = "aligned"
    augment: float = 0.15
    seed: int = 0
    fresh: bool = False

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# --demo: the synthetic birds, a small encoder that learns their wording in under a minute on 2 CPU cores: a
# char-CNN (no GRU), whose vector sums what windows of the caption say, so that it reads a (colour, wing) pair that
# no training caption names as well as those it saw (the GRU memorised the pairs: docs/experiments.md).
ENCODER_DEMO = dict(
    epochs=5,
    batch_size=64,
    lr=3e-3,
    char_dim=16,
    conv_dims=(96, 128),
    rnn_dim=0,
)


def encoder_defaults(demo=False, dataset=DEFAULT_DATASET):
    folders = dict(ENCODER_DEMO, **demo_folders(dataset)) if demo else dict(data_dir=dataset_dir(dataset))
    return EncoderConfig(dataset=dataset, **folders)


# ---------------------------------------------------------------------------
# The command line of stage1.py and stage2.py: flags -> one StageConfig
# ---------------------------------------------------------------------------
def make_parser(stage, demo=False, dataset=DEFAULT_DATASET):
    """The stage's flags; their defaults are the chapter's, or with demo=True the --demo preset's, on `dataset`."""
    size = IMAGE_SIZE[stage]
    p = cli.ArgumentParser(
        prog=f"stage{stage}.py",
        formatter_class=cli.DefaultsHelpFormatter,
        description=f"Train StackGAN Stage-{'I' * stage} ({size}x{size})"
        + ("" if stage == 1 else " on the frozen Stage-I generator from --results-dir")
        + ". Resumes from the latest checkpoint in --results-dir unless --fresh.",
    )
    p.add_argument(
        "--dataset",
        choices=NAMES,
        help="birds (CUB-200-2011, the chapter's) or flowers (Oxford-102); found from --data-dir's layout when not given",
    )
    p.add_argument("--data-dir", help="the dataset's folder (StackGAN's layout; `python data.py check` tells)")
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
        p.add_argument(
            "--residual",
            action=argparse.BooleanOptionalAction,
            help="the generator's last layer draws a change to the Stage-I image enlarged to 256x256 (bilinear) "
            "instead of a new image (not in the chapter: off)",
        )
    p.add_argument(
        "--generator-condition",
        choices=GENERATOR_CONDITIONS,
        help="where the generator reads its condition: the chapter's once at its input (input), or also in every "
        "up-sampling block, which scales and shifts its normalised features by a linear map of c (film; not in the "
        "chapter)",
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
    preset = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in demo_preset(stage, dataset).items())
    p.add_argument(
        "--demo",
        action="store_true",
        help="synthetic birds (with --dataset flowers, flowers; written if absent) and small networks that learn in "
        "minutes on a CPU; "
        f"sets {preset}; explicit flags still win",
    )
    p.set_defaults(**stage_defaults(stage, demo, dataset).to_dict())
    return p


def parse_args(stage, argv=None):
    """The StageConfig of a stage's command line: a first pass finds --demo and the dataset (--dataset, or the layout
    of --data-dir), whose preset and folders become the defaults."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--demo", action="store_true")
    first.add_argument("--dataset", choices=NAMES)
    first.add_argument("--data-dir")
    known = first.parse_known_args(argv)[0]
    dataset = dataset_of(known.data_dir, known.dataset).name
    args = vars(make_parser(stage, known.demo, dataset).parse_args(argv))
    config = StageConfig(**{k: v for k, v in args.items() if k in StageConfig.__dataclass_fields__})
    for key in ("gf_dim", "df_dim"):
        if getattr(config, key) % 2:
            raise UserError(
                f"--{key.replace('_', '-')} must be even (the last block has half its width), got {getattr(config, key)}"
            )
    return config
