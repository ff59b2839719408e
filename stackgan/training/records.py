"""Everything a stage's run keeps on disk, in one place: the tf.train checkpoints (G, D, both optimizers, epoch,
noise) with the run's config beside them (stackgan.checkpointing.TrainedFolder: recovery, --fresh, failed writes), the
exported weights and config that stage2.py, generate.py and the API read, and the loss history.

What a save writes, in order: the history up to this epoch, config.json, the checkpoint, the exported weights and
config. A kill at any point loses at most the epochs since the previous checkpoint: a resumed run reads the history
only up to its checkpoint's epoch, and exports again at its next save (or at once if it has nothing left to train).

The per-epoch record of a run is here too: loss rows in stageN_history.json, their curves in stageN_losses.png (for
readers without TensorBoard), and the TensorBoard scalars (the chapter's write_log), which the caption encoder's
training writes as well.
"""

import contextlib
import json
import re

from stackgan import io, layout
from stackgan.checkpointing import TrainedFolder
from stackgan.config import resume_changes

MAX_TO_KEEP = 3


def stage_folder(config, runtime):
    """The TrainedFolder of a stage's run: its checkpoints, exports and the history that --fresh sets aside with
    them. Every worker saves (the save is collective); only the chief writes into the results folder."""
    directory = layout.checkpoint_dir(config.results_dir, config.stage)
    task = None if runtime.chief else runtime.strategy.cluster_resolver.task_id
    return TrainedFolder(
        config.results_dir,
        directory,
        f"a Stage-{'I' * config.stage} generator",
        layout.generator_files(config.results_dir, config.stage),
        MAX_TO_KEEP,
        chief=runtime.chief,
        write_dir=directory if runtime.chief else f"{directory}_worker{task}_tmp",
        extras=(
            layout.history_path(config.results_dir, config.stage),
            layout.loss_plot_path(config.results_dir, config.stage),
        ),
    )


class RunCheckpoint:
    """The checkpoints of one stage's run in its results folder (a TrainedFolder), its exports and history."""

    def __init__(self, trainer, config, folder):
        self.trainer, self.config, self.folder, self.chief = trainer, config, folder, folder.chief
        self.directory = folder.directory
        self.checkpoint = trainer.checkpoint()

    @property
    def saved_epoch(self):
        return self.folder.saved_epoch

    def restore(self):
        """Restore the newest readable checkpoint unless --fresh; returns the history of the epochs it holds."""
        latest = self.folder.restore(self.checkpoint, self.config, self.config.fresh, resume_changes)
        if latest:
            self.folder.saved_epoch = self.epoch
            print(
                f"Resumed from {latest} at epoch {self.epoch} "
                f"(optimizer step {int(self.trainer.g_opt.iterations.numpy())})"
            )
        return read_history(self.config.results_dir, self.config.stage, self.epoch)

    @property
    def epoch(self):
        return int(self.trainer.epoch.numpy())

    def save(self, rows):
        """The loss history up to this epoch, the checkpoint with the run's settings (every worker: the save is
        collective), then on the chief the exported weights and config."""
        if self.chief:
            write_history(self.config.results_dir, self.config.stage, rows)
        self.folder.save(self.epoch, self.config.to_dict())
        if self.chief:
            self.export()

    def export_if_behind(self):
        """Export again if the exported weights are older than the newest checkpoint (a run killed between the two)."""
        exported = self.folder.exported_epochs()
        if self.chief and self.epoch and exported != self.epoch:
            print(f"Exporting the weights of epoch {self.epoch} (the exported ones are of epoch {exported})")
            self.export()

    def export(self):
        """results/stageN_{gen,dis}.weights.h5 + stageN_config.json."""
        config, trainer = self.config, self.trainer
        with trainer.sampling_generator() as gen:
            io.save_weights(gen, layout.weights_path(config.results_dir, config.stage, "gen"))
        io.save_weights(trainer.dis, layout.weights_path(config.results_dir, config.stage, "dis"))
        exported = dict(
            config.network(),
            stage=config.stage,
            epochs_trained=self.epoch,
            augment=config.augment,
            batch_size=config.batch_size,
            kl_coef=config.kl_coef,
            g_ema=config.g_ema,
            # the options beyond the chapter: text_loss and matching also say how to rebuild the exported D
            text_loss=config.text_loss,
            matching=config.matching,
            hard_wrong=config.hard_wrong,
            mix_conditions=config.mix_conditions,
            stage1_l1=config.stage1_l1,
            dataset=config.dataset,
            data_dir=config.data_dir,
        )
        io.write_json(layout.config_path(config.results_dir, config.stage), exported)

    def stop_message(self, where):
        return self.folder.stop_message(where)

    def close(self):
        self.folder.close()


# ---------------------------------------------------------------------------
# The per-epoch record: TensorBoard scalars and the loss history
# ---------------------------------------------------------------------------
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
