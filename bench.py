"""Time the training step: images per second of the project's step, and optionally the chapter's loop.

    python bench.py --stage 1 --batch-size 64 --steps 20 --baseline
    python bench.py --stage 1 --batch-size 32 --gf-dim 32 --df-dim 16 --data-dir data/synthetic
    python bench.py --stage 1 --pipeline-only --data-dir data/synthetic

Prints one JSON line. The step runs as in training (trainer.train_steps, --steps-per-call steps per
compiled call), fed uint8 batches: random ones, or with --data-dir the real input pipeline.
--pipeline-only times the input pipeline alone. --baseline also times, in the same run, the chapter's loop
ported to Keras 3 with the least change that makes it train (G.predict for the fakes, the compressor's
predict, three D.train_on_batch calls with D.trainable toggled, one adversarial train_on_batch), in
float32 as the chapter has it (--mixed-precision applies to our step only).

--backend jax runs the same networks and losses as a jitted JAX step (Keras 3's stateless_call):
for machines that have JAX but no TensorFlow, such as our GPU benchmark machine.
"""

import argparse
import json
import os
import time

import cli
import settings
from cli import UserError, positive_int, run_main


def make_parser():
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--stage", type=int, choices=[1, 2], default=1)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=positive_int, default=3, help="untimed steps first (tracing, autotuning)")
    p.add_argument("--steps-per-call", type=positive_int, default=1, help="training steps per compiled call")
    p.add_argument("--gf-dim", type=positive_int, default=settings.NETWORK_DEFAULTS["gf_dim"])
    p.add_argument("--df-dim", type=positive_int, default=settings.NETWORK_DEFAULTS["df_dim"])
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "off", "bf16", "fp16"],
        default="auto",
        help="auto: bf16 only where it is native (see stage1.py --help), else float32",
    )
    p.add_argument(
        "--xla",
        choices=["auto", "on", "off"],
        default="auto",
        help="compile the step with XLA; auto: on, except for bf16 on a CPU (as in training)",
    )
    p.add_argument("--baseline", action="store_true", help="also time the chapter's loop and report the ratio")
    p.add_argument("--data-dir", help="feed the step from this dataset's input pipeline instead of random tensors")
    p.add_argument("--pipeline-only", action="store_true", help="time the input pipeline of --data-dir alone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        default="tensorflow",
        help="jax: time an equivalent jitted JAX step (no tf.data, no --baseline)",
    )
    return p


def random_batches(stage, batch_size, seed, as_tensor=None, dtype="float32"):
    """Two fixed random batches of (images, embeddings, wrong images): images float32 in [-1, 1], or
    uint8 as the input pipeline gives them."""
    import numpy as np

    size = settings.IMAGE_SIZE[stage]
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(2):
        images, wrong = (rng.integers(0, 256, (batch_size, size, size, 3)).astype("uint8") for _ in range(2))
        if dtype == "float32":
            images, wrong = (a.astype("float32") / 127.5 - 1.0 for a in (images, wrong))
        embeddings = rng.normal(0, 0.3, (batch_size, settings.EMBEDDING_DIM)).astype("float32")
        batches.append(tuple(as_tensor(a) for a in (images, embeddings, wrong)))
    return batches


def random_dataset(args):
    """An endless tf.data.Dataset cycling two random uint8 training batches."""
    import tensorflow as tf

    batches = random_batches(args.stage, args.batch_size, args.seed, tf.constant, "uint8")
    return tf.data.Dataset.from_tensor_slices(tuple(tf.stack(t) for t in zip(*batches))).repeat()


def train_split(args):
    import data

    size = settings.IMAGE_SIZE[args.stage]
    return data.load_split(args.data_dir, "train", settings.stored_size(size, True))


def rate(args, seconds):
    return round(args.batch_size * args.steps / seconds, 2)


def time_calls(run, warmup, steps):
    """Seconds for run(steps) after run(warmup); run(n) does n steps and waits for them."""
    run(warmup)
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def time_pipeline(dataset, warmup, steps):
    it = iter(dataset)

    def run(n):
        for _ in range(n):
            batch = next(it)
        next(iter(batch.values()) if isinstance(batch, dict) else iter(batch)).numpy()

    return time_calls(run, warmup, steps)


def time_trainer(trainer, dataset, warmup, steps, steps_per_call):
    it = iter(dataset)

    def run(n):
        while n > 0:
            trainer.train_steps(it, min(n, steps_per_call))
            n -= steps_per_call
        trainer.pop_mean_losses()  # reads the sums: waits for the device

    return time_calls(run, warmup, steps)


def time_each_step(step, batches, warmup, steps):
    """For steps called from Python one batch at a time (the chapter's loop, the JAX step)."""

    def run(n):
        for k in range(n):
            out = step(batches[k % len(batches)])
        float(out["d_loss"] if isinstance(out, dict) else out)  # waits for the device

    return time_calls(run, warmup, steps)


def frozen_stage1(config):
    import models

    stage1 = models.build_generator(1, config)
    stage1.trainable = False
    return stage1


def chapter_loop_step(config, stage, batch_size, stage1_gen):
    """The chapter's per-batch procedure in Keras 3, changed only where it would not run or train.
    Returns the step function; its .gen and .dis are the networks it trains."""
    import keras
    import numpy as np

    import models

    with models.chapter_layers():  # the chapter's UpSampling2D + Conv2D layers, Keras' own gradients
        gen = models.build_generator(stage, config)
        dis = models.build_discriminator(stage, config)
    compressor = models.build_embedding_compressor_model(config["embedding_dim"], config["condition_dim"])
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    dis.compile(loss=bce, optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
    adversarial = models.build_adversarial_model(gen, dis, stage1_gen)
    dis.trainable = False
    adversarial.compile(
        loss=[bce, models.KL_loss, None],
        loss_weights=[1.0, 2.0, 0.0],
        optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
    )
    real_labels = np.full((batch_size, 1), 0.9, "float32")
    fake_labels = np.zeros((batch_size, 1), "float32")
    kl_target = np.zeros((batch_size, 2 * config["condition_dim"]), "float32")

    def step(batch):
        images, embeddings, wrong = (np.asarray(t) for t in batch)
        z = np.random.normal(0, 1, (batch_size, config["z_dim"])).astype("float32")
        if stage == 1:
            fakes, _ = gen.predict([embeddings, z], verbose=0)
        else:
            low_res, _ = stage1_gen.predict([embeddings, z], verbose=0)
            fakes, _ = gen.predict([embeddings, low_res], verbose=0)
        compressor.predict(embeddings, verbose=0)  # the chapter compresses outside D, every batch
        dis.trainable = True
        d_real = dis.train_on_batch([images, embeddings], real_labels)
        d_fake = dis.train_on_batch([fakes, embeddings], fake_labels)
        d_wrong = dis.train_on_batch([wrong, embeddings], fake_labels)
        dis.trainable = False
        adversarial.train_on_batch([embeddings, z], [real_labels, kl_target, images[:, :0]])
        return 0.5 * (d_real + 0.5 * (d_wrong + d_fake))

    step.gen, step.dis = gen, dis
    return step


def jax_step(config, stage, batch_size, stage1_gen, seed, kl_coef=2.0):
    """The training step of StackGANTrainer as one jitted JAX function (same networks and losses)."""
    import jax
    import keras

    import models
    from trainer import stackgan_losses

    gen = models.build_generator(stage, config)
    dis = models.build_discriminator(stage, config)
    g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5)
    g_opt.build(gen.trainable_variables)
    d_opt.build(dis.trainable_variables)
    values = lambda variables: [v.value for v in variables]
    state = [
        values(gen.trainable_variables),
        values(gen.non_trainable_variables),
        values(dis.trainable_variables),
        values(dis.non_trainable_variables),
        values(g_opt.variables),
        values(d_opt.variables),
        values(stage1_gen.variables) if stage1_gen is not None else [],
        jax.random.key(seed),
    ]

    def losses_of(g_tv, d_tv, g_ntv, d_ntv, s1_vars, real, embeddings, wrong, z):
        if stage1_gen is not None:
            (low_res, _), s1_vars = stage1_gen.stateless_call([], s1_vars, [embeddings, z], training=False)
            (fake, mls), g_ntv = gen.stateless_call(g_tv, g_ntv, [embeddings, low_res], training=True)
        else:
            (fake, mls), g_ntv = gen.stateless_call(g_tv, g_ntv, [embeddings, z], training=True)
        # As the TF step: one D call on the real, wrong and fake images together.
        images = jax.numpy.concatenate([real, wrong, fake.astype(real.dtype)])
        logits, d_ntv = dis.stateless_call(d_tv, d_ntv, [images, jax.numpy.tile(embeddings, (3, 1))], training=True)
        real_logits, wrong_logits, fake_logits = jax.numpy.split(logits, 3)
        losses = stackgan_losses(real_logits, fake_logits, wrong_logits, mls, kl_coef, batch_size)
        return (losses["d_loss"], losses["g_loss"]), (losses, g_ntv, d_ntv)

    @jax.jit
    def step(state, batch):
        g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov, s1_vars, key = state
        key, z_key = jax.random.split(key)
        z = jax.random.normal(z_key, (batch_size, config["z_dim"]))
        forward = lambda g, d: losses_of(g, d, g_ntv, d_ntv, s1_vars, *batch, z)
        (d_loss, g_loss), backward, (losses, g_ntv, d_ntv) = jax.vjp(forward, g_tv, d_tv, has_aux=True)
        one, zero = jax.numpy.ones_like(d_loss), jax.numpy.zeros_like(d_loss)
        d_grads = backward((one, zero))[1]  # dD_loss/dD
        g_grads = backward((zero, one))[0]  # dG_loss/dG, through D
        g_tv, g_ov = g_opt.stateless_apply(g_ov, g_grads, g_tv)
        d_tv, d_ov = d_opt.stateless_apply(d_ov, d_grads, d_tv)
        return [g_tv, g_ntv, d_tv, d_ntv, g_ov, d_ov, s1_vars, key], losses

    def run_step(batch):
        nonlocal state
        state, losses = step(state, batch)
        return losses

    return run_step


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.backend == "jax":
        return main_jax(args)
    if args.pipeline_only and not args.data_dir:
        raise UserError("--pipeline-only times the input pipeline of a dataset: give --data-dir (e.g. data/synthetic)")
    import hardware

    hardware.import_tensorflow()
    import pipeline
    from trainer import StackGANTrainer, set_precision

    gpus, cpu = hardware.visible_gpus(), hardware.cpu_info()
    isa_cap = hardware.onednn_max_isa_env()
    precision, reason = hardware.choose_precision(args.mixed_precision, gpus, cpu["flags"], isa_cap)
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        device=hardware.device_description(gpus, cpu, onednn_max_isa=isa_cap),
        input="pipeline" if args.data_dir else "random",
        steps=args.steps,
    )
    size = settings.IMAGE_SIZE[args.stage]
    split = train_split(args) if args.data_dir else None
    if args.pipeline_only:
        plans = pipeline.make_plan_dataset(split, args.batch_size, size, seed=args.seed).repeat()
        batches = pipeline.make_dataset(split, args.batch_size, size, seed=args.seed).repeat()
        result.update(
            backend="tf.data",
            img_per_s=rate(args, time_pipeline(plans, args.warmup, args.steps)),
            assembled_on_host_img_per_s=rate(args, time_pipeline(batches, args.warmup, args.steps)),
        )
        print(json.dumps(result))
        return result
    set_precision(precision)
    xla = hardware.choose_xla(args.xla, gpus, precision)
    config = dict(settings.NETWORK_DEFAULTS, gf_dim=args.gf_dim, df_dim=args.df_dim)
    stage1_gen = frozen_stage1(config) if args.stage == 2 else None
    trainer = StackGANTrainer(
        args.stage,
        config,
        global_batch_size=args.batch_size,
        mixed_precision=precision,
        xla=xla,
        stage1_gen=stage1_gen,
        seed=args.seed,
    )
    if split is None:
        dataset = random_dataset(args)
    else:
        trainer.source = pipeline.DeviceSplit(split, size)
        dataset = pipeline.make_plan_dataset(split, args.batch_size, size, seed=args.seed).repeat()
    seconds = time_trainer(trainer, dataset, args.warmup, args.steps, args.steps_per_call)
    result.update(
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=precision,
        precision_reason=reason,
        xla=xla,
        steps_per_call=args.steps_per_call,
        backend="tensorflow",
        img_per_s=rate(args, seconds),
    )
    if args.baseline:
        set_precision("off")  # the chapter's loop as written: float32
        stage1_gen = frozen_stage1(config) if args.stage == 2 else None
        step = chapter_loop_step(config, args.stage, args.batch_size, stage1_gen)
        batches = random_batches(args.stage, args.batch_size, args.seed, lambda a: a)
        base_seconds = time_each_step(step, batches, args.warmup, args.steps)
        result["baseline_mixed_precision"] = "off"
        result["baseline_img_per_s"] = rate(args, base_seconds)
        result["speedup"] = round(base_seconds / seconds, 2)
    print(json.dumps(result))
    return result


def main_jax(args):
    if args.baseline or args.data_dir:
        raise UserError("--backend jax times the step on random tensors only: drop --baseline/--data-dir")
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    if keras.backend.backend() != "jax":
        raise UserError("Keras was imported with another backend; run bench.py --backend jax as a fresh process")
    import jax
    import jax.numpy as jnp

    import hardware
    from trainer import set_precision

    device = jax.devices()[0]
    gpus = []
    if device.platform == "gpu":
        capability = tuple(int(v) for v in str(getattr(device, "compute_capability", "0.0")).split(".")[:2])
        gpus = [{"name": device.device_kind, "compute_capability": capability}]
    precision, reason = hardware.choose_precision(
        args.mixed_precision, gpus, hardware.cpu_info()["flags"], hardware.onednn_max_isa_env()
    )
    set_precision(precision)
    config = dict(settings.NETWORK_DEFAULTS, gf_dim=args.gf_dim, df_dim=args.df_dim)
    keras.utils.set_random_seed(args.seed)
    stage1_gen = frozen_stage1(config) if args.stage == 2 else None
    step = jax_step(config, args.stage, args.batch_size, stage1_gen, args.seed)
    batches = random_batches(args.stage, args.batch_size, args.seed, jnp.asarray)
    seconds = time_each_step(step, batches, args.warmup, args.steps)
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=precision,
        precision_reason=reason,
        xla=True,
        input="random",
        device=f"{len(jax.devices())}x {device.device_kind}",
        backend="jax",
        steps=args.steps,
        img_per_s=rate(args, seconds),
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_main(main)
