"""The one training loop behind stage1.py and stage2.py.

Per step (the chapter's recipe, made to work in Keras 3): one discriminator update on
BCE(D(real, e), 0.9) + 0.5 * (BCE(D(fake, e), 0) + BCE(D(wrong, e), 0)) and one generator update on
BCE(D(G(e, z), e), 0.9) + kl_coef * KL, both from a single forward pass through the adversarial
model (which runs D once on the real, wrong and fake batches together), with tf.GradientTape (the
chapter's compile / trainable=False / train_on_batch pattern never updates D in Keras 3).
"""

import argparse
import contextlib
import math
import os
import shutil
import sys
import time

from cli import UserError

STAGE_DEFAULTS = {
    1: dict(batch_size=64, epochs=1000, image_size=64),
    2: dict(batch_size=8, epochs=10, image_size=256),
}
# --demo: tiny widths on the synthetic birds, sized to learn within minutes on a 2-core CPU.
DEMO_DEFAULTS = {
    1: dict(
        data_dir="data/synthetic",
        results_dir="results/demo",
        log_dir="logs/demo",
        gf_dim=32,
        df_dim=16,
        z_dim=20,
        condition_dim=16,
        batch_size=32,
        epochs=120,
        sample_every=10,
        checkpoint_every=10,
        lr_decay_epochs=40,
    ),
    # Stage-II learns colour more slowly: the chapter's batch of 8, a higher rate that decays quickly.
    2: dict(
        data_dir="data/synthetic",
        results_dir="results/demo",
        log_dir="logs/demo",
        gf_dim=16,
        df_dim=8,
        batch_size=8,
        epochs=24,
        g_lr=5e-4,
        d_lr=5e-4,
        lr_decay_epochs=6,
        g_ema=0.995,
        sample_every=4,
        checkpoint_every=4,
    ),
}
CONFIG_KEYS = ("gf_dim", "df_dim", "z_dim", "condition_dim", "embedding_dim")


def make_parser(stage):
    d = STAGE_DEFAULTS[stage]
    p = argparse.ArgumentParser(
        prog=f"stage{stage}.py",
        description=(
            f"Train StackGAN Stage-{'I' * stage} ({d['image_size']}x{d['image_size']})"
            + ("" if stage == 1 else " on the frozen Stage-I generator from --results-dir")
            + ". Resumes from the latest checkpoint in --results-dir unless --fresh."
        ),
    )
    # Defaults in [brackets]; those that --demo changes are None here and filled in by resolve_defaults().
    p.add_argument("--data-dir", help="dataset root (CUB layout) [data/birds; demo: data/synthetic]")
    p.add_argument("--results-dir", help="weights, config, checkpoints, sample grids [results; demo: results/demo]")
    p.add_argument("--log-dir", help=f"TensorBoard logs go to LOG_DIR/stage{stage} [logs; demo: logs/demo]")
    p.add_argument(
        "--epochs", type=int, help=f"total epochs to train (a resumed run continues up to it) [{d['epochs']}]"
    )
    p.add_argument("--batch-size", type=int, help=f"global batch size [{d['batch_size']}]")
    p.add_argument("--g-lr", type=float, help="generator Adam learning rate [2e-4]")
    p.add_argument("--d-lr", type=float, help="discriminator Adam learning rate [2e-4]")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam beta_1 (beta_2 is 0.999) [0.5]")
    p.add_argument("--lr-decay-epochs", type=int, help="halve both learning rates every N epochs [600]")
    p.add_argument("--kl-coef", type=float, default=2.0, help="weight of the KL term in the generator loss [2.0]")
    p.add_argument(
        "--g-ema",
        type=float,
        help="sample and export an exponential moving average of the generator's "
        "weights with this momentum per step, e.g. 0.995 (not in the chapter) [off; Stage-II demo: 0.995]",
    )
    p.add_argument(
        "--gf-dim",
        type=int,
        help="generator width [128]"
        if stage == 1
        else "Stage-II generator width [128] (Stage-I widths come from its config)",
    )
    p.add_argument("--df-dim", type=int, help="discriminator width [64]")
    if stage == 1:
        p.add_argument("--z-dim", type=int, help="noise dimension [100]")
        p.add_argument("--condition-dim", type=int, help="conditioning vector dimension [128]")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="plain resize of the crops (the chapter) instead of random crop + flip (the original StackGAN)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for weights, noise and data order [0]")
    p.add_argument("--sample-every", type=int, help="write a sample grid every N epochs [1]")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint and export weights every N epochs [1]")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap on steps per epoch, for quick runs [all]")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start from scratch")
    p.add_argument(
        "--mixed-precision",
        choices=["off", "bf16", "fp16"],
        default="off",
        help="compute in bfloat16/float16; weights, outputs and losses stay float32 [off]",
    )
    p.add_argument(
        "--xla",
        choices=["auto", "on", "off"],
        default="auto",
        help="compile the step with XLA; auto: on when a GPU is visible [auto]",
    )
    p.add_argument(
        "--distribute",
        choices=["none", "mirrored", "multiworker"],
        default="none",
        help="tf.distribute strategy: all local GPUs, or several machines configured by TF_CONFIG [none]",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="generate synthetic birds in data/synthetic if absent and train small networks on them "
        "(minutes on a CPU); explicit flags still win",
    )
    return p


def resolve_defaults(args, stage):
    base = dict(
        data_dir="data/birds",
        results_dir="results",
        log_dir="logs",
        gf_dim=128,
        df_dim=64,
        g_lr=2e-4,
        d_lr=2e-4,
        z_dim=100,
        condition_dim=128,
        sample_every=1,
        checkpoint_every=1,
        lr_decay_epochs=600,
        **{k: v for k, v in STAGE_DEFAULTS[stage].items() if k != "image_size"},
    )
    if args.demo:
        base.update(DEMO_DEFAULTS[stage])
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in (
        "epochs",
        "batch_size",
        "gf_dim",
        "df_dim",
        "z_dim",
        "condition_dim",
        "sample_every",
        "checkpoint_every",
        "lr_decay_epochs",
        "steps_per_epoch",
    ):
        value = getattr(args, key, None)
        if value is not None and value < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
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


def select_strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "--distribute multiworker needs the TF_CONFIG environment variable "
                "(cluster and task of this worker); see README 'Several machines'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def set_precision(mode):
    import keras

    keras.mixed_precision.set_global_policy({"off": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}[mode])


def make_optimizer(lr, beta1, mixed_precision, ema_momentum=None):
    import keras

    opt = keras.optimizers.Adam(
        learning_rate=lr, beta_1=beta1, beta_2=0.999, use_ema=bool(ema_momentum), ema_momentum=ema_momentum or 0.99
    )
    return keras.optimizers.LossScaleOptimizer(opt) if mixed_precision == "fp16" else opt


def stackgan_losses(real_logits, fake_logits, wrong_logits, mean_logsigma, kl_coef, global_batch_size):
    """The step's losses and D statistics, each summed over this replica's examples / global batch.

    Summing the values over replicas gives the global-batch mean (what one device would compute).
    keras.ops only, so the JAX benchmark path (bench.py) computes exactly the same losses.
    """
    from keras import ops

    import models

    def bce(target, logits):  # sigmoid cross-entropy on logits, numerically stable
        per_example = ops.relu(logits) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
        return ops.sum(ops.mean(per_example, axis=-1)) / global_batch_size

    def mean_probability(logits):
        return ops.sum(ops.sigmoid(logits)) / global_batch_size

    local_batch = ops.cast(ops.shape(mean_logsigma)[0], "float32")
    d_loss_real = bce(0.9, real_logits)  # the chapter's one-sided label smoothing: real = 0.9
    d_loss_fake = bce(0.0, fake_logits)  # the chapter meant 0.1 but wrote zeros * 0.1 = 0
    d_loss_wrong = bce(0.0, wrong_logits)
    kl = models.KL_loss(None, mean_logsigma) * local_batch / global_batch_size
    g_loss_adv = bce(0.9, fake_logits)
    return dict(
        d_loss=d_loss_real + 0.5 * (d_loss_fake + d_loss_wrong),
        d_loss_real=d_loss_real,
        d_loss_fake=d_loss_fake,
        d_loss_wrong=d_loss_wrong,
        g_loss=g_loss_adv + kl_coef * kl,
        g_loss_adv=g_loss_adv,
        kl_loss=kl,
        d_real=mean_probability(real_logits),
        d_fake=mean_probability(fake_logits),
        d_wrong=mean_probability(wrong_logits),
    )


class StackGANTrainer:
    """Builds the networks of one stage and owns the compiled training step.

    Both stages share everything here; they differ only in the generator/discriminator builders
    and in Stage-II's frozen Stage-I generator in front of the Stage-II generator.
    """

    def __init__(
        self,
        stage,
        config,
        *,
        g_lr=2e-4,
        d_lr=2e-4,
        beta1=0.5,
        kl_coef=2.0,
        global_batch_size=64,
        mixed_precision="off",
        xla=False,
        strategy=None,
        stage1_gen=None,
        seed=0,
        g_ema=None,
    ):
        import keras
        import tensorflow as tf

        import models

        self.stage, self.config, self.kl_coef = stage, dict(config), kl_coef
        self.global_batch_size = global_batch_size
        self.strategy = strategy or tf.distribute.get_strategy()
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            self.gen = models.build_generator(stage, self.config)
            self.dis = models.build_discriminator(stage, self.config)
            self.stage1_gen = stage1_gen
            self.adversarial = models.build_adversarial_model(self.gen, self.dis, stage1_gen, with_real_images=True)
            self.g_opt = make_optimizer(g_lr, beta1, mixed_precision, g_ema)
            self.d_opt = make_optimizer(d_lr, beta1, mixed_precision)
            self.g_opt.build(self.gen.trainable_variables)
            self.d_opt.build(self.dis.trainable_variables)
            self.noise = tf.random.Generator.from_seed(seed)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.fp16 = mixed_precision == "fp16"
        self.g_ema = g_ema
        self._step = tf.function(self._distributed_step, jit_compile=xla)

    def _replica_step(self, real, embeddings, wrong):
        import tensorflow as tf

        z = self.noise.normal((tf.shape(embeddings)[0], self.config["z_dim"]))
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            logits, mean_logsigma, _ = self.adversarial([embeddings, z, real, wrong], training=True)
            real_logits, wrong_logits, fake_logits = tf.split(logits, 3)
            losses = stackgan_losses(
                real_logits, fake_logits, wrong_logits, mean_logsigma, self.kl_coef, self.global_batch_size
            )
            d_loss, g_loss = losses["d_loss"], losses["g_loss"]
            if self.fp16:
                d_loss, g_loss = self.d_opt.scale_loss(d_loss), self.g_opt.scale_loss(g_loss)
        # The fake logits serve both updates: D's gradient w.r.t. its own weights, G's through D.
        d_grads = d_tape.gradient(d_loss, self.dis.trainable_variables)
        g_grads = g_tape.gradient(g_loss, self.gen.trainable_variables)
        self.d_opt.apply(d_grads, self.dis.trainable_variables)
        self.g_opt.apply(g_grads, self.gen.trainable_variables)
        return losses

    def _distributed_step(self, batch):
        import tensorflow as tf

        per_replica = self.strategy.run(self._replica_step, args=batch)
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def train_step(self, batch):
        """One D and one G update on a (distributed) batch of (images, embeddings, wrong_images)."""
        return self._step(batch)

    @contextlib.contextmanager
    def sampling_generator(self):
        """The generator to sample and export inside the block. With --g-ema it holds the moving average
        of its weights (Adam's use_ema; BatchNorm statistics stay those of training) until the block
        ends, when its training weights come back."""
        if not self.g_ema:
            yield self.gen
            return
        live = [v.numpy() for v in self.gen.trainable_variables]
        self.g_opt.finalize_variable_values(self.gen.trainable_variables)
        try:
            yield self.gen
        finally:
            for variable, value in zip(self.gen.trainable_variables, live):
                variable.assign(value)

    def set_learning_rates(self, g_lr, d_lr):
        self.g_opt.learning_rate.assign(g_lr)
        self.d_opt.learning_rate.assign(d_lr)

    def checkpoint(self):
        import tensorflow as tf

        return tf.train.Checkpoint(
            gen=self.gen, dis=self.dis, g_opt=self.g_opt, d_opt=self.d_opt, epoch=self.epoch, noise=self.noise
        )


def is_chief(strategy):
    """True except on the non-chief workers of a multi-worker run (TF_CONFIG task other than chief/worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and resolver.task_id == 0 and not has_chief)


def write_log(writer, name, value, step):
    """The chapter's write_log (tf.Summary, TF1 only), on tf.summary."""
    import tensorflow as tf

    with writer.as_default():
        tf.summary.scalar(name, value, step=step)


def save_weights_atomic(model, path):
    tmp = path[: -len(".weights.h5")] + f".tmp-{os.getpid()}.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, path)


def learning_rate_at(base_lr, epoch, decay_epochs):
    """The original StackGAN's schedule (the chapter defines stage1_lr_decay_step and never uses it)."""
    return base_lr * 0.5 ** (epoch // decay_epochs)


def load_training_data(args, image_size):
    import data

    if args.demo and data.ensure_synthetic(args.data_dir):
        print(f"Wrote synthetic birds to {args.data_dir}")
    augment = not args.no_augment
    train_split = data.load_split(args.data_dir, "train", data.stored_size(image_size, augment))
    test_split = data.load_split(args.data_dir, "test", image_size)
    if len(train_split.images) < args.batch_size:
        raise UserError(
            f"--batch-size {args.batch_size} is larger than the {len(train_split.images)} "
            f"training images in {args.data_dir}; pass a smaller --batch-size"
        )
    return train_split, test_split, augment


def check_resume_config(ckpt_dir, config, g_ema):
    """A checkpoint of other widths, or with/without the --g-ema average, cannot be restored: say so
    instead of failing deep inside TF."""
    import json

    path = os.path.join(ckpt_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    diffs = [f"{k}={saved.get(k)} (now {config[k]})" for k in CONFIG_KEYS if saved.get(k) != config[k]]
    if bool(saved.get("g_ema")) != bool(g_ema):
        diffs.append(f"--g-ema {saved.get('g_ema')} (now {g_ema})")
    if diffs:
        raise UserError(
            f"the checkpoint in {ckpt_dir} was trained with {', '.join(diffs)}; "
            "pass the same settings to resume, or --fresh to start over"
        )


def run(args, stage):
    """Train one stage as configured by the parsed command line `args`."""
    args = resolve_defaults(args, stage)
    strategy = select_strategy(args.distribute)  # MultiWorker must exist before other TF work
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    import data
    import sampling

    set_precision(args.mixed_precision)
    xla = args.xla == "on" or (args.xla == "auto" and bool(tf.config.list_physical_devices("GPU")))
    image_size = sampling.STAGE_IMAGE_SIZE[stage]
    os.makedirs(args.results_dir, exist_ok=True)

    stage1_gen = None
    if stage == 1:
        config = dict(
            gf_dim=args.gf_dim,
            df_dim=args.df_dim,
            z_dim=args.z_dim,
            condition_dim=args.condition_dim,
            embedding_dim=1024,
        )
    else:
        if args.demo and not os.path.exists(sampling.config_path(args.results_dir, 1)):
            raise UserError(
                f"{sampling.config_path(args.results_dir, 1)} not found: the Stage-II demo continues "
                "from the Stage-I demo; run `python stage1.py --demo` first"
            )
        with strategy.scope():
            (stage1_gen,), stage1_config = sampling.load_generators(args.results_dir, 1, "stage2.py")
        stage1_gen.trainable = False
        config = dict(stage1_config, gf_dim=args.gf_dim, df_dim=args.df_dim)
    train_split, test_split, augment = load_training_data(args, image_size)
    if train_split.embeddings.shape[-1] != config["embedding_dim"]:
        raise UserError(
            f"embeddings in {args.data_dir} are {train_split.embeddings.shape[-1]}-d but the "
            f"Stage-I generator expects {config['embedding_dim']}-d; retrain Stage-I on this data"
        )

    trainer = StackGANTrainer(
        stage,
        config,
        g_lr=args.g_lr,
        d_lr=args.d_lr,
        beta1=args.beta1,
        kl_coef=args.kl_coef,
        global_batch_size=args.batch_size,
        mixed_precision=args.mixed_precision,
        xla=xla,
        strategy=strategy,
        stage1_gen=stage1_gen,
        seed=args.seed,
        g_ema=args.g_ema,
    )
    ckpt_dir = os.path.join(args.results_dir, f"stage{stage}_ckpt")
    chief = is_chief(strategy)
    # Every worker saves (the save is collective); only the chief writes into results/.
    write_dir = ckpt_dir if chief else f"{ckpt_dir}_worker{strategy.cluster_resolver.task_id}_tmp"
    ckpt = trainer.checkpoint()
    manager = tf.train.CheckpointManager(ckpt, write_dir, max_to_keep=3)
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest and not args.fresh:
        check_resume_config(ckpt_dir, config, args.g_ema)
        ckpt.restore(latest).assert_existing_objects_matched()
        print(
            f"Resumed from {latest} at epoch {int(trainer.epoch.numpy())} "
            f"(optimizer step {int(trainer.g_opt.iterations.numpy())})"
        )
    elif latest:
        print(f"--fresh: ignoring checkpoints in {ckpt_dir}")
    if chief:
        os.makedirs(ckpt_dir, exist_ok=True)
        sampling.write_json_atomic(os.path.join(ckpt_dir, "config.json"), dict(config, g_ema=args.g_ema))

    dataset = data.make_dataset(train_split, args.batch_size, image_size, augment=augment, seed=args.seed)
    steps = len(train_split.images) // args.batch_size
    if args.steps_per_epoch:
        steps = min(steps, args.steps_per_epoch)
        dataset = dataset.take(steps)
    options = tf.data.Options()  # batches come from a generator: shard by element, not by file
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist_dataset = strategy.experimental_distribute_dataset(dataset.with_options(options))

    # Fixed test embeddings and noise: the grids of successive epochs are comparable.
    # Spread over the (class-sorted) test split, so the grid shows every class, not just the first few.
    n_samples = min(64, len(test_split.embeddings))
    sample_rows = np.linspace(0, len(test_split.embeddings) - 1, n_samples).round().astype(int)
    sample_embeddings = np.asarray(test_split.embeddings[sample_rows, 0])
    sample_z = np.random.default_rng(args.seed).standard_normal((n_samples, config["z_dim"])).astype("float32")
    synthetic = data.is_synthetic(args.data_dir)
    writer = (
        tf.summary.create_file_writer(os.path.join(args.log_dir, f"stage{stage}"))
        if chief
        else tf.summary.create_noop_writer()
    )
    sample_dir = os.path.join(args.results_dir, f"stage{stage}")
    os.makedirs(sample_dir, exist_ok=True)

    start_epoch = int(trainer.epoch.numpy())
    if start_epoch >= args.epochs:
        print(f"Already trained {start_epoch} epochs (--epochs {args.epochs}); pass a larger --epochs to go on")
    started = time.time()
    for epoch in range(start_epoch, args.epochs):
        g_lr = learning_rate_at(args.g_lr, epoch, args.lr_decay_epochs)
        d_lr = learning_rate_at(args.d_lr, epoch, args.lr_decay_epochs)
        trainer.set_learning_rates(g_lr, d_lr)
        totals, count = {}, 0
        bar = tqdm(
            dist_dataset,
            total=steps,
            desc=f"stage{stage} epoch {epoch + 1}/{args.epochs}",
            leave=False,
            file=sys.stdout,
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not chief,
        )
        for batch in bar:
            metrics = {k: float(v) for k, v in trainer.train_step(batch).items()}
            if not all(math.isfinite(v) for v in metrics.values()):
                bad = ", ".join(f"{k}={v}" for k, v in metrics.items() if not math.isfinite(v))
                raise UserError(
                    f"training diverged at epoch {epoch + 1} step {count + 1} ({bad}); "
                    f"the last good checkpoint in {ckpt_dir} is kept: lower --g-lr/--d-lr and rerun"
                )
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
            bar.set_postfix(
                d=f"{totals['d_loss'] / count:.3f}",
                g=f"{totals['g_loss'] / count:.3f}",
                kl=f"{totals['kl_loss'] / count:.3f}",
                refresh=False,
            )
        bar.close()
        means = {k: v / max(count, 1) for k, v in totals.items()}
        trainer.epoch.assign(epoch + 1)
        step = epoch + 1
        for name, value in means.items():
            write_log(writer, f"loss/{name}" if "loss" in name else f"D/{name}", value, step)
        write_log(writer, "lr/generator", g_lr, step)
        write_log(writer, "lr/discriminator", d_lr, step)
        line = (
            f"stage{stage} epoch {step}/{args.epochs}  d_loss {means['d_loss']:.4f}  "
            f"g_loss {means['g_loss']:.4f}  kl {means['kl_loss']:.4f}  "
            f"D(real) {means['d_real']:.2f}  D(fake) {means['d_fake']:.2f}  {time.time() - started:.0f}s"
        )
        last = step == args.epochs
        if chief and (step % args.sample_every == 0 or last):
            with trainer.sampling_generator() as gen:
                generators = ([stage1_gen] if stage1_gen is not None else []) + [gen]
                images = sampling.sample_images(generators, sample_embeddings, sample_z)
            grid = sampling.stage_grid(images)
            sampling.save_png(grid, os.path.join(sample_dir, f"epoch_{step:04d}.png"))
            with writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
            if synthetic:
                accuracy = data.attribute_accuracy(images[-1], sample_embeddings)
                write_log(writer, "eval/attribute_accuracy", accuracy, step)
                line += f"  attribute acc {accuracy:.2f}"
        writer.flush()
        if chief:
            print(line, flush=True)
        if step % args.checkpoint_every == 0 or last:
            manager.save(checkpoint_number=step)
            if chief:
                export_weights(trainer, args.results_dir, stage, config, args)
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return trainer, test_split, config


def export_weights(trainer, results_dir, stage, config, args):
    """results/stageN_{gen,dis}.weights.h5 + stageN_config.json: what stage2.py, generate.py, evaluate.py read."""
    import sampling

    with trainer.sampling_generator() as gen:
        save_weights_atomic(gen, sampling.weights_path(results_dir, stage, "gen"))
    save_weights_atomic(trainer.dis, sampling.weights_path(results_dir, stage, "dis"))
    settings = dict(
        config,
        stage=stage,
        epochs_trained=int(trainer.epoch.numpy()),
        augment=not args.no_augment,
        batch_size=args.batch_size,
        kl_coef=args.kl_coef,
        g_ema=args.g_ema,
        data_dir=args.data_dir,
    )
    sampling.write_json_atomic(sampling.config_path(results_dir, stage), settings)


def demo_report(test_split, config, args, stage):
    """After --demo: the attribute accuracy of generated test images, and where to look.

    Every caption of every test bird, one noise draw each (1,600 images for the synthetic set), so that
    the printed accuracy varies little from one sampling to the next."""
    import numpy as np

    import data
    import sampling

    generators, _ = sampling.load_generators(args.results_dir, stage)
    embeddings = np.asarray(test_split.embeddings).reshape(-1, test_split.embeddings.shape[-1])
    z = np.random.default_rng(args.seed + 1).standard_normal((len(embeddings), config["z_dim"]))
    images = sampling.sample_images(generators, embeddings, z)
    accuracy = data.attribute_accuracy(images[-1], embeddings)
    chance = 1.0 / len(data.PALETTE)
    size = images[-1].shape[1]
    print(
        f"Attribute accuracy of {len(embeddings)} generated {size}x{size} test images "
        f"({len(test_split.embeddings)} birds x {test_split.embeddings.shape[1]} captions): "
        f"{accuracy:.3f} (chance {chance:.3f})"
    )
    print(
        f"Sample grids: {os.path.join(args.results_dir, f'stage{stage}')}/epoch_*.png   "
        f"TensorBoard: tensorboard --logdir={args.log_dir}"
    )
    return accuracy


def main_for_stage(stage, argv=None):
    args = make_parser(stage).parse_args(argv)
    _, test_split, config = run(args, stage)
    if args.demo:
        demo_report(test_split, config, args, stage)
    return 0
