"""The one training loop behind stage1.py and stage2.py: run(config) sets up a Run, then for every epoch trains it,
checks the losses, logs them, writes a sample grid and saves a checkpoint.

The step itself is in step.py, the input in input.py, what is kept on disk in checkpoints.py.
"""

import dataclasses
import math
import os
import sys
import time

from stackgan import cli, io, layout
from stackgan.cli import UserError
from stackgan.training.records import log_epoch, log_writer, write_log, writing_to

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
    eval_attributes: object = None  # what the test images have (their dataset's attribute metric), on a synthetic set
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

    from stackgan.training.records import stage_folder

    runtime = runtime or Runtime.choose(config.mixed_precision, config.xla, config.distribute)
    folder = stage_folder(config, runtime)
    with folder.held(layout.samples_dir(config.results_dir, config.stage)), runtime.policy():
        ctx = setup(config, runtime, folder)
        try:
            with cli.safe_points():
                train_epochs(ctx)
        finally:
            ctx.checkpoints.close()
    return ctx


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
    return ctx.checkpoints.stop_message(where)


def setup(config, runtime, folder=None):
    """Everything a run needs: data, networks, where the images go (--input), the start-up and memory lines (or a
    refusal where the run cannot fit), the restored checkpoint, input and logs."""
    import numpy as np

    from stackgan.training.records import RunCheckpoint, stage_folder
    from stackgan.training.step import StackGANTrainer

    os.makedirs(config.results_dir, exist_ok=True)
    config, stage1_gen = with_stage1_generator(config, runtime)
    train_split, test_split = load_training_data(config)
    trainer = StackGANTrainer(config, runtime, stage1_gen, train_split)
    placement, reason, estimate = trainer.plan
    if runtime.chief:
        print(f"Training Stage-{'I' * config.stage} on {dataset_title(config)}", flush=True)
        print(runtime.startup_line(config.batch_size, (placement, reason)), flush=True)
        print(estimate.line(runtime.memory), flush=True)
        for note in runtime.warnings(config.gf_dim, config.df_dim):
            print(f"warning: {note}", file=sys.stderr, flush=True)
    checkpoints = RunCheckpoint(trainer, config, folder or stage_folder(config, runtime))
    history = checkpoints.restore()
    # Fixed test embeddings and noise, spread over the (class-sorted) test split: the grids of successive
    # epochs are comparable and show every class.
    n_samples = min(SAMPLE_GRID_SIZE, len(test_split.embeddings))
    rows = np.linspace(0, len(test_split.embeddings) - 1, n_samples).round().astype(int)
    log_dir = layout.stage_log_dir(config.log_dir, config.stage)
    eval_attributes = None
    if layout.is_synthetic(config.data_dir):
        from stackgan.datasets import get_dataset

        try:
            eval_attributes = get_dataset(config.dataset).attributes().split_attributes(config.data_dir, "test")
        except UserError as err:  # an older synthetic set: it trains, unmeasured
            print(f"note: no attribute numbers: {err}", file=sys.stderr, flush=True)
    return Run(
        eval_attributes=eval_attributes,
        config=config,
        runtime=runtime,
        trainer=trainer,
        checkpoints=checkpoints,
        batches=trainer.input.iterator(trainer.strategy, first_epoch=checkpoints.epoch),
        steps=trainer.input.steps,
        writer=log_writer(log_dir, runtime.chief),
        test_split=test_split,
        sample_embeddings=np.asarray(test_split.embeddings[rows, 0]),
        sample_z=np.random.default_rng(config.seed).standard_normal((n_samples, config.z_dim)).astype("float32"),
        history=history,
    )


def dataset_title(config):
    """'CUB-200-2011 birds in data/birds' (synthetic: 'synthetic birds in data/synthetic')."""
    from stackgan.datasets import get_dataset

    dataset = get_dataset(config.dataset)
    title = f"synthetic {dataset.name}" if layout.is_synthetic(config.data_dir) else dataset.title
    return f"{title} in {config.data_dir}"


def with_stage1_generator(config, runtime):
    """(config, frozen Stage-I generator): Stage-II takes z_dim, condition_dim and embedding_dim from the Stage-I
    generator in its results folder; Stage-I has none."""
    from stackgan import api

    if config.stage == 1:
        return config, None
    if config.demo and not os.path.exists(layout.config_path(config.results_dir, 1)):
        dataset_flag = "" if config.dataset == layout.DEFAULT_DATASET else f" --dataset {config.dataset}"
        raise UserError(
            f"{layout.config_path(config.results_dir, 1)} not found: the Stage-II demo continues "
            f"from the Stage-I demo; run `python stage1.py --demo{dataset_flag}` first"
        )
    with runtime.strategy.scope():
        (stage1_gen,), stage1 = api.load_generators(config.results_dir, 1, "stage2.py")
    stage1_gen.trainable = False
    if stage1.get("dataset", config.dataset) != config.dataset:
        raise UserError(
            f"the Stage-I generator in {config.results_dir} was trained on {stage1['dataset']}, not {config.dataset}; "
            f"train Stage-II on the {stage1['dataset']}, or give the --results-dir of a Stage-I trained on {config.dataset}"
        )
    inherited = {k: stage1[k] for k in ("z_dim", "condition_dim", "embedding_dim") if k in stage1}
    return config.replace(**inherited), stage1_gen


def load_training_data(config):
    """The training split (stored for random crops when augmenting) and the test split."""
    from stackgan.config import stored_size
    from stackgan.datasets import get_dataset
    from stackgan.datasets.cache import load_dataset

    dataset = get_dataset(config.dataset)
    if config.demo and dataset.synthetic().ensure_synthetic(config.data_dir):
        print(f"Wrote synthetic {dataset.name} to {config.data_dir}")
    stored = stored_size(config.image_size, config.augment)
    train_split = load_dataset(config.data_dir, "train", stored, config.dataset, config.embedding_dim)
    test_split = load_dataset(config.data_dir, "test", config.image_size, config.dataset, config.embedding_dim)
    if len(train_split.images) < config.batch_size:
        raise UserError(
            f"--batch-size {config.batch_size} is larger than the {len(train_split.images)} "
            f"training images in {config.data_dir}; pass a smaller --batch-size"
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
            row.update({f"eval_{k}": v for k, v in report.items()})
            line += "".join(f"  {k} {'n/a' if v is None else f'{v:.2f}'}" for k, v in report.items())
    ctx.history.append(row)
    if ctx.runtime.chief:
        print(line, flush=True)


def write_sample_grid(ctx, step):
    """The fixed test embeddings and noise through the generator(s): a PNG grid and a TensorBoard image.
    Returns the per-stage images."""
    import tensorflow as tf

    from stackgan import api

    with ctx.trainer.sampling_generator() as gen:
        generators = ([ctx.trainer.stage1_gen] if ctx.trainer.stage1_gen is not None else []) + [gen]
        images = api.sample_images(generators, ctx.sample_embeddings, ctx.sample_z)
    grid = io.stage_grid(images)
    io.save_rgb_img(
        grid, os.path.join(layout.samples_dir(ctx.config.results_dir, ctx.config.stage), f"epoch_{step:04d}.png")
    )
    with writing_to(ctx.writer):
        tf.summary.image("samples", grid[None], step=step)
    return images


def evaluate_samples(ctx, step):
    """On a synthetic set, {key: number} of the EVAL_KEYS of the attribute_report of one image per test image
    (caption i % 10 of image i, fixed noise) through the generator(s), also written as TensorBoard scalars
    (eval/body, eval/wing, eval/both and eval/both_unseen for the birds, eval/colour for the flowers); None on other
    data."""
    if ctx.eval_attributes is None:
        return None
    import numpy as np

    from stackgan import api
    from stackgan.datasets import get_dataset

    metrics = get_dataset(ctx.config.dataset).attributes()
    embeddings = ctx.test_split.embeddings
    rows = np.arange(len(embeddings))
    chosen = np.asarray(embeddings[rows, rows % embeddings.shape[1]])
    z = np.random.default_rng([ctx.config.seed, 3]).standard_normal((len(rows), ctx.config.z_dim)).astype("float32")
    with ctx.trainer.sampling_generator() as gen:
        generators = ([ctx.trainer.stage1_gen] if ctx.trainer.stage1_gen is not None else []) + [gen]
        images = api.sample_images(generators, chosen, z)
    report = metrics.attribute_report(images[-1], ctx.eval_attributes)
    numbers = {key: report[key] for key in metrics.EVAL_KEYS}
    for key, value in numbers.items():
        if value is not None:
            write_log(ctx.writer, f"eval/{key}", value, step)
    return numbers


def main(stage, argv=None):
    """stage1.py / stage2.py: the command line -> one StageConfig -> a training run (and, with --demo, the demo's
    report and caption encoder)."""
    from stackgan import demo
    from stackgan.config import parse_args

    config = parse_args(stage, argv)
    ctx = run(config)
    if config.demo:
        demo.after_training(ctx)
    return 0
