"""Training the caption encoder by regression onto the archive's embeddings: caption k of an image onto embedding k
of that image ('aligned', as StackGAN pairs them) or onto the mean of its ten embeddings ('mean'), with word noise
so that it reads wordings it never saw, and calibrated afterwards against the shrinkage of regression.

Writes <results>/text_encoder.weights.h5 and text_encoder_config.json, checkpoints in <results>/text_encoder_ckpt
(resumed by default) and TensorBoard scalars in <logs>/text_encoder.
"""

import os
import time

import numpy as np

from stackgan import cli, io, layout
from stackgan.checkpointing import TrainedFolder
from stackgan.cli import UserError
from stackgan.config import changed_settings, encoder_defaults
from stackgan.datasets import dataset_of
from stackgan.datasets.captions import load_caption_split
from stackgan.text.encoder import augment_captions, length_multiple, normalize_caption, tokenize
from stackgan.text.encoder import (
    ARCHITECTURE_KEYS,
    LOSSES,
    TARGETS,
    build_encoder,
    calibration_of,
    encode,
    forget_loaded,
    make_config,
    read_encoder_config,
)
from stackgan.text.evaluation import retrieval_metrics
from stackgan.text.pairs import caption_rows, training_pairs
from stackgan.training.records import flush_log, log_writer, writing_to

# Settings a resumed run must share with its checkpoint (the learning rate may change, and is announced).
RECIPE_KEYS = ("batch_size", "augment", "seed")


def _loss_fn(name):
    from keras import ops

    if name == "mse":
        return lambda pred, y: ops.mean(ops.square(pred - y))
    return lambda pred, y: 1.0 - ops.mean(ops.sum(_ops_unit(pred) * _ops_unit(y), axis=-1))


def _ops_unit(x):
    from keras import ops

    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True)), 1e-8)


def resume_changes(saved, config):
    """(refused, announced) as config.resume_changes says them: the architecture, objective and recipe a checkpoint
    was made with must be the ones asked for now; a new learning rate is announced."""
    compared = ARCHITECTURE_KEYS + ("loss", "target") + RECIPE_KEYS + ("lr",)
    return changed_settings(saved, {k: config[k] for k in compared}, announced=("lr",))


def encoder_folder(results_dir):
    """The TrainedFolder of the caption encoder in results_dir."""
    return TrainedFolder(
        results_dir,
        layout.text_encoder_checkpoint_dir(results_dir),
        "a trained text encoder",
        layout.text_encoder_files(results_dir),
        max_to_keep=2,
    )


def _training_text(settings, config):
    """(training captions, targets, test split or None, normalized test captions) of settings.data_dir."""
    dataset = dataset_of(settings.data_dir, settings.dataset)
    train_split = load_caption_split(settings.data_dir, "train", dataset)
    texts, targets = training_pairs(train_split, config)
    if not texts:
        raise UserError(
            f"no caption with a letter in {dataset.text_dir(settings.data_dir)}; "
            f"{dataset.captions_hint(settings.data_dir)}"
        )
    try:
        test = load_caption_split(settings.data_dir, "test", dataset)
    except UserError:
        return texts, targets, None, None
    test_texts = [normalize_caption(t)[: config["max_length"]] for t in caption_rows(test.captions)[0]]
    return texts, targets, test, test_texts


def train(settings=None, log=print):
    """Train the encoder as `settings` (an EncoderConfig) says on data_dir's training captions, resuming from
    <results_dir>/text_encoder_ckpt unless fresh, and write its weights and config into results_dir. Returns the
    config, with 'test_cosine' (mean cosine to the true test embeddings) when the test split has captions."""
    s = settings or encoder_defaults()
    if s.loss not in LOSSES or s.target not in TARGETS:
        raise UserError(f"loss {s.loss!r} / target {s.target!r}: use a loss in {LOSSES} and a target in {TARGETS}")
    if not 0.0 <= float(s.augment) <= 1.0:
        raise UserError(f"--augment {s.augment}: the word noise rate is a probability; use a value from 0 to 1")
    config = make_config(s.char_dim, s.conv_dims, s.rnn_dim, s.max_length, s.loss, s.target)
    config.update(augment=float(s.augment), lr=float(s.lr), batch_size=int(s.batch_size), seed=int(s.seed))
    texts, targets, test, test_texts = _training_text(s, config)
    config["embedding_dim"] = int(targets.shape[1])
    config["output_norm"] = float(np.linalg.norm(targets, axis=1).mean())

    folder = encoder_folder(s.results_dir)
    with folder.held():
        return _train_resumably(s, config, texts, targets, test, test_texts, folder, log)


def _train_resumably(s, config, texts, targets, test, test_texts, folder, log):
    """The epochs of train() from its checkpoint folder on, in the locked results folder; Ctrl-C and SIGTERM stop it
    between batches (cli.safe_points)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(s.seed)
    model = build_encoder(config)
    optimizer = keras.optimizers.Adam(s.lr)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    latest = folder.restore(checkpoint, config, s.fresh, resume_changes, log)
    if latest:
        folder.saved_epoch = int(epoch.numpy())
        log(f"Resumed from {latest} at epoch {folder.saved_epoch}")

    step = _compiled_step(model, optimizer, _loss_fn(s.loss), config["embedding_dim"])
    writer = log_writer(layout.text_encoder_log_dir(s.log_dir))
    log(
        f"Training the text encoder on {len(texts)} captions of {s.data_dir} ({s.loss} onto {s.target} embeddings, "
        f"{model.count_params():,} parameters) for {s.epochs} epochs"
    )
    start_epoch = int(epoch.numpy())

    def stopped(where):
        return "the text encoder " + folder.stop_message(where)

    with cli.safe_points():
        for e in range(start_epoch, s.epochs):
            started = time.time()
            losses = []
            for t, y in _epoch_dataset(texts, targets, config, s, e):
                losses.append(float(step(t, y)))
                cli.check_stop(stopped(f"in epoch {e + 1}"))
            epoch.assign(e + 1)
            metrics = {"train_loss": float(np.mean(losses))}
            if test is not None:
                vectors = encode(model, config, test_texts, calibrate=False)
                test_rows = caption_rows(test.captions)
                metrics["test_cosine"] = retrieval_metrics(vectors, test.embeddings, *test_rows[1:])["cosine"]
            with writing_to(writer):
                for name, value in metrics.items():
                    tf.summary.scalar(name, value, step=e + 1)
            folder.save(e + 1, config)
            config.update(metrics, epochs_trained=e + 1, calibration=calibration_of(model, config, texts, targets))
            _export(model, config, s.results_dir)
            took = time.time() - started
            log(
                f"  epoch {e + 1}/{s.epochs}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                + f" ({took:.1f} s)"
            )
            cli.check_stop(stopped(f"after epoch {e + 1}"))
    if start_epoch >= s.epochs:
        log(f"{folder.directory} already holds {start_epoch} epochs (--epochs {s.epochs}); use --fresh to train again")
        config.update(epochs_trained=start_epoch, calibration=calibration_of(model, config, texts, targets))
        _export(model, config, s.results_dir)
    flush_log(writer)
    log(f"Wrote {layout.text_encoder_weights_path(s.results_dir)} and {layout.text_encoder_config_path(s.results_dir)}")
    return config


def _epoch_dataset(texts, targets, config, settings, epoch):
    """Epoch `epoch`'s batches: its own word noise and order (so a resumed run sees what an unbroken one would),
    each batch only as long as its longest caption."""
    import tensorflow as tf

    rng = np.random.default_rng([settings.seed, epoch])
    tokens = tokenize(augment_captions(texts, rng, settings.augment), config, width=config["max_length"])
    m = length_multiple(config)
    return (
        tf.data.Dataset.from_tensor_slices((tokens, targets))
        .shuffle(len(texts), seed=int(rng.integers(2**31)))
        .batch(settings.batch_size)
        .map(lambda t, y: (t[:, : _trimmed_width(t, m)], y))
        .prefetch(2)
    )


def _compiled_step(model, optimizer, loss_fn, embedding_dim):
    import tensorflow as tf

    @tf.function(
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, embedding_dim], tf.float32)]
    )
    def step(t, y):
        with tf.GradientTape() as tape:
            value = loss_fn(model(t, training=True), y)
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
        return value

    return step


def _trimmed_width(t, m):
    import tensorflow as tf

    longest = tf.reduce_max(tf.reduce_sum(tf.cast(t > 0, tf.int32), axis=1))
    return tf.maximum((longest + m - 1) // m * m, m)


def _export(model, config, results_dir):
    io.save_weights(model, layout.text_encoder_weights_path(results_dir))
    io.write_json(layout.text_encoder_config_path(results_dir), config)
    forget_loaded()


def train_demo_encoder(data_dir, results_dir, log_dir, dataset="birds"):
    """Train the demo encoder on the dataset's synthetic set (written, or given captions, if needed) with the small
    ENCODER_DEMO settings; skips the work when results_dir already holds one trained that far."""
    from stackgan.datasets import get_dataset

    get_dataset(dataset).synthetic().ensure_synthetic(data_dir)
    ckpt_dir = layout.text_encoder_checkpoint_dir(results_dir)
    has_checkpoint = os.path.isdir(ckpt_dir) and any(n.endswith(".index") for n in os.listdir(ckpt_dir))
    if os.path.exists(layout.text_encoder_weights_path(results_dir)) and not has_checkpoint:
        print(
            f"Keeping the caption encoder in {results_dir}: it has no checkpoint to continue "
            f"(`python text_encoder.py train --demo --fresh` trains a new one)"
        )
        return read_encoder_config(results_dir)
    return train(
        encoder_defaults(demo=True, dataset=dataset).replace(
            data_dir=data_dir, results_dir=results_dir, log_dir=log_dir
        )
    )
