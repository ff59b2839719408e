"""Every setting with a default, in one place: stage sizes, network widths, the chapter's training
defaults, the --demo presets, and the names of the data files and training artefacts.

models, train, sampling, generate, evaluate, bench and the data modules read them from here.
"""

import os

# ---------------------------------------------------------------------------
# Data layout (CUB-200-2011 + StackGAN's birds.zip)
# ---------------------------------------------------------------------------
DATA_DIR = "data/birds"
SYNTHETIC_DATA_DIR = "data/synthetic"
SPLITS = ("train", "test")
FILENAMES_FILE = "filenames.pickle"
CLASS_INFO_FILE = "class_info.pickle"
EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
SPLIT_FILES = (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE)
CUB_DIR = "CUB_200_2011"
CACHE_DIR = "cache"
SYNTHETIC_MARKER = "SYNTHETIC.json"

# ---------------------------------------------------------------------------
# Networks (the chapter's widths; every layer width derives from gf_dim / df_dim)
# ---------------------------------------------------------------------------
EMBEDDING_DIM = 1024  # char-CNN-RNN sentence embeddings
NETWORK_DEFAULTS = dict(gf_dim=128, df_dim=64, z_dim=100, condition_dim=128, embedding_dim=EMBEDDING_DIM)
NETWORK_KEYS = tuple(NETWORK_DEFAULTS)
IMAGE_SIZE = {1: 64, 2: 256}


def stored_size(image_size, augment):
    """Size images are stored at before random cropping: the original StackGAN's 76 for 64 and 304 for
    256 (size * 76 / 64) when augmenting, else image_size itself."""
    image_size = int(image_size)
    return image_size * 76 // 64 if augment else image_size


# ---------------------------------------------------------------------------
# Training: the chapter's defaults, and the --demo presets
# ---------------------------------------------------------------------------
_COMMON = dict(
    data_dir=DATA_DIR,
    results_dir="results",
    log_dir="logs",
    g_lr=2e-4,
    d_lr=2e-4,
    beta1=0.5,
    kl_coef=2.0,
    lr_decay_epochs=600,
    g_ema=None,
    sample_every=1,
    checkpoint_every=1,
    seed=0,
)
TRAIN_DEFAULTS = {
    1: dict(_COMMON, batch_size=64, epochs=1000, gf_dim=128, df_dim=64, z_dim=100, condition_dim=128),
    2: dict(_COMMON, batch_size=8, epochs=10, gf_dim=128, df_dim=64),
}
# The folders of every --demo (both stages and the caption encoder), which read each other's files.
DEMO_DIRS = dict(data_dir=SYNTHETIC_DATA_DIR, results_dir="results/demo", log_dir="logs/demo")
# --demo: small networks on the synthetic birds, sized for an ordinary 2-core CPU (AVX2, float32, XLA): a high
# learning rate with a generator weight average (g_ema) keeps the colours steady.
_DEMO_COMMON = dict(
    DEMO_DIRS,
    gf_dim=16,
    df_dim=8,
    g_lr=1e-3,
    d_lr=1e-3,
    g_ema=0.99,
)
DEMO_PRESETS = {
    # Stage-I learns in under 4 minutes: batch 16 gives twice the updates of 32 for the same images.
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
    # Stage-II: the chapter's batch of 8, a rate of 2e-3 halved every 3 epochs. Narrower networks run faster
    # but learn slower (gf 16 / df 4: 0.19 after 5 epochs; gf 8 / df 8: 0.39 after 6, against 0.67 at gf 16 /
    # df 8), and so does batch 4.
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


# ---------------------------------------------------------------------------
# Artefacts of training, read by stage2.py, generate.py and evaluate.py
# ---------------------------------------------------------------------------
def config_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_config.json")


def weights_path(results_dir, stage, net):
    """net is 'gen' or 'dis': results/stage1_gen.weights.h5 etc."""
    return os.path.join(results_dir, f"stage{stage}_{net}.weights.h5")


def checkpoint_dir(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_ckpt")


def samples_dir(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}")


def history_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_history.json")


def loss_plot_path(results_dir, stage):
    return os.path.join(results_dir, f"stage{stage}_losses.png")


def stage_log_dir(log_dir, stage):
    return os.path.join(log_dir, f"stage{stage}")


# ---------------------------------------------------------------------------
# Captions (Reed's text_c10: text/<class>/<image>.txt, 10 lines each) and the Keras text encoder
# ---------------------------------------------------------------------------
TEXT_DIR = "text"
CAPTIONS_PER_IMAGE = 10
# Reed's char-CNN-RNN alphabet (icml2016, cvpr2016); characters outside it are dropped.
TEXT_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "
TEXT_MAX_LENGTH = 201  # Reed's doc_length
TEXT_ENCODER_DEFAULTS = dict(
    data_dir=DATA_DIR,
    results_dir="results",
    log_dir="logs",
    epochs=60,
    batch_size=64,
    lr=1e-3,
    char_dim=32,
    conv_dims=(256, 384, 256),
    rnn_dim=512,
    max_length=TEXT_MAX_LENGTH,
    loss="mse",
    target="aligned",
    augment=0.15,
    seed=0,
)
# --demo: the synthetic birds, a small encoder that learns their wording in about a minute on 2 CPU cores.
TEXT_ENCODER_DEMO = dict(
    DEMO_DIRS,
    epochs=5,
    batch_size=64,
    lr=3e-3,
    char_dim=16,
    conv_dims=(64, 96, 96),
    rnn_dim=96,
)
DEMO_SAMPLES_DIR = "samples/demo"


def text_encoder_weights_path(results_dir):
    return os.path.join(results_dir, "text_encoder.weights.h5")


def text_encoder_config_path(results_dir):
    return os.path.join(results_dir, "text_encoder_config.json")


def text_encoder_checkpoint_dir(results_dir):
    return os.path.join(results_dir, "text_encoder_ckpt")


def text_encoder_log_dir(log_dir):
    return os.path.join(log_dir, "text_encoder")
