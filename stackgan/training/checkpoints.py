"""Everything a run keeps on disk, in one place: the tf.train checkpoints (G, D, both optimizers, epoch, noise) with
the run's config beside them (stackgan.checkpointing.CheckpointFolder: recovery, --fresh, failed writes), the
exported weights and config that stage2.py, generate.py and the API read, and the loss history.

What a save writes, in order: config.json, the history up to this epoch, the checkpoint, the exported weights and
config. A kill at any point loses at most the epochs since the previous checkpoint: a resumed run reads the history
only up to its checkpoint's epoch, and exports again at its next save (or at once if it has nothing left to train).
"""

import json
import os

from stackgan import io, layout
from stackgan.checkpointing import CheckpointFolder
from stackgan.cli import UserError
from stackgan.config import resume_changes
from stackgan.training import history

MAX_TO_KEEP = 3


class RunCheckpoint:
    """The checkpoints of one stage's run in its results folder."""

    def __init__(self, trainer, config, runtime):
        self.trainer, self.config, self.chief = trainer, config, runtime.chief
        self.directory = layout.checkpoint_dir(config.results_dir, config.stage)
        # Every worker saves (the save is collective); only the chief writes into the results folder.
        task = None if self.chief else runtime.strategy.cluster_resolver.task_id
        self.folder = CheckpointFolder(
            self.directory,
            MAX_TO_KEEP,
            chief=self.chief,
            write_dir=self.directory if self.chief else f"{self.directory}_worker{task}_tmp",
            extras=(
                layout.history_path(config.results_dir, config.stage),
                layout.loss_plot_path(config.results_dir, config.stage),
            ),
        )
        self.checkpoint = trainer.checkpoint()
        self.saved_epoch = 0  # the epoch of the newest checkpoint: where a stopped run resumes

    @property
    def config_path(self):
        return self.folder.config_path

    def restore(self):
        """Restore the newest readable checkpoint unless --fresh; returns the history of the epochs it holds."""
        import tensorflow as tf

        latest, saved = self.folder.open(self.config.fresh)
        if latest is None and not self.config.fresh:
            self._refuse_to_overwrite_an_export()
        elif latest:
            self._check_config(saved)
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as err:
                tf.get_logger().setLevel("ERROR")  # not TF's "unrestored values" warnings after the message
                raise UserError(
                    f"{latest} does not fit these networks ({type(err).__name__}), e.g. one written before the "
                    f"up-sampling blocks became UpSampleConv2D; pass --fresh to start over (exported weights in "
                    f"{self.config.results_dir} still load in generate.py and stage2.py)"
                ) from None
            self.saved_epoch = self.epoch
            print(
                f"Resumed from {latest} at epoch {self.epoch} "
                f"(optimizer step {int(self.trainer.g_opt.iterations.numpy())})"
            )
        self.folder.track(self.checkpoint)
        return history.read_history(self.config.results_dir, self.config.stage, self.epoch)

    @property
    def epoch(self):
        return int(self.trainer.epoch.numpy())

    def _check_config(self, saved):
        """A checkpoint of other settings is refused in one line; a changed learning-rate schedule is announced."""
        if saved is None:
            print(f"note: {self.config_path} is missing; resuming without comparing settings")
            return
        refused, announced = resume_changes(saved, self.config)
        if refused:
            raise UserError(
                f"the checkpoint in {self.directory} was trained with {', '.join(refused)}; "
                "pass the same settings to resume, or --fresh to start over"
            )
        if announced:
            print(f"Resuming with a new learning-rate schedule: {', '.join(announced)}")

    def _refuse_to_overwrite_an_export(self):
        """No checkpoint to resume, but exported weights of an earlier run: training from scratch would replace
        them, so it takes --fresh."""
        path = layout.config_path(self.config.results_dir, self.config.stage)
        if not (self.chief and os.path.exists(layout.weights_path(self.config.results_dir, self.config.stage, "gen"))):
            return
        try:
            with open(path) as f:
                trained = f"trained {int(json.load(f)['epochs_trained'])} epochs"
        except (OSError, ValueError, KeyError, TypeError):
            trained = "of an earlier run"
        raise UserError(
            f"{self.config.results_dir} holds a Stage-{'I' * self.config.stage} generator {trained} but "
            f"{self.directory} has no checkpoint to resume it from; pass --fresh to train a new one in its place, "
            f"or give another --results-dir"
        )

    def save(self, rows):
        """config.json and the loss history up to this epoch, the checkpoint (every worker: the save is collective),
        then on the chief the exported weights and config."""
        self.folder.write_config(self.config.to_dict())
        if self.chief:
            history.write_history(self.config.results_dir, self.config.stage, rows)
        self.folder.save(self.epoch)
        self.saved_epoch = self.epoch
        if self.chief:
            self.export()

    def export_if_behind(self):
        """Export again if the exported weights are older than the newest checkpoint (a run killed between the two)."""
        path = layout.config_path(self.config.results_dir, self.config.stage)
        try:
            with open(path) as f:
                exported = int(json.load(f)["epochs_trained"])
        except (OSError, ValueError, KeyError, TypeError):
            exported = None
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

    def close(self):
        self.folder.close()
