"""The benchmark's machinery (bench.py): random or real batches, timing, the chapter's training loop ported to
Keras 3 with the least change that makes it train, and the training step as one jitted JAX function."""

import time

from stackgan.config import EMBEDDING_DIM, IMAGE_SIZE


def random_batches(stage, batch_size, seed, as_tensor=None, dtype="float32"):
    """Two fixed random batches of (images, embeddings, wrong images): images float32 in [-1, 1], or
    uint8 as the input pipeline gives them."""
    import numpy as np

    size = IMAGE_SIZE[stage]
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(2):
        images, wrong = (rng.integers(0, 256, (batch_size, size, size, 3)).astype("uint8") for _ in range(2))
        if dtype == "float32":
            images, wrong = (a.astype("float32") / 127.5 - 1.0 for a in (images, wrong))
        embeddings = rng.normal(0, 0.3, (batch_size, EMBEDDING_DIM)).astype("float32")
        batches.append(tuple(as_tensor(a) for a in (images, embeddings, wrong)))
    return batches


def random_dataset(stage, batch_size, seed):
    """An endless tf.data.Dataset cycling two random uint8 training batches."""
    import tensorflow as tf

    batches = random_batches(stage, batch_size, seed, tf.constant, "uint8")
    return tf.data.Dataset.from_tensor_slices(tuple(tf.stack(t) for t in zip(*batches))).repeat()


def split_shaped(images, size, embedding_dim, captions=10):
    """A stand-in for a split of `images` training images at `size`, for the memory estimate: arrays of the
    split's shapes and dtypes that take no memory (one broadcast element each)."""
    import types

    import numpy as np

    return types.SimpleNamespace(
        images=np.broadcast_to(np.zeros((), np.uint8), (images, size, size, 3)),
        embeddings=np.broadcast_to(np.zeros((), np.float32), (images, captions, embedding_dim)),
    )


def rate(batch_size, steps, seconds):
    return round(batch_size * steps / seconds, 2)


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


def frozen_stage1(config, kernels=None):
    from stackgan import models
    from stackgan.layers import FAST_KERNELS

    stage1 = models.build_generator(1, config, kernels or FAST_KERNELS)
    stage1.trainable = False
    return stage1


def chapter_loop_step(config, stage, batch_size, stage1_gen):
    """The chapter's per-batch procedure in Keras 3, changed only where it would not run or train.
    Returns the step function; its .gen and .dis are the networks it trains."""
    import keras
    import numpy as np

    from stackgan import models
    from stackgan.layers import CHAPTER_KERNELS

    # The chapter's UpSampling2D + Conv2D layers, Keras' own gradients and batch norm.
    gen = models.build_generator(stage, config, CHAPTER_KERNELS)
    dis = models.build_discriminator(stage, config, CHAPTER_KERNELS)
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

    from stackgan import models
    from stackgan.training.step import stackgan_losses

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
