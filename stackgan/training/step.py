"""The training step of one stage: networks, optimizers, losses and the compiled update, shared by the training
loop (both stages) and bench.py.

Every step makes one discriminator update on BCE(D(real, e), 0.9) + 0.5 * (BCE(D(fake, e), 0) +
BCE(D(wrong, e), 0)) and one generator update on BCE(D(G(e, z), e), 0.9) + kl_coef * KL, both from a
single forward pass through the adversarial model, which runs D once on the real, wrong and fake
batches together. Gradients come from tf.GradientTape.

Options beyond the chapter (all off by default): --text-loss adds D's text head (D regresses each real image's
embedding, G's fakes must regress to their own); --mix-conditions draws some fakes from mixed conditions, which D's
loss leaves out; --stage1-l1 ties the Stage-II image, shrunk, to the Stage-I image it refines.
"""

import contextlib

from stackgan.layers import Kernels
from stackgan.training.input import TrainingInput, check_fits, plan_input

TEXT_LOSS_KEYS = ("d_text_loss", "g_text_loss")  # with --text-loss
LOSS_KEYS = (
    "d_loss",
    "d_loss_real",
    "d_loss_fake",
    "d_loss_wrong",
    "g_loss",
    "g_loss_adv",
    "kl_loss",
    "d_real",
    "d_fake",
    "d_wrong",
)


# ---------------------------------------------------------------------------
# Optimizers and losses
# ---------------------------------------------------------------------------
def make_optimizer(lr, beta1, mixed_precision, ema_momentum=None):
    import keras

    opt = keras.optimizers.Adam(
        learning_rate=lr, beta_1=beta1, beta_2=0.999, use_ema=bool(ema_momentum), ema_momentum=ema_momentum or 0.99
    )
    return keras.optimizers.LossScaleOptimizer(opt) if mixed_precision == "fp16" else opt


def stackgan_losses(
    real_logits, fake_logits, wrong_logits, mean_logsigma, kl_coef, global_batch_size, fake_weights=None
):
    """The step's losses and D statistics, each summed over this replica's examples / global batch.

    Summing the values over replicas gives the global-batch mean (what one device would compute).
    keras.ops only, so the JAX benchmark path (bench.py) computes exactly the same losses.
    fake_weights (B,): how much each fake counts in D's loss (0 for a fake of a mixed condition: D would learn that a
    combination never seen with a real image is always fake); default 1. G learns from every fake.
    """
    from keras import ops

    from stackgan import models

    local_batch = ops.cast(ops.shape(mean_logsigma)[0], "float32")

    def bce(target, logits, weights=None):  # the chapter's loss on this replica's examples, a share of the batch
        loss = models.custom_generator_loss(ops.full_like(logits, target), logits, weights)
        return loss * local_batch / global_batch_size

    def mean_probability(logits):
        return ops.sum(ops.sigmoid(logits)) / global_batch_size

    d_loss_real = bce(0.9, real_logits)  # one-sided label smoothing: real 0.9, fake and wrong 0
    d_loss_fake = bce(0.0, fake_logits, fake_weights)
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


def embedding_stats(embeddings, rows=4096):
    """(mean (D,), scale): the mean caption embedding of a split (N, captions, D) and the root mean square per
    dimension about it, read `rows` images at a time (a memory-mapped split stays on disk)."""
    import numpy as np

    n, dim = len(embeddings), embeddings.shape[-1]
    total, squares, count = np.zeros(dim, np.float64), np.zeros(dim, np.float64), 0
    for start in range(0, n, rows):
        e = np.asarray(embeddings[start : start + rows], np.float64).reshape(-1, dim)
        total += e.sum(axis=0)
        squares += np.square(e).sum(axis=0)
        count += len(e)
    mean = total / max(count, 1)
    variance = np.maximum(squares / max(count, 1) - np.square(mean), 0.0)
    return mean.astype(np.float32), float(np.sqrt(variance.mean()))


# ---------------------------------------------------------------------------
# The trainer: networks, optimizers and the compiled step of one stage
# ---------------------------------------------------------------------------
class StackGANTrainer:
    """Builds the networks of one stage and owns the compiled training step.

    Both stages share everything here; they differ only in the generator/discriminator builders
    and in Stage-II's frozen Stage-I generator in front of the Stage-II generator.
    """

    def __init__(self, config, runtime=None, stage1_gen=None, split=None, source=None, text_stats=None):
        """config: a StageConfig (stage, widths, learning rates, beta1, kl_coef, batch_size, seed, g_ema, input,
        steps_per_epoch, and the options beyond the chapter); runtime: a Runtime (default: float32, no XLA, this
        machine's kernels); stage1_gen: Stage-II's frozen Stage-I generator. The input: a training split, from which
        the trainer makes its TrainingInput where --input and the memory the run needs say (`input`, and `plan`:
        placement, reason, Estimate; a run that cannot fit is refused in one line before the images are placed), or
        a source (a DeviceSplit or HostSplit of stackgan.training.input) whose assemble turns a dict batch into the
        training batch. text_stats: (mean (D,), scale) of the training embeddings, which standardise the targets of
        --text-loss (default: the split's, else none and scale 1)."""
        import keras
        import tensorflow as tf

        from stackgan import models
        from stackgan.runtime import Runtime

        self.config, self.stage, self.kl_coef = config, config.stage, config.kl_coef
        self.runtime = runtime or Runtime.choose(mixed_precision="off", xla="off")
        self.global_batch_size = config.batch_size
        self.strategy = self.runtime.strategy or tf.distribute.get_strategy()
        kernels = Kernels(conv_gradient=self.runtime.kernels)
        precision = self.runtime.precision
        keras.utils.set_random_seed(config.seed)
        with self.runtime.policy(), self.strategy.scope():
            self.gen = models.build_generator(self.stage, config.network(), kernels)
            self.dis = models.build_discriminator(
                self.stage, config.network(), kernels, text_head=config.text_loss > 0, matching=config.matching
            )
            self.stage1_gen = stage1_gen
            self.adversarial = models.build_adversarial_model(
                self.gen, self.dis, stage1_gen, with_real_images=True, fake_embedding=True
            )
            self.g_opt = make_optimizer(config.g_lr, config.beta1, precision, config.g_ema)
            self.d_opt = make_optimizer(config.d_lr, config.beta1, precision)
            self.g_opt.build(self.gen.trainable_variables)
            self.d_opt.build(self.dis.trainable_variables)
            self.noise = tf.random.Generator.from_seed(config.seed)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Per-epoch sums of the losses, kept on the device: read once an epoch, not once a step.
        keys = LOSS_KEYS + (TEXT_LOSS_KEYS if config.text_loss > 0 else ())
        keys += ("g_stage1_l1",) if stage1_gen is not None and config.stage1_l1 > 0 else ()
        self.loss_sums = {k: tf.Variable(0.0, trainable=False, name=f"sum_{k}") for k in keys}
        self.steps_summed = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_summed")
        self.input, self.plan = None, None
        if split is not None:
            self.plan = plan_input(config.input, self, split, self.runtime.memory, self.runtime.replicas)
            check_fits(self.plan[2], self.runtime.memory)
            self.input = TrainingInput(
                split,
                config.image_size,
                config.batch_size,
                config.augment,
                config.seed,
                steps_per_epoch=config.steps_per_epoch,
                placement=self.plan[0],
                hard_wrong=config.hard_wrong,
                mix_conditions=config.mix_conditions,
            )
            source = self.input.source
            if text_stats is None and config.text_loss > 0:  # the text head's targets, standardised
                text_stats = embedding_stats(split.embeddings)
        self.source = source  # a DeviceSplit or HostSplit, when batches are dicts
        mean, scale = text_stats if text_stats is not None else (0.0, 1.0)
        self.text_mean = tf.constant(mean, tf.float32)
        self.text_scale = float(scale)
        self.fp16 = precision == "fp16"
        self.g_ema = config.g_ema
        self._step = tf.function(self._distributed_step, jit_compile=self.runtime.xla)
        self._steps = tf.function(self._accumulating_steps)

    def _replica_step(self, batch):
        import tensorflow as tf

        fake_weights = None
        if isinstance(batch, dict):
            real, embeddings, wrong = self.source.assemble(batch)
            drawn = self.source.fake_embeddings(batch)
            if self.config.mix_conditions > 0:  # D never learns from the fakes of mixed conditions
                own = (batch["mix_b"] == batch["index"]) & (batch["mix_c"] == batch["index"])
                fake_weights = tf.cast(own, tf.float32)
        else:
            real, embeddings, wrong = batch
            drawn = embeddings
        real, wrong = to_float_images(real), to_float_images(wrong)
        z = self.noise.normal((tf.shape(embeddings)[0], self.config.z_dim))
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            logits, mean_logsigma, fake_image, *text = self.adversarial(
                [embeddings, z, real, wrong, drawn], training=True
            )
            real_logits, wrong_logits, fake_logits = tf.split(logits, 3)
            losses = stackgan_losses(
                real_logits,
                fake_logits,
                wrong_logits,
                mean_logsigma,
                self.kl_coef,
                self.global_batch_size,
                fake_weights,
            )
            if text:
                real_text, _, fake_text = tf.split(text[0], 3)
                losses["d_text_loss"] = text_loss(real_text, self.standardised(embeddings), self.global_batch_size)
                losses["g_text_loss"] = text_loss(fake_text, self.standardised(drawn), self.global_batch_size)
                losses["d_loss"] += self.config.text_loss * losses["d_text_loss"]
                losses["g_loss"] += self.config.text_loss * losses["g_text_loss"]
            if self.stage1_gen is not None and self.config.stage1_l1 > 0:
                lr_image = self.stage1_gen([drawn, z], training=False)[0]
                losses["g_stage1_l1"] = stage1_l1(fake_image, lr_image, self.global_batch_size)
                losses["g_loss"] += self.config.stage1_l1 * losses["g_stage1_l1"]
            d_loss, g_loss = losses["d_loss"], losses["g_loss"]
            if self.fp16:
                d_loss, g_loss = self.d_opt.scale_loss(d_loss), self.g_opt.scale_loss(g_loss)
        # The fake logits serve both updates: D's gradient w.r.t. its own weights, G's through D.
        d_grads = d_tape.gradient(d_loss, self.dis.trainable_variables)
        g_grads = g_tape.gradient(g_loss, self.gen.trainable_variables)
        self.d_opt.apply(d_grads, self.dis.trainable_variables)
        self.g_opt.apply(g_grads, self.gen.trainable_variables)
        return losses

    def standardised(self, embeddings):
        """Embeddings as the text head regresses them: less the training mean, over its scale."""
        return (embeddings - self.text_mean) / self.text_scale

    def _distributed_step(self, batch):
        import tensorflow as tf

        per_replica = self.strategy.run(self._replica_step, args=(batch,))
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def _accumulating_steps(self, iterator, count):
        import tensorflow as tf

        for _ in tf.range(count):
            losses = self._step(next(iterator))
            for k, v in losses.items():
                self.loss_sums[k].assign_add(v)
        self.steps_summed.assign_add(tf.cast(count, tf.int64))

    def train_step(self, batch):
        """One D and one G update on a (distributed) batch of (images, embeddings, wrong_images), or on a dict batch
        of a TrainingInput's dataset (stackgan.training.input) with its source; returns the losses."""
        return self._step(batch)

    def train_steps(self, iterator, count):
        """`count` steps on batches from `iterator` in one compiled call, adding their losses to loss_sums."""
        import tensorflow as tf

        self._steps(iterator, tf.constant(count, tf.int64))

    def pop_mean_losses(self):
        """Mean of each loss over the steps since the last call (one host read), and reset the sums."""
        count = max(int(self.steps_summed.numpy()), 1)
        means = {k: float(v.numpy()) / count for k, v in self.loss_sums.items()}
        for v in self.loss_sums.values():
            v.assign(0.0)
        self.steps_summed.assign(0)
        return means

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


def stage1_l1(image, lr_image, global_batch_size):
    """Mean absolute difference between a Stage-II image shrunk to the Stage-I size (average pooling) and the Stage-I
    image it was drawn from, summed over this replica's examples / global batch."""
    from keras import ops

    factor = image.shape[1] // lr_image.shape[1]
    small = ops.average_pool(image, factor, factor)
    return ops.sum(ops.mean(ops.abs(small - lr_image), axis=(1, 2, 3))) / global_batch_size


def text_loss(predicted, target, global_batch_size):
    """Mean squared error of the embedding D's text head regressed from an image against the (standardised)
    embedding of its text, per dimension, summed over this replica's examples / global batch."""
    from keras import ops

    return ops.sum(ops.mean(ops.square(predicted - target), axis=-1)) / global_batch_size


def to_float_images(images):
    """uint8 [0, 255] batches from the input pipeline -> float32 [-1, 1]; float batches pass unchanged."""
    import tensorflow as tf

    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) * (1 / 127.5) - 1.0
    return images
