"""The per-epoch record of a run: loss rows in stageN_history.json, their curves in stageN_losses.png (for readers
without TensorBoard), and the TensorBoard scalars (the chapter's write_log)."""

import contextlib
import json
import re

from stackgan import io, layout


def log_writer(log_dir, chief=True):
    """The tf.summary writer of a run (a no-op one off the chief); an unwritable folder is a one-line UserError."""
    import tensorflow as tf

    if not chief:
        return tf.summary.create_noop_writer()
    try:
        return tf.summary.create_file_writer(log_dir)
    except tf.errors.OpError as err:
        raise io.TensorFlowWriteError(f"TensorBoard logs in {log_dir}", err) from None


@contextlib.contextmanager
def writing_to(writer):
    """writer.as_default() for the block of tf.summary calls; a failed write (a full disk) becomes a one-line
    UserError naming the logs' folder."""
    import tensorflow as tf

    try:
        with writer.as_default():
            yield
    except tf.errors.OpError as err:
        text = getattr(err, "message", str(err))
        m = re.search(r"(\S+)/events\.out\.tfevents", text)
        raise io.TensorFlowWriteError(f"TensorBoard logs in {m.group(1)}" if m else "TensorBoard logs", err) from None


def write_log(writer, name, value, step):
    """The chapter's write_log, on tf.summary."""
    import tensorflow as tf

    with writing_to(writer):
        tf.summary.scalar(name, value, step=step)


def flush_log(writer):
    with writing_to(writer):
        writer.flush()


def log_epoch(writer, means, learning_rates, step):
    """An epoch's mean losses and D's outputs, and the two learning rates, as TensorBoard scalars, flushed."""
    import tensorflow as tf

    scalars = {f"loss/{k}" if "loss" in k else f"D/{k}": v for k, v in means.items()}
    scalars.update(zip(("lr/generator", "lr/discriminator"), learning_rates))
    with writing_to(writer):
        for name, value in scalars.items():
            tf.summary.scalar(name, value, step=step)
        writer.flush()


def read_history(results_dir, stage, epochs_done):
    """The per-epoch rows of earlier runs, up to the epoch a resumed run starts from."""
    try:
        with open(layout.history_path(results_dir, stage)) as f:
            return [row for row in json.load(f) if row["epoch"] <= epochs_done]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_history(results_dir, stage, history):
    """stageN_history.json and the loss-curve PNG (a matplotlib Figure of its own: pyplot's backend, which a
    notebook's inline plots use, is left as it is)."""
    from matplotlib.figure import Figure

    io.write_json(layout.history_path(results_dir, stage), history)
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.5))
    losses, probabilities = fig.subplots(1, 2)
    for key in ("d_loss", "g_loss_adv", "kl_loss"):
        losses.plot(epochs, [row[key] for row in history], label=key)
    for key in ("d_real", "d_wrong", "d_fake"):
        probabilities.plot(epochs, [row[key] for row in history], label=key)
    losses.set(xlabel="epoch", title=f"Stage-{'I' * stage} losses")
    probabilities.set(xlabel="epoch", ylim=(0, 1), title="mean D(x) on real / wrong / fake")
    for ax in (losses, probabilities):
        ax.legend()
    fig.tight_layout()
    with io.atomic_path(layout.loss_plot_path(results_dir, stage), ".png") as tmp:
        fig.savefig(tmp, dpi=80)
