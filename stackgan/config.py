"""Every setting with a default, in one place: one config object per stage and one for the caption encoder, with
the chapter's defaults and the --demo presets.

A StageConfig is made once from the command line (or by hand), flows through the run, and is saved with the
first checkpoint; a resumed run compares the whole of it with the saved one (see `resume_changes`).
"""

import dataclasses

from stackgan.layout import DATA_DIR, SYNTHETIC_DATA_DIR

EMBEDDING_DIM = 1024  # char-CNN-RNN sentence embeddings
IMAGE_SIZE = {1: 64, 2: 256}
NETWORK_KEYS = ("gf_dim", "df_dim", "z_dim", "condition_dim", "embedding_dim")
NETWORK_DEFAULTS = dict(gf_dim=128, df_dim=64, z_dim=100, condition_dim=128, embedding_dim=EMBEDDING_DIM)


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
    data_dir: str = DATA_DIR
    results_dir: str = "results"
    log_dir: str = "logs"
    # networks: every layer width derives from gf_dim / df_dim (Stage-II takes z_dim, condition_dim and
    # embedding_dim from its Stage-I generator)
    gf_dim: int = 128
    df_dim: int = 64
    z_dim: int = 100
    condition_dim: int = 128
    embedding_dim: int = EMBEDDING_DIM
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


def resume_changes(saved, config):
    """(refused, announced): the settings of `config` (a StageConfig) that differ from the `saved` dict of a
    checkpoint, each as 'key=saved (now new)'. Keys the saved dict lacks (older checkpoints) are not compared."""
    refused, announced = [], []
    for key, now in config.to_dict().items():
        if key in FREE_ON_RESUME or key not in saved or saved[key] == now:
            continue
        (announced if key in ANNOUNCED_ON_RESUME else refused).append(f"{key}={saved[key]} (now {now})")
    return refused, announced


_CHAPTER = {
    1: dict(stage=1, batch_size=64, epochs=1000),
    2: dict(stage=2, batch_size=8, epochs=10),
}
# The folders of every --demo (both stages and the caption encoder), which read each other's files.
DEMO_DIRS = dict(data_dir=SYNTHETIC_DATA_DIR, results_dir="results/demo", log_dir="logs/demo")
DEMO_SAMPLES_DIR = "samples/demo"
# --demo: small networks on the synthetic birds, sized for an ordinary 2-core CPU: a high learning rate with a
# generator weight average (g_ema) keeps the colours steady. (docs/experiments.md has the recipes tried; README's
# Differences says where the demo departs from the chapter.)
_DEMO_COMMON = dict(DEMO_DIRS, gf_dim=16, df_dim=8, g_lr=1e-3, d_lr=1e-3, g_ema=0.99)
DEMO_PRESETS = {
    # Stage-I learns in a few minutes: batch 16 gives twice the updates of 32 for the same images. A 64-d condition
    # with a lighter KL term carries the wing through the conditioning augmentation; D's text head gives the
    # generator the wing as plainly as the colour; half the fakes come from mixed conditions (combinations no
    # training image has).
    1: dict(
        _DEMO_COMMON,
        z_dim=20,
        condition_dim=64,
        kl_coef=0.5,
        text_loss=2.0,
        mix_conditions=0.5,
        batch_size=16,
        epochs=28,
        lr_decay_epochs=10,
        sample_every=7,
        checkpoint_every=7,
    ),
    # Stage-II: the chapter's batch of 8, a rate of 2e-3 halved every 3 epochs, and an L1 term that keeps the Stage-I
    # image it refines (without it Stage-II paints the wing over).
    2: dict(
        _DEMO_COMMON,
        batch_size=8,
        epochs=9,
        g_lr=2e-3,
        d_lr=2e-3,
        lr_decay_epochs=3,
        stage1_l1=50.0,
        sample_every=3,
        checkpoint_every=3,
    ),
}


def stage_defaults(stage, demo=False):
    """The StageConfig of the chapter's settings for a stage, or of its --demo preset."""
    return StageConfig(**dict(_CHAPTER[stage], **(DEMO_PRESETS[stage] if demo else {})), demo=demo)


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

    data_dir: str = DATA_DIR
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


# --demo: the synthetic birds, a small encoder that learns their wording in about a minute on 2 CPU cores.
ENCODER_DEMO = dict(
    DEMO_DIRS,
    epochs=5,
    batch_size=64,
    lr=3e-3,
    char_dim=16,
    conv_dims=(64, 96, 96),
    rnn_dim=96,
)


def encoder_defaults(demo=False):
    return EncoderConfig(**(ENCODER_DEMO if demo else {}))
