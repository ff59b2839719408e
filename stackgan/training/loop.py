"""The one training loop behind stage1.py and stage2.py: run(config) sets up a Run, then for every epoch trains it,
checks the losses, logs them, writes a sample grid and saves a checkpoint.

The step itself is in step.py, the input in input.py, what is kept on disk in checkpoints.py.
"""

import contextlib
import dataclasses
import math
import os
import sys
import time

from stackgan import cli, io, layout
from stackgan.cli import UserError
from stackgan.training.history import log_epoch, log_writer, write_log, writing_to

SAMPLE_GRID_SIZE = 64


@dataclasses.dataclass
class Run:
    """What the epoch loop and its per-epoch steps share."""

    config: object  # StageConfig
    runtime: object  # Runtime
    trainer: object  # StackGANTrainer
    checkpoints: object  # RunCheckpoint
    batches: object  # one iterator for the whole run
    steps: int  # per epoch
    writer: object  # tf.summary writer (a no-op one off the chief)
    test_split: object
    sample_embeddings: object
    sample_z: object
    history: list
    eval_attributes: object = None  # the test birds' Attributes, on synthetic birds
    started: float = dataclasses.field(default_factory=time.time)

    @property
    def synthetic(self):
        return layout.is_synthetic(self.config.data_dir)


def run(config, runtime=None):
    """Train one stage as `config` (a StageConfig) says; returns the Run. The networks are built and trained in the
    runtime's precision; the process's dtype policy is as before when it returns. The results folder is locked for
    the run (one run per folder), and Ctrl-C or SIGTERM stops it between step calls, never inside a checkpoint
    write (cli.safe_points)."""
    from stackgan.runtime import Runtime

    runtime = runtime or Runtime.choose(config.mixed_precision, config.xla, config.distribute)
    with holding_results(config, runtime), runtime.policy():
        ctx = setup(config, runtime)
        try:
            with cli.safe_points():
                train_epochs(ctx)
        finally:
            ctx.checkpoints.close()
    return ctx


@contextlib.contextmanager
def holding_results(config, runtime):
    """The results folder's lock, taken by the chief (the other workers write elsewhere), with the temporary files
    of killed runs removed from it."""
    from stackgan import folder_lock

    if not runtime.chief:
        yield
        return
    with folder_lock.hold(config.results_dir):
        for folder in (config.results_dir, layout.samples_dir(config.results_dir, config.stage)):
            io.remove_stale_temps(folder)
        yield


def train_epochs(ctx):
    """The epoch loop: train, check, report and (when due) checkpoint each epoch. Asked to stop, it stops after the
    step call in flight (losing the epoch in flight) or, between epochs, after checkpointing the epoch just done."""
    config = ctx.config
    start = ctx.checkpoints.epoch
    if start >= config.epochs:
        print(f"Already trained {start} epochs (--epochs {config.epochs}); pass a larger --epochs to go on")
        ctx.checkpoints.export_if_behind()
    for epoch in range(start, config.epochs):
        means = train_epoch(ctx, epoch)
        check_finite(ctx, means, epoch)
        ctx.trainer.epoch.assign(epoch + 1)
        report_epoch(ctx, means, epoch + 1)
        due = (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs
        if due or cli.stop_requested():  # a run asked to stop between epochs keeps them all
            ctx.checkpoints.save(ctx.history)
        cli.check_stop(stop_message(ctx, f"after epoch {epoch + 1}"))


def stop_message(ctx, where):
    """Where a stopped run stopped and where it resumes."""
    saved = ctx.checkpoints.saved_epoch
    resume = (
        f"the same command resumes from the checkpoint of epoch {saved} in {ctx.checkpoints.directory}"
        if saved
        else "no checkpoint was written yet"
    )
    return f"stopped {where}; {resume}"


def setup(config, runtime):
    """Everything a run needs: data, networks, where the images go (--input), the start-up and memory lines (or a
    refusal where the run cannot fit), the restored checkpoint, input and logs."""
    import numpy as np

    from stackgan.training import memory
    from stackgan.training.checkpoints import RunCheckpoint
    from stackgan.training.input import TrainingInput
    from stackgan.training.step import StackGANTrainer

    os.makedirs(config.results_dir, exist_ok=True)
    config, stage1_gen = with_stage1_generator(config, runtime)
    train_split, test_split = load_training_data(config)
    trainer = StackGANTrainer(config, runtime, stage1_gen, text_stats=embedding_stats(train_split.embeddings))
    placement, reason, estimate = memory.plan_input(
        config.input, trainer, train_split, runtime.memory, runtime.replicas
    )
    if runtime.chief:
        print(runtime.startup_line(config.batch_size, (placement, reason)), flush=True)
        print(estimate.line(runtime.memory), flush=True)
        for note in runtime.warnings(config.gf_dim, config.df_dim):
            print(f"warning: {note}", file=sys.stderr, flush=True)
    memory.check_fits(estimate, runtime.memory)
    checkpoints = RunCheckpoint(trainer, config, runtime)
    history = checkpoints.restore()
    batches = TrainingInput(
        train_split,
        config.image_size,
        config.batch_size,
        config.augment,
        config.seed,
        first_epoch=checkpoints.epoch,  # a resumed run continues the sequence of epochs
        steps_per_epoch=config.steps_per_epoch,
        placement=placement,
        hard_wrong=config.hard_wrong,
        mix_conditions=config.mix_conditions,
    )
    trainer.source = batches.source
    # Fixed test embeddings and noise, spread over the (class-sorted) test split: the grids of successive
    # epochs are comparable and show every class.
    n_samples = min(SAMPLE_GRID_SIZE, len(test_split.embeddings))
    rows = np.linspace(0, len(test_split.embeddings) - 1, n_samples).round().astype(int)
    log_dir = layout.stage_log_dir(config.log_dir, config.stage)
    eval_attributes = None
    if layout.is_synthetic(config.data_dir):
        from stackgan.metrics.attributes import set_attributes

        try:
            eval_attributes = set_attributes(config.data_dir, test_split.filenames)
        except UserError as err:  # an older synthetic set: it trains, unmeasured
            print(f"note: no attribute numbers: {err}", file=sys.stderr, flush=True)
    return Run(
        eval_attributes=eval_attributes,
        config=config,
        runtime=runtime,
        trainer=trainer,
        checkpoints=checkpoints,
        batches=batches.iterator(trainer.strategy),
        steps=batches.steps,
        writer=log_writer(log_dir, runtime.chief),
        test_split=test_split,
        sample_embeddings=np.asarray(test_split.embeddings[rows, 0]),
        sample_z=np.random.default_rng(config.seed).standard_normal((n_samples, config.z_dim)).astype("float32"),
        history=history,
    )


def embedding_stats(embeddings):
    """(mean (D,), scale): the mean caption embedding of a split and the root mean square per dimension about it."""
    import numpy as np

    e = np.asarray(embeddings, np.float32).reshape(-1, embeddings.shape[-1])
    mean = e.mean(axis=0)
    return mean, float(np.sqrt(np.mean(np.square(e - mean))))


def with_stage1_generator(config, runtime):
    """(config, frozen Stage-I generator): Stage-II takes z_dim, condition_dim and embedding_dim from the Stage-I
    generator in its results folder; Stage-I has none."""
    from stackgan import sampling

    if config.stage == 1:
        return config, None
    if config.demo and not os.path.exists(layout.config_path(config.results_dir, 1)):
        raise UserError(
            f"{layout.config_path(config.results_dir, 1)} not found: the Stage-II demo continues "
            "from the Stage-I demo; run `python stage1.py --demo` first"
        )
    with runtime.strategy.scope():
        (stage1_gen,), stage1 = sampling.load_generators(config.results_dir, 1, "stage2.py")
    stage1_gen.trainable = False
    inherited = {k: stage1[k] for k in ("z_dim", "condition_dim", "embedding_dim") if k in stage1}
    return config.replace(**inherited), stage1_gen


def load_training_data(config):
    """The training split (stored for random crops when augmenting) and the test split."""
    from stackgan.config import stored_size
    from stackgan.datasets import synthetic
    from stackgan.datasets.cache import load_split

    if config.demo and synthetic.ensure_synthetic(config.data_dir):
        print(f"Wrote synthetic birds to {config.data_dir}")
    train_split = load_split(config.data_dir, "train", stored_size(config.image_size, config.augment))
    test_split = load_split(config.data_dir, "test", config.image_size)
    if len(train_split.images) < config.batch_size:
        raise UserError(
            f"--batch-size {config.batch_size} is larger than the {len(train_split.images)} "
            f"training images in {config.data_dir}; pass a smaller --batch-size"
        )
    if train_split.embeddings.shape[-1] != config.embedding_dim:
        raise UserError(
            f"embeddings in {config.data_dir} are {train_split.embeddings.shape[-1]}-d but the "
            f"Stage-I generator expects {config.embedding_dim}-d; retrain Stage-I on this data"
        )
    return train_split, test_split


# ---------------------------------------------------------------------------
# The per-epoch steps
# ---------------------------------------------------------------------------
def train_epoch(ctx, epoch):
    """One pass over the training set; returns the mean of each loss."""
    from tqdm import tqdm

    config = ctx.config
    ctx.trainer.set_learning_rates(*config.learning_rates(epoch))
    bar = tqdm(
        total=ctx.steps,
        desc=f"stage{config.stage} epoch {epoch + 1}/{config.epochs}",
        leave=False,
        file=sys.stdout,
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not ctx.runtime.chief,
    )
    done = 0
    try:
        while done < ctx.steps:
            count = min(config.steps_per_call, ctx.steps - done)
            ctx.trainer.train_steps(ctx.batches, count)
            done += count
            bar.update(count)
            if done < ctx.steps:
                cli.check_stop(stop_message(ctx, f"in epoch {epoch + 1} at step {done}/{ctx.steps}"))
    finally:
        bar.close()
    return ctx.trainer.pop_mean_losses()


def check_finite(ctx, means, epoch):
    """Stop before a diverged epoch is checkpointed: the last good checkpoint stays the newest."""
    bad = {k: v for k, v in means.items() if not math.isfinite(v)}
    if bad:
        raise UserError(
            f"training diverged in epoch {epoch + 1} ({', '.join(f'{k}={v}' for k, v in bad.items())}); "
            f"the last good checkpoint in {ctx.checkpoints.directory} is kept: lower --g-lr/--d-lr and rerun"
        )


def report_epoch(ctx, means, step):
    """TensorBoard scalars, the sample grid (and its attribute accuracy) when due, the history row, one line."""
    config = ctx.config
    log_epoch(ctx.writer, means, config.learning_rates(step - 1), step)
    line = (
        f"stage{config.stage} epoch {step}/{config.epochs}  d_loss {means['d_loss']:.4f}  g_loss {means['g_loss']:.4f}"
        f"  kl {means['kl_loss']:.4f}  D(real) {means['d_real']:.2f}  D(fake) {means['d_fake']:.2f}  "
        f"{time.time() - ctx.started:.0f}s"
    )
    row = dict(means, epoch=step)
    if ctx.runtime.chief and (step % config.sample_every == 0 or step == config.epochs):
        write_sample_grid(ctx, step)
        report = evaluate_samples(ctx, step)
        if report is not None:
            row.update({f"eval_{k}": report[k] for k in EVAL_KEYS})
            line += "  " + "  ".join(f"{k} {_fmt(report[k])}" for k in EVAL_KEYS)
    ctx.history.append(row)
    if ctx.runtime.chief:
        print(line, flush=True)


def write_sample_grid(ctx, step):
    """The fixed test embeddings and noise through the generator(s): a PNG grid and a TensorBoard image.
    Returns the per-stage images."""
    import tensorflow as tf

    from stackgan import sampling

    with ctx.trainer.sampling_generator() as gen:
        generators = ([ctx.trainer.stage1_gen] if ctx.trainer.stage1_gen is not None else []) + [gen]
        images = sampling.sample_images(generators, ctx.sample_embeddings, ctx.sample_z)
    grid = io.stage_grid(images)
    io.save_png(
        grid, os.path.join(layout.samples_dir(ctx.config.results_dir, ctx.config.stage), f"epoch_{step:04d}.png")
    )
    with writing_to(ctx.writer):
        tf.summary.image("samples", grid[None], step=step)
    return images


EVAL_KEYS = ("body", "wing", "both", "both_unseen")  # the attribute numbers logged per sampled epoch


def _fmt(x):
    return "n/a" if x is None else f"{x:.2f}"


def evaluate_samples(ctx, step):
    """On synthetic birds, the attribute_report of one image per test bird (caption i % 10 of bird i, fixed noise)
    through the generator(s), as TensorBoard scalars eval/body, eval/wing, eval/both and eval/both_unseen; None on
    other data."""
    if ctx.eval_attributes is None:
        return None
    import numpy as np

    from stackgan import sampling
    from stackgan.metrics.attributes import attribute_report

    embeddings = ctx.test_split.embeddings
    rows = np.arange(len(embeddings))
    chosen = np.asarray(embeddings[rows, rows % embeddings.shape[1]])
    z = np.random.default_rng([ctx.config.seed, 3]).standard_normal((len(rows), ctx.config.z_dim)).astype("float32")
    with ctx.trainer.sampling_generator() as gen:
        generators = ([ctx.trainer.stage1_gen] if ctx.trainer.stage1_gen is not None else []) + [gen]
        images = sampling.sample_images(generators, chosen, z)
    report = attribute_report(images[-1], ctx.eval_attributes)
    for key in EVAL_KEYS:
        if report[key] is not None:
            write_log(ctx.writer, f"eval/{key}", report[key], step)
    return report
