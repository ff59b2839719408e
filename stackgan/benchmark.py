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


# ---------------------------------------------------------------------------
# The training step under Keras' JAX backend (bench.py --backend jax)
# ---------------------------------------------------------------------------
class JaxTrainer:
    """StackGANTrainer's step (stackgan/training/step.py) as one jitted JAX function, on the project's own networks.

    Keras must run on its JAX backend (KERAS_BACKEND=jax before keras is imported). The networks are
    models.build_generator / build_discriminator / build_adversarial_model(with_real_images=True), as the trainer
    builds them; the optimizers are step.make_optimizer's (Adam, wrapped in a LossScaleOptimizer for fp16); the
    losses are step.stackgan_losses. One forward pass of the adversarial model (D once on the real, wrong and fake
    images) gives both losses; D's gradient is taken from the D loss, G's from the G loss through D, as the
    trainer's two tapes do. The variables live in `state` as arrays: `model.stateless_call` returns the updated
    non-trainable ones (batch-norm moving statistics, the conditioning noise's seed state), and each optimizer's
    variables are threaded through its own `stateless_apply` (Keras' fit() would sync only one optimizer's:
    keras #18881). `assign_back()` writes the state into the Keras variables."""

    def __init__(self, config, precision="off", stage1_gen=None):
        """config: a StageConfig (stage, widths, learning rates, beta1, kl_coef, batch_size, seed); precision: off,
        bf16 or fp16 (the networks are built under that dtype policy); stage1_gen: Stage-II's frozen Stage-I
        generator."""
        import jax
        import keras

        from stackgan import models
        from stackgan.runtime import dtype_policy
        from stackgan.training.step import make_optimizer

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"JaxTrainer needs Keras' JAX backend, not {keras.backend.backend()!r}")
        self.config, self.batch_size = config, config.batch_size
        keras.utils.set_random_seed(config.seed)
        with dtype_policy(precision):
            self.gen = models.build_generator(config.stage, config.network())
            self.dis = models.build_discriminator(config.stage, config.network())
            self.stage1_gen = stage1_gen
            self.adversarial = models.build_adversarial_model(self.gen, self.dis, stage1_gen, with_real_images=True)
            self.g_opt = make_optimizer(config.g_lr, config.beta1, precision)
            self.d_opt = make_optimizer(config.d_lr, config.beta1, precision)
            self.g_opt.build(self.gen.trainable_variables)
            self.d_opt.build(self.dis.trainable_variables)
        # Where G's and D's trainable variables sit in the adversarial model's list.
        position = {id(v): i for i, v in enumerate(self.adversarial.trainable_variables)}
        self._g_at = [position[id(v)] for v in self.gen.trainable_variables]
        self._d_at = [position[id(v)] for v in self.dis.trainable_variables]
        if sorted(self._g_at + self._d_at) != list(range(len(position))):
            raise RuntimeError("the adversarial model's trainable variables are not exactly G's and D's")
        self.state = self.read_state()
        self.key = jax.random.key(config.seed)  # z's noise
        self._train = jax.jit(self._train_step, donate_argnums=0)
        self._draw = jax.jit(self._draw_z)

    def read_state(self):
        """The step's state from the Keras variables: G's and D's trainable ones, the adversarial model's
        non-trainable ones (Stage-II's frozen Stage-I generator among them) and both optimizers'."""
        values = lambda variables: [v.value for v in variables]
        return dict(
            g=values(self.gen.trainable_variables),
            d=values(self.dis.trainable_variables),
            non_trainable=values(self.adversarial.non_trainable_variables),
            g_opt=values(self.g_opt.variables),
            d_opt=values(self.d_opt.variables),
        )

    def assign_back(self):
        """Write the state into the Keras variables (to save or inspect the networks)."""
        for variables, values in (
            (self.gen.trainable_variables, self.state["g"]),
            (self.dis.trainable_variables, self.state["d"]),
            (self.adversarial.non_trainable_variables, self.state["non_trainable"]),
            (self.g_opt.variables, self.state["g_opt"]),
            (self.d_opt.variables, self.state["d_opt"]),
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)

    def _forward(self, g, d, non_trainable, batch, z):
        """((d_loss, g_loss), (losses, non_trainable)) of one training-mode pass of the adversarial model."""
        from keras import ops

        from stackgan.training.step import stackgan_losses

        real, embeddings, wrong = batch
        trainable = [None] * (len(g) + len(d))
        for at, value in [*zip(self._g_at, g), *zip(self._d_at, d)]:
            trainable[at] = value
        (logits, mean_logsigma, _), non_trainable = self.adversarial.stateless_call(
            trainable, non_trainable, [embeddings, z, real, wrong], training=True
        )
        real_logits, wrong_logits, fake_logits = ops.split(logits, 3)
        losses = stackgan_losses(
            real_logits, fake_logits, wrong_logits, mean_logsigma, self.config.kl_coef, self.batch_size
        )
        return (losses["d_loss"], losses["g_loss"]), (losses, non_trainable)

    @staticmethod
    def _loss_scale(optimizer, optimizer_values):
        """The factor the optimizer scales its loss by (LossScaleOptimizer's dynamic scale; 1 otherwise)."""
        import keras

        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_values))):
            return keras.ops.convert_to_tensor(optimizer.scale_loss(1.0), "float32")

    def _train_step(self, state, batch, z):
        import jax

        forward = lambda g, d: self._forward(g, d, state["non_trainable"], batch, z)
        (d_loss, g_loss), backward, (losses, non_trainable) = jax.vjp(forward, state["g"], state["d"], has_aux=True)
        # Cotangents (s, 0) and (0, s): the gradients of s * d_loss and of s * g_loss, s each optimizer's loss scale.
        zero = jax.numpy.zeros_like(d_loss)
        d_grads = backward((self._loss_scale(self.d_opt, state["d_opt"]) * jax.numpy.ones_like(d_loss), zero))[1]
        g_grads = backward((zero, self._loss_scale(self.g_opt, state["g_opt"]) * jax.numpy.ones_like(g_loss)))[0]
        d, d_opt = self.d_opt.stateless_apply(state["d_opt"], d_grads, state["d"])
        g, g_opt = self.g_opt.stateless_apply(state["g_opt"], g_grads, state["g"])
        return dict(g=g, d=d, non_trainable=non_trainable, g_opt=g_opt, d_opt=d_opt), losses

    def _draw_z(self, key):
        import jax

        key, z_key = jax.random.split(key)
        return key, jax.random.normal(z_key, (self.batch_size, self.config.z_dim))

    def train_step(self, batch, z=None):
        """One D and one G update on a batch of (images, embeddings, wrong images), images float in [-1, 1]; z
        drawn from self.key unless given. Returns the losses of the forward pass before the update."""
        if z is None:
            self.key, z = self._draw(self.key)
        self.state, losses = self._train(self.state, batch, z)
        return losses

    def xla_flops(self, batch):
        """XLA's count of floating-point operations in the lowered step (a cross-check of step_flops), or None
        where the backend gives none."""
        import jax

        z = jax.numpy.zeros((self.batch_size, self.config.z_dim))
        cost = self._train.lower(self.state, batch, z).cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
        flops = (cost or {}).get("flops")
        return float(flops) if flops and flops > 0 else None


def multiply_adds(model):
    """Multiply-adds per image of a network's convolutions and dense layers (nested models included), as
    computed: an UpSampleConv2D counts the 2x2 convolution with 4x the filters it runs from 8x8 inputs up."""
    import math

    from keras import layers

    from stackgan.layers import UpSampleConv2D

    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):
            total += multiply_adds(layer)
        elif isinstance(layer, UpSampleConv2D):
            height, width, channels = layer.input.shape[1:]
            if height * width >= UpSampleConv2D.SMALLEST_FUSED:
                total += (height + 1) * (width + 1) * 4 * channels * 4 * layer.filters
            else:
                total += 4 * height * width * 9 * channels * layer.filters
        elif isinstance(layer, layers.Conv2D):
            kernel_h, kernel_w = layer.kernel_size
            channels = layer.input.shape[-1] // layer.groups
            total += math.prod(layer.output.shape[1:3]) * kernel_h * kernel_w * channels * layer.filters
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return total


def step_flops(gen, dis, stage1_gen, batch_size):
    """Floating-point operations of one training step, counted from the networks (2 per multiply-add): G's forward
    pass and both of its gradients (3x); D's forward pass on the real, wrong and fake images (3 batches), its
    two gradients for the D update and its input gradient for the G update (4x); Stage-II's frozen Stage-I
    generator forward only."""
    count = 3 * multiply_adds(gen) + 4 * 3 * multiply_adds(dis)
    if stage1_gen is not None:
        count += multiply_adds(stage1_gen)
    return 2 * count * batch_size


# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) from NVIDIA's data sheets, by the name JAX gives the
# device; more specific names first.
BF16_PEAK_TFLOPS = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


def bf16_peak_tflops(device_kind):
    """The data-sheet bf16 peak of a GPU named `device_kind` (JAX's device_kind), or None if unknown."""
    for name, peak in BF16_PEAK_TFLOPS:
        if name.lower() in device_kind.lower():
            return peak
    return None
