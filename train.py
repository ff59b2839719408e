"""The one training loop behind stage1.py and stage2.py (the step itself is in trainer.py).

run() builds a RunContext (setup), then calls, per epoch: train_epoch, check_finite, log_scalars,
write_sample_grid, evaluate_samples and save_checkpoint.
"""

import argparse
import dataclasses
import math
import os
import shutil
import sys
import time

import cli
import files
import settings
from cli import UserError, positive_int
from trainer import StackGANTrainer, is_chief, learning_rate_at, select_strategy, set_precision


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def make_parser(stage, demo=False):
    """The stage's flags; their defaults are the chapter's, or with demo=True the --demo preset's."""
    size = settings.IMAGE_SIZE[stage]
    p = cli.ArgumentParser(
        prog=f"stage{stage}.py",
        formatter_class=cli.DefaultsHelpFormatter,
        description=f"Train StackGAN Stage-{'I' * stage} ({size}x{size})"
        + ("" if stage == 1 else " on the frozen Stage-I generator from --results-dir")
        + ". Resumes from the latest checkpoint in --results-dir unless --fresh.",
    )
    p.add_argument("--data-dir", help="dataset root (CUB layout)")
    p.add_argument("--results-dir", help="weights, config, checkpoints, sample grids")
    p.add_argument("--log-dir", help=f"TensorBoard logs go to LOG_DIR/stage{stage}")
    p.add_argument("--epochs", type=positive_int, help="total epochs to train (a resumed run continues up to it)")
    p.add_argument("--batch-size", type=positive_int, help="global batch size")
    p.add_argument("--g-lr", type=float, help="generator Adam learning rate")
    p.add_argument("--d-lr", type=float, help="discriminator Adam learning rate")
    p.add_argument("--beta1", type=float, help="Adam beta_1 (beta_2 is 0.999)")
    p.add_argument("--lr-decay-epochs", type=positive_int, help="halve both learning rates every N epochs")
    p.add_argument("--kl-coef", type=float, help="weight of the KL term in the generator loss")
    p.add_argument(
        "--g-ema",
        type=float,
        help="sample and export an exponential moving average of the generator's weights with this "
        "momentum per step, e.g. 0.995 (not in the chapter; off unless given)",
    )
    p.add_argument("--gf-dim", type=positive_int, help="generator width" + ("" if stage == 1 else " (Stage-II)"))
    p.add_argument("--df-dim", type=positive_int, help="discriminator width")
    if stage == 1:
        p.add_argument("--z-dim", type=positive_int, help="noise dimension")
        p.add_argument("--condition-dim", type=positive_int, help="conditioning vector dimension")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="plain resize of the crops (the chapter) instead of random crop + flip (the original StackGAN)",
    )
    p.add_argument("--seed", type=int, help="seed for weights, noise and data order")
    p.add_argument("--sample-every", type=positive_int, help="write a sample grid every N epochs")
    p.add_argument("--checkpoint-every", type=positive_int, help="checkpoint and export weights every N epochs")
    p.add_argument("--steps-per-epoch", type=positive_int, help="cap on steps per epoch, for quick runs (default: all)")
    p.add_argument(
        "--steps-per-call",
        type=positive_int,
        default=1,
        help="training steps per compiled call (Keras' steps_per_execution): fewer round trips to Python",
    )
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start from scratch")
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "off", "bf16", "fp16"],
        default="auto",
        help="compute in bfloat16/float16 (weights, outputs and losses stay float32); auto: bf16 where it is "
        "native (GPUs of compute capability 8.0+, CPUs with AVX512-BF16/AMX), fp16 on older GPUs, else float32",
    )
    p.add_argument(
        "--xla",
        choices=["auto", "on", "off"],
        default="auto",
        help="compile the step with XLA; auto: on, except on a CPU for bf16 or several replicas",
    )
    p.add_argument(
        "--distribute",
        choices=["none", "mirrored", "multiworker"],
        default="none",
        help="tf.distribute strategy: all local GPUs, or several machines configured by TF_CONFIG",
    )
    preset = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in settings.DEMO_PRESETS[stage].items())
    p.add_argument(
        "--demo",
        action="store_true",
        help="synthetic birds (written if absent) and small networks that learn in minutes on a CPU; "
        f"sets {preset}; explicit flags still win",
    )
    defaults = dict(settings.TRAIN_DEFAULTS[stage])
    if demo:
        defaults.update(settings.DEMO_PRESETS[stage])
    p.set_defaults(**defaults)
    return p


def parse_args(stage, argv=None):
    """Parse a stage's command line: a first pass finds --demo, whose preset then becomes the defaults."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--demo", action="store_true")
    demo = first.parse_known_args(argv)[0].demo
    return validate(make_parser(stage, demo).parse_args(argv))


def validate(args):
    if args.g_ema is not None and not 0.0 <= args.g_ema < 1.0:
        raise UserError(
            f"--g-ema is the momentum of a moving average, from 0 up to (not including) 1, got {args.g_ema}"
        )
    for key in ("gf_dim", "df_dim"):
        if getattr(args, key) % 2:
            raise UserError(
                f"--{key.replace('_', '-')} must be even (the last block has half its width), got {getattr(args, key)}"
            )
    return args


def write_log(writer, name, value, step):
    """The chapter's write_log, on tf.summary."""
    import tensorflow as tf

    with writer.as_default():
        tf.summary.scalar(name, value, step=step)


# ---------------------------------------------------------------------------
# Setting up a run
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class RunContext:
    """What the epoch loop and its per-epoch steps share."""

    args: argparse.Namespace
    stage: int
    config: dict
    trainer: StackGANTrainer
    strategy: object
    chief: bool
    stage1_gen: object
    test_split: object
    batches: object  # one iterator for the whole run, `steps` batches per epoch
    steps: int  # per epoch
    manager: object  # tf.train.CheckpointManager
    writer: object  # tf.summary writer (a no-op one off the chief)
    sample_embeddings: object
    sample_z: object
    synthetic: bool
    history: list
    started: float = dataclasses.field(default_factory=time.time)

    @property
    def ckpt_dir(self):
        return settings.checkpoint_dir(self.args.results_dir, self.stage)


def network_config(args, stage, strategy):
    """(network config, frozen Stage-I generator or None) for this stage."""
    import sampling

    if stage == 1:
        config = {k: getattr(args, k) for k in ("gf_dim", "df_dim", "z_dim", "condition_dim")}
        return dict(config, embedding_dim=settings.EMBEDDING_DIM), None
    if args.demo and not os.path.exists(settings.config_path(args.results_dir, 1)):
        raise UserError(
            f"{settings.config_path(args.results_dir, 1)} not found: the Stage-II demo continues "
            "from the Stage-I demo; run `python stage1.py --demo` first"
        )
    with strategy.scope():
        (stage1_gen,), stage1_config = sampling.load_generators(args.results_dir, 1, "stage2.py")
    stage1_gen.trainable = False
    return dict(stage1_config, gf_dim=args.gf_dim, df_dim=args.df_dim), stage1_gen


def load_training_data(args, stage):
    import data
    import synthetic

    if args.demo and synthetic.ensure_synthetic(args.data_dir):
        print(f"Wrote synthetic birds to {args.data_dir}")
    size = settings.IMAGE_SIZE[stage]
    train_split = data.load_split(args.data_dir, "train", settings.stored_size(size, not args.no_augment))
    test_split = data.load_split(args.data_dir, "test", size)
    if len(train_split.images) < args.batch_size:
        raise UserError(
            f"--batch-size {args.batch_size} is larger than the {len(train_split.images)} "
            f"training images in {args.data_dir}; pass a smaller --batch-size"
        )
    return train_split, test_split


def check_resume_config(ckpt_dir, config, g_ema):
    """A checkpoint of other widths, or with/without the --g-ema average, cannot be restored: say so
    instead of failing deep inside TF."""
    import json

    path = os.path.join(ckpt_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    diffs = [f"{k}={saved.get(k)} (now {config[k]})" for k in settings.NETWORK_KEYS if saved.get(k) != config[k]]
    if bool(saved.get("g_ema")) != bool(g_ema):
        diffs.append(f"--g-ema {saved.get('g_ema')} (now {g_ema})")
    if diffs:
        raise UserError(
            f"the checkpoint in {ckpt_dir} was trained with {', '.join(diffs)}; "
            "pass the same settings to resume, or --fresh to start over"
        )


def restore_or_start(trainer, args, stage, config, chief, strategy):
    """A CheckpointManager writing into the stage's checkpoint folder (a scratch one off the chief), after
    restoring the newest checkpoint unless --fresh."""
    import tensorflow as tf

    ckpt_dir = settings.checkpoint_dir(args.results_dir, stage)
    # Every worker saves (the save is collective); only the chief writes into results/.
    write_dir = ckpt_dir if chief else f"{ckpt_dir}_worker{strategy.cluster_resolver.task_id}_tmp"
    ckpt = trainer.checkpoint()
    manager = tf.train.CheckpointManager(ckpt, write_dir, max_to_keep=3)
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest and not args.fresh:
        check_resume_config(ckpt_dir, config, args.g_ema)
        try:
            ckpt.restore(latest).assert_existing_objects_matched()
        except (ValueError, AssertionError, tf.errors.OpError) as err:
            tf.get_logger().setLevel("ERROR")  # not TF's "unrestored values" warnings after the message
            raise UserError(
                f"{latest} does not fit these networks ({type(err).__name__}), e.g. one written before the "
                f"up-sampling blocks became UpSampleConv2D; pass --fresh to start over (exported weights in "
                f"{args.results_dir} still load in generate.py and stage2.py)"
            ) from None
        print(
            f"Resumed from {latest} at epoch {int(trainer.epoch.numpy())} "
            f"(optimizer step {int(trainer.g_opt.iterations.numpy())})"
        )
    elif latest:
        print(f"--fresh: ignoring checkpoints in {ckpt_dir}")
    if chief:
        files.write_json(os.path.join(ckpt_dir, "config.json"), dict(config, g_ema=args.g_ema))
    return manager


def setup(args, stage):
    """Everything a run needs, from the parsed command line."""
    import hardware

    hardware.import_tensorflow()  # before anything else imports it: a quiet start-up
    strategy = select_strategy(args.distribute)  # MultiWorker must exist before other TF work
    import numpy as np
    import tensorflow as tf

    import pipeline
    import synthetic

    gpus = hardware.visible_gpus()
    cpu = hardware.cpu_info()
    isa_cap = hardware.onednn_max_isa_env()
    precision, reason = hardware.choose_precision(args.mixed_precision, gpus, cpu["flags"], isa_cap)
    set_precision(precision)
    xla = hardware.choose_xla(args.xla, gpus, precision, strategy.num_replicas_in_sync)
    chief = is_chief(strategy)
    if chief:
        print(
            hardware.startup_line(
                hardware.device_description(gpus, cpu, onednn_max_isa=isa_cap),
                precision,
                reason,
                xla,
                args.batch_size,
                strategy.num_replicas_in_sync,
            ),
            flush=True,
        )
        for note in (
            hardware.warn_slow_precision(precision, gpus, cpu["flags"], isa_cap),
            hardware.cpu_training_warning(gpus, args.gf_dim, args.df_dim),
        ):
            if note:
                print(f"warning: {note}", file=sys.stderr, flush=True)
    os.makedirs(args.results_dir, exist_ok=True)

    config, stage1_gen = network_config(args, stage, strategy)
    train_split, test_split = load_training_data(args, stage)
    if train_split.embeddings.shape[-1] != config["embedding_dim"]:
        raise UserError(
            f"embeddings in {args.data_dir} are {train_split.embeddings.shape[-1]}-d but the "
            f"Stage-I generator expects {config['embedding_dim']}-d; retrain Stage-I on this data"
        )
    size, augment = settings.IMAGE_SIZE[stage], not args.no_augment
    # The training images and embeddings, once per machine on its first device (outside the strategy: no
    # copy to broadcast between workers); the replicas gather their batches from it.
    source = pipeline.DeviceSplit(train_split, size, augment)
    trainer = StackGANTrainer(
        stage,
        config,
        g_lr=args.g_lr,
        d_lr=args.d_lr,
        beta1=args.beta1,
        kl_coef=args.kl_coef,
        global_batch_size=args.batch_size,
        mixed_precision=precision,
        xla=xla,
        strategy=strategy,
        stage1_gen=stage1_gen,
        seed=args.seed,
        g_ema=args.g_ema,
        source=source,
    )
    manager = restore_or_start(trainer, args, stage, config, chief, strategy)

    dataset = pipeline.make_plan_dataset(
        train_split,
        args.batch_size,
        size,
        augment=augment,
        seed=args.seed,
        first_epoch=int(trainer.epoch.numpy()),  # a resumed run continues the sequence of epochs
    )
    steps = len(dataset)
    if args.steps_per_epoch:
        steps = min(steps, args.steps_per_epoch)
        dataset = dataset.take(steps)
    options = tf.data.Options()  # plans come from a generator: shard by element, not by file
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # One iterator for the whole run: a fresh iterator of a distributed dataset costs about 3 s per epoch.
    batches = iter(strategy.experimental_distribute_dataset(dataset.repeat().with_options(options)))

    # Fixed test embeddings and noise, spread over the (class-sorted) test split: the grids of successive
    # epochs are comparable and show every class.
    n_samples = min(64, len(test_split.embeddings))
    rows = np.linspace(0, len(test_split.embeddings) - 1, n_samples).round().astype(int)
    sample_z = np.random.default_rng(args.seed).standard_normal((n_samples, config["z_dim"])).astype("float32")
    log_dir = settings.stage_log_dir(args.log_dir, stage)
    writer = tf.summary.create_file_writer(log_dir) if chief else tf.summary.create_noop_writer()
    return RunContext(
        args=args,
        stage=stage,
        config=config,
        trainer=trainer,
        strategy=strategy,
        chief=chief,
        stage1_gen=stage1_gen,
        test_split=test_split,
        batches=batches,
        steps=steps,
        manager=manager,
        writer=writer,
        sample_embeddings=np.asarray(test_split.embeddings[rows, 0]),
        sample_z=sample_z,
        synthetic=synthetic.is_synthetic(args.data_dir),
        history=read_history(args.results_dir, stage, int(trainer.epoch.numpy())),
    )


# ---------------------------------------------------------------------------
# The epoch loop and its per-epoch steps
# ---------------------------------------------------------------------------
def train_epoch(ctx, epoch):
    """One pass over the training set; returns the mean of each loss."""
    from tqdm import tqdm

    args = ctx.args
    ctx.trainer.set_learning_rates(
        learning_rate_at(args.g_lr, epoch, args.lr_decay_epochs),
        learning_rate_at(args.d_lr, epoch, args.lr_decay_epochs),
    )
    bar = tqdm(
        total=ctx.steps,
        desc=f"stage{ctx.stage} epoch {epoch + 1}/{args.epochs}",
        leave=False,
        file=sys.stdout,
        dynamic_ncols=True,
        mininterval=1.0,
        disable=not ctx.chief,
    )
    done = 0
    while done < ctx.steps:
        count = min(args.steps_per_call, ctx.steps - done)
        ctx.trainer.train_steps(ctx.batches, count)
        done += count
        bar.update(count)
    bar.close()
    return ctx.trainer.pop_mean_losses()


def check_finite(ctx, means, epoch):
    """Stop before a diverged epoch is checkpointed: the last good checkpoint stays the newest."""
    bad = {k: v for k, v in means.items() if not math.isfinite(v)}
    if bad:
        raise UserError(
            f"training diverged in epoch {epoch + 1} ({', '.join(f'{k}={v}' for k, v in bad.items())}); "
            f"the last good checkpoint in {ctx.ckpt_dir} is kept: lower --g-lr/--d-lr and rerun"
        )


def log_scalars(ctx, means, step):
    args = ctx.args
    for name, value in means.items():
        write_log(ctx.writer, f"loss/{name}" if "loss" in name else f"D/{name}", value, step)
    write_log(ctx.writer, "lr/generator", learning_rate_at(args.g_lr, step - 1, args.lr_decay_epochs), step)
    write_log(ctx.writer, "lr/discriminator", learning_rate_at(args.d_lr, step - 1, args.lr_decay_epochs), step)


def write_sample_grid(ctx, step):
    """The fixed test embeddings and noise through the generator(s): a PNG grid and a TensorBoard image.
    Returns the per-stage images."""
    import tensorflow as tf

    import sampling

    with ctx.trainer.sampling_generator() as gen:
        generators = ([ctx.stage1_gen] if ctx.stage1_gen is not None else []) + [gen]
        images = sampling.sample_images(generators, ctx.sample_embeddings, ctx.sample_z)
    grid = files.stage_grid(images)
    files.save_png(grid, os.path.join(settings.samples_dir(ctx.args.results_dir, ctx.stage), f"epoch_{step:04d}.png"))
    with ctx.writer.as_default():
        tf.summary.image("samples", grid[None], step=step)
    return images


def evaluate_samples(ctx, images, step):
    """Attribute accuracy of the grid's images, on synthetic birds (None on other data)."""
    if not ctx.synthetic:
        return None
    import synthetic

    accuracy = synthetic.attribute_accuracy(images[-1], ctx.sample_embeddings)
    write_log(ctx.writer, "eval/attribute_accuracy", accuracy, step)
    return accuracy


def save_checkpoint(ctx, step):
    """A checkpoint (every worker: the save is collective), then on the chief the exported weights, config,
    loss history and loss plot."""
    ctx.manager.save(checkpoint_number=step)
    if ctx.chief:
        export_weights(ctx)
        write_history(ctx)


def export_weights(ctx):
    """results/stageN_{gen,dis}.weights.h5 + stageN_config.json: what stage2.py, generate.py, evaluate.py read."""
    args, stage, trainer = ctx.args, ctx.stage, ctx.trainer
    with trainer.sampling_generator() as gen:
        files.save_weights(gen, settings.weights_path(args.results_dir, stage, "gen"))
    files.save_weights(trainer.dis, settings.weights_path(args.results_dir, stage, "dis"))
    exported = dict(
        ctx.config,
        stage=stage,
        epochs_trained=int(trainer.epoch.numpy()),
        augment=not args.no_augment,
        batch_size=args.batch_size,
        kl_coef=args.kl_coef,
        g_ema=args.g_ema,
        data_dir=args.data_dir,
    )
    files.write_json(settings.config_path(args.results_dir, stage), exported)


def read_history(results_dir, stage, epochs_done):
    """The per-epoch losses of earlier runs, up to the epoch a resumed run starts from."""
    import json

    try:
        with open(settings.history_path(results_dir, stage)) as f:
            return [row for row in json.load(f) if row["epoch"] <= epochs_done]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_history(ctx):
    """stageN_history.json and a loss-curve PNG (stageN_losses.png) for readers without TensorBoard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_dir = ctx.args.results_dir
    files.write_json(settings.history_path(results_dir, ctx.stage), ctx.history)
    epochs = [row["epoch"] for row in ctx.history]
    fig, (losses, probabilities) = plt.subplots(1, 2, figsize=(10, 3.5))
    for key in ("d_loss", "g_loss_adv", "kl_loss"):
        losses.plot(epochs, [row[key] for row in ctx.history], label=key)
    for key in ("d_real", "d_wrong", "d_fake"):
        probabilities.plot(epochs, [row[key] for row in ctx.history], label=key)
    losses.set(xlabel="epoch", title=f"Stage-{'I' * ctx.stage} losses")
    probabilities.set(xlabel="epoch", ylim=(0, 1), title="mean D(x) on real / wrong / fake")
    for ax in (losses, probabilities):
        ax.legend()
    fig.tight_layout()
    with files.atomic_path(settings.loss_plot_path(results_dir, ctx.stage), ".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def run(args, stage):
    """Train one stage as configured by the parsed command line `args`; returns the RunContext."""
    validate(args)
    ctx = setup(args, stage)
    trainer = ctx.trainer
    start_epoch = int(trainer.epoch.numpy())
    if start_epoch >= args.epochs:
        print(f"Already trained {start_epoch} epochs (--epochs {args.epochs}); pass a larger --epochs to go on")
    for epoch in range(start_epoch, args.epochs):
        means = train_epoch(ctx, epoch)
        check_finite(ctx, means, epoch)
        step = epoch + 1
        trainer.epoch.assign(step)
        log_scalars(ctx, means, step)
        line = (
            f"stage{stage} epoch {step}/{args.epochs}  d_loss {means['d_loss']:.4f}  g_loss {means['g_loss']:.4f}  "
            f"kl {means['kl_loss']:.4f}  D(real) {means['d_real']:.2f}  D(fake) {means['d_fake']:.2f}  "
            f"{time.time() - ctx.started:.0f}s"
        )
        last = step == args.epochs
        row = dict(means, epoch=step)
        if ctx.chief and (step % args.sample_every == 0 or last):
            accuracy = evaluate_samples(ctx, write_sample_grid(ctx, step), step)
            if accuracy is not None:
                row["attribute_accuracy"] = accuracy
                line += f"  attribute acc {accuracy:.2f}"
        ctx.history.append(row)
        ctx.writer.flush()
        if ctx.chief:
            print(line, flush=True)
        if step % args.checkpoint_every == 0 or last:
            save_checkpoint(ctx, step)
    if not ctx.chief:
        shutil.rmtree(ctx.manager.directory, ignore_errors=True)
    return ctx


def demo_report(ctx):
    """After --demo on synthetic birds: the attribute accuracy of generated test images, and where to look.

    Every caption of every test bird, one noise draw each (1,600 images for the synthetic set), so that
    the printed accuracy varies little from one sampling to the next."""
    import numpy as np

    import sampling
    import synthetic

    args, split = ctx.args, ctx.test_split
    print(
        f"Sample grids: {settings.samples_dir(args.results_dir, ctx.stage)}/epoch_*.png   "
        f"loss curves: {settings.loss_plot_path(args.results_dir, ctx.stage)}   "
        f"TensorBoard: tensorboard --logdir={args.log_dir}"
    )
    if not ctx.synthetic:
        return None
    generators, _ = sampling.load_generators(args.results_dir, ctx.stage)
    embeddings = np.asarray(split.embeddings).reshape(-1, split.embeddings.shape[-1])
    z = np.random.default_rng(args.seed + 1).standard_normal((len(embeddings), ctx.config["z_dim"]))
    images = sampling.sample_images(generators, embeddings, z)
    accuracy, mistakes = synthetic.attribute_report(images[-1], embeddings)
    size = images[-1].shape[1]
    print(
        f"Attribute accuracy of {len(embeddings)} generated {size}x{size} test images "
        f"({len(split.embeddings)} birds x {split.embeddings.shape[1]} captions): "
        f"{accuracy:.3f} (chance {1.0 / len(synthetic.PALETTE):.3f}); most frequent mistakes: "
        f"{synthetic.describe_mistakes(mistakes)}"
    )
    return accuracy


def main_for_stage(stage, argv=None):
    args = parse_args(stage, argv)
    ctx = run(args, stage)
    if args.demo:
        demo_report(ctx)
        if stage == 1 and ctx.synthetic and ctx.chief:
            import text_encoder

            print("Training the caption encoder of the demo (python text_encoder.py train --demo)", flush=True)
            text_encoder.train_demo_encoder(args.data_dir, args.results_dir, args.log_dir)
    return 0
