"""Time the training step: images per second of the project's step, and optionally the chapter's loop.

    python bench.py --stage 1 --batch-size 64 --steps 20 --baseline
    python bench.py --stage 2 --batch-size 64 --steps 20 --mixed-precision bf16

Prints one JSON line. --baseline also times the chapter's loop ported to Keras 3 with the least
change that makes it train (G.predict for the fakes, the compressor's predict, three
D.train_on_batch calls with D.trainable toggled, one adversarial train_on_batch), in the same run,
in float32 as the chapter has it (--mixed-precision applies to our step only).
--data-dir times the real input pipeline instead of random tensors.

--backend jax runs the same networks and losses as a jitted JAX step (Keras 3's stateless_call):
for machines that have JAX but no TensorFlow, such as our GPU benchmark machine.
"""

import argparse
import json
import os
import platform
import time

from cli import UserError, run_main


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--stage", type=int, choices=[1, 2], default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, autotuning)")
    p.add_argument("--gf-dim", type=int, default=128)
    p.add_argument("--df-dim", type=int, default=64)
    p.add_argument("--mixed-precision", choices=["off", "bf16", "fp16"], default="off")
    p.add_argument(
        "--no-xla", action="store_true", help="do not compile the step with XLA (XLA is on by default on a GPU)"
    )
    p.add_argument("--xla", action="store_true", help="compile the step with XLA on a CPU too")
    p.add_argument("--baseline", action="store_true", help="also time the chapter's loop and report the ratio")
    p.add_argument("--data-dir", help="feed the step from this dataset's input pipeline instead of random tensors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backend",
        choices=["tensorflow", "jax"],
        default="tensorflow",
        help="jax: time an equivalent jitted JAX step (no tf.data, no --baseline)",
    )
    return p


def device_name():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return f"{len(jax.devices())}x {getattr(device, 'device_kind', device.platform)}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)}x {details.get('device_name', 'GPU')}"
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def random_batches(stage, batch_size, seed, as_tensor=None):
    """A few fixed random batches of (images, embeddings, wrong images), cycled."""
    import numpy as np

    size = 64 if stage == 1 else 256
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(2):
        images = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype("float32")
        wrong = rng.uniform(-1, 1, (batch_size, size, size, 3)).astype("float32")
        embeddings = rng.normal(0, 0.3, (batch_size, 1024)).astype("float32")
        batches.append(tuple(as_tensor(a) for a in (images, embeddings, wrong)))
    return lambda: iter(batches * 10**6)


def pipeline_batches(args, config):
    import data

    size = 64 if args.stage == 1 else 256
    split = data.load_split(args.data_dir, "train", data.stored_size(size, True))
    dataset = data.make_dataset(split, args.batch_size, size, augment=True, seed=args.seed).repeat()
    return lambda: iter(dataset)


def time_steps(step, batches, warmup, steps):
    it = batches()
    for _ in range(warmup):
        out = step(next(it))
    float(out["d_loss"] if isinstance(out, dict) else out)
    start = time.perf_counter()
    for _ in range(steps):
        out = step(next(it))
    float(out["d_loss"] if isinstance(out, dict) else out)  # wait for the device
    return time.perf_counter() - start


def frozen_stage1(config):
    import models

    stage1 = models.build_generator(1, config)
    stage1.trainable = False
    return stage1


def chapter_loop_step(config, stage, batch_size, stage1_gen):
    """The chapter's per-batch procedure in Keras 3, changed only where it would not run or train."""
    import keras
    import numpy as np

    import models

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

    return step


def jax_step(config, stage, batch_size, stage1_gen, seed, kl_coef=2.0):
    """The training step of train.StackGANTrainer as one jitted JAX function (same networks and losses)."""
    import jax
    import keras

    import models
    import train

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
        losses = train.stackgan_losses(real_logits, fake_logits, wrong_logits, mls, kl_coef, batch_size)
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
    if args.batch_size < 1 or args.steps < 1:
        raise UserError("--batch-size and --steps must be at least 1")
    if args.backend == "jax":
        return main_jax(args)
    import tensorflow as tf

    import train

    train.set_precision(args.mixed_precision)
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    xla = (on_gpu and not args.no_xla) or args.xla
    config = dict(gf_dim=args.gf_dim, df_dim=args.df_dim, z_dim=100, condition_dim=128, embedding_dim=1024)
    stage1_gen = frozen_stage1(config) if args.stage == 2 else None
    trainer = train.StackGANTrainer(
        args.stage,
        config,
        global_batch_size=args.batch_size,
        mixed_precision=args.mixed_precision,
        xla=xla,
        stage1_gen=stage1_gen,
        seed=args.seed,
    )
    batches = (
        pipeline_batches(args, config)
        if args.data_dir
        else random_batches(args.stage, args.batch_size, args.seed, tf.constant)
    )
    seconds = time_steps(trainer.train_step, batches, args.warmup, args.steps)
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=args.mixed_precision,
        xla=xla,
        input="pipeline" if args.data_dir else "random",
        device=device_name(),
        backend="tensorflow",
        steps=args.steps,
        img_per_s=round(args.batch_size * args.steps / seconds, 2),
    )
    if args.baseline:
        train.set_precision("off")  # the chapter's loop as written: float32
        stage1_gen = frozen_stage1(config) if args.stage == 2 else None
        step = chapter_loop_step(config, args.stage, args.batch_size, stage1_gen)
        base_seconds = time_steps(step, batches, args.warmup, args.steps)
        result["baseline_mixed_precision"] = "off"
        result["baseline_img_per_s"] = round(args.batch_size * args.steps / base_seconds, 2)
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
    import jax.numpy as jnp

    import train

    train.set_precision(args.mixed_precision)
    config = dict(gf_dim=args.gf_dim, df_dim=args.df_dim, z_dim=100, condition_dim=128, embedding_dim=1024)
    keras.utils.set_random_seed(args.seed)
    stage1_gen = frozen_stage1(config) if args.stage == 2 else None
    step = jax_step(config, args.stage, args.batch_size, stage1_gen, args.seed)
    seconds = time_steps(
        step, random_batches(args.stage, args.batch_size, args.seed, jnp.asarray), args.warmup, args.steps
    )
    result = dict(
        stage=args.stage,
        batch_size=args.batch_size,
        gf_dim=args.gf_dim,
        df_dim=args.df_dim,
        mixed_precision=args.mixed_precision,
        xla=True,
        input="random",
        device=device_name(),
        backend="jax",
        steps=args.steps,
        img_per_s=round(args.batch_size * args.steps / seconds, 2),
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_main(main)
