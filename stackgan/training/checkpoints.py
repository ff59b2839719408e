"""Everything a run keeps on disk, in one place: the tf.train checkpoints (G, D, both optimizers, epoch, noise),
the run's config beside them, the exported weights and config that stage2.py, generate.py and the API read, and
the loss history."""

import json
import os
import shutil

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import resume_changes
from stackgan.training import history

MAX_TO_KEEP = 3


class RunCheckpoint:
    """The checkpoints of one stage's run in its results folder."""

    def __init__(self, trainer, config, runtime):
        import tensorflow as tf

        self.trainer, self.config, self.chief = trainer, config, runtime.chief
        self.directory = layout.checkpoint_dir(config.results_dir, config.stage)
        # Every worker saves (the save is collective); only the chief writes into the results folder.
        task = None if self.chief else runtime.strategy.cluster_resolver.task_id
        self.write_dir = self.directory if self.chief else f"{self.directory}_worker{task}_tmp"
        self.checkpoint = trainer.checkpoint()
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir, max_to_keep=MAX_TO_KEEP)

    @property
    def config_path(self):
        return os.path.join(self.directory, "config.json")

    def restore(self):
        """Restore the newest checkpoint unless --fresh; returns the history of the epochs it holds."""
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(self.directory)
        if latest and self.config.fresh:
            print(f"--fresh: ignoring checkpoints in {self.directory}")
        elif latest:
            self._check_config()
            try:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as err:
                tf.get_logger().setLevel("ERROR")  # not TF's "unrestored values" warnings after the message
                raise UserError(
                    f"{latest} does not fit these networks ({type(err).__name__}), e.g. one written before the "
                    f"up-sampling blocks became UpSampleConv2D; pass --fresh to start over (exported weights in "
                    f"{self.config.results_dir} still load in generate.py and stage2.py)"
                ) from None
            print(
                f"Resumed from {latest} at epoch {self.epoch} "
                f"(optimizer step {int(self.trainer.g_opt.iterations.numpy())})"
            )
        if self.chief:
            io.write_json(self.config_path, self.config.to_dict())
        return history.read_history(self.config.results_dir, self.config.stage, self.epoch)

    @property
    def epoch(self):
        return int(self.trainer.epoch.numpy())

    def _check_config(self):
        """A checkpoint of other settings is refused in one line; a changed learning-rate schedule is announced."""
        if not os.path.exists(self.config_path):
            return
        with open(self.config_path) as f:
            saved = json.load(f)
        refused, announced = resume_changes(saved, self.config)
        if refused:
            raise UserError(
                f"the checkpoint in {self.directory} was trained with {', '.join(refused)}; "
                "pass the same settings to resume, or --fresh to start over"
            )
        if announced:
            print(f"Resuming with a new learning-rate schedule: {', '.join(announced)}")

    def save(self, rows):
        """A checkpoint (every worker: the save is collective), then on the chief the exported weights and config
        and the loss history up to this epoch."""
        self.manager.save(checkpoint_number=self.epoch)
        if self.chief:
            self.export()
            history.write_history(self.config.results_dir, self.config.stage, rows)

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
            data_dir=config.data_dir,
        )
        io.write_json(layout.config_path(config.results_dir, config.stage), exported)

    def close(self):
        """Off the chief, remove the scratch folder its collective saves wrote into."""
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)
