"""Everything a stage's run keeps on disk, in one place: the tf.train checkpoints (G, D, both optimizers, epoch,
noise) with the run's config beside them (stackgan.checkpointing.TrainedFolder: recovery, --fresh, failed writes), the
exported weights and config that stage2.py, generate.py and the API read, and the loss history.

What a save writes, in order: the history up to this epoch, config.json, the checkpoint, the exported weights and
config. A kill at any point loses at most the epochs since the previous checkpoint: a resumed run reads the history
only up to its checkpoint's epoch, and exports again at its next save (or at once if it has nothing left to train).
"""

from stackgan import io, layout
from stackgan.checkpointing import TrainedFolder
from stackgan.config import resume_changes
from stackgan.training import history

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
        return history.read_history(self.config.results_dir, self.config.stage, self.epoch)

    @property
    def epoch(self):
        return int(self.trainer.epoch.numpy())

    def save(self, rows):
        """The loss history up to this epoch, the checkpoint with the run's settings (every worker: the save is
        collective), then on the chief the exported weights and config."""
        if self.chief:
            history.write_history(self.config.results_dir, self.config.stage, rows)
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
            dataset=config.dataset,
            data_dir=config.data_dir,
        )
        io.write_json(layout.config_path(config.results_dir, config.stage), exported)

    def stop_message(self, where):
        return self.folder.stop_message(where)

    def close(self):
        self.folder.close()
