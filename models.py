"""StackGAN networks (Stage-I and Stage-II) for Keras 3, the chapter's layer for layer.

Layer types, kernel sizes, strides, paddings, bias flags, batch-norm placement and activations follow
the chapter; every channel width derives from ``gf_dim`` / ``df_dim``, so the defaults give its
512/256/128/64 (generator) and 64..2048 (discriminator) widths.

- Conditioning augmentation samples a fresh epsilon per sample and call from the ``SeedGenerator`` of a
  registered layer.
- ``KL_loss`` is KL(N(mean, sigma^2) || N(0, I)) with log-sigma the second half of its input.
- The embedding compressor lives inside each discriminator, so it trains with D; its output is
  replicated spatially with built-in layers (no ``Lambda`` anywhere: models load in safe mode).
- Discriminators return the logits of the final ``Dense(1)``; ``sigmoid(logits)`` is D's probability.
- ``build_adversarial_model`` chains G -> D for Stage-I and frozen Stage-I G -> Stage-II G -> D for
  Stage-II, optionally running D once on real, wrong and fake images together.

Mixed precision: the conditioning-augmentation path, the final ``tanh`` and the final ``Dense`` run in
float32, so image, logits and mean_logsigma outputs are float32 under mixed_float16 / mixed_bfloat16.
README's "Differences from the chapter" lists where and why this departs from the chapter's code.
"""

import contextlib

import keras
from keras import layers, ops

from settings import IMAGE_SIZE, NETWORK_DEFAULTS

LR_IMAGE_SIZE = IMAGE_SIZE[1]
HR_IMAGE_SIZE = IMAGE_SIZE[2]


# ---------------------------------------------------------------------------
# Conditioning augmentation
# ---------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="stackgan")
class ConditioningAugmentation(keras.layers.Layer):
    """``c = mean + exp(log_sigma) * eps`` with ``eps ~ N(0, I)`` per sample.

    Input: ``mean_logsigma`` of shape (B, 2 * condition_dim), the first half is
    the mean, the second half log(sigma).  Output: (B, condition_dim).
    Noise is sampled in training and inference mode alike (as in StackGAN).
    """

    def __init__(self, seed=None, condition_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.condition_dim = condition_dim
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        last = input_shape[-1]
        if last is None or last % 2:
            raise ValueError(
                f"ConditioningAugmentation expects an input of shape (batch, 2 * condition_dim), got {input_shape}"
            )
        if self.condition_dim is not None and last != 2 * self.condition_dim:
            raise ValueError(f"Input last dimension {last} != 2 * condition_dim ({2 * self.condition_dim})")
        self.condition_dim = last // 2
        super().build(input_shape)

    def call(self, inputs):
        mean = inputs[:, : self.condition_dim]
        log_sigma = inputs[:, self.condition_dim :]
        replica = _tf_replica_id()
        if replica is None:
            eps = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        else:
            # Under tf.distribute every replica holds an identical copy of the
            # seed state, so keras.random would give every replica the same
            # noise; fold the replica id into the seed instead.
            import tensorflow as tf

            seed = self.seed_generator.next()
            offset = tf.cast(replica + 1, seed.dtype) * 1_000_003
            seed = tf.stack([seed[0] + offset, seed[1]])
            eps = tf.random.stateless_normal(tf.shape(mean), seed=seed, dtype=mean.dtype)
        return mean + ops.exp(log_sigma) * eps

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1] // 2)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "condition_dim": self.condition_dim})
        return config


def _tf_replica_id():
    """Replica id inside a multi-replica tf.distribute step, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx.replica_id_in_sync_group


def _mean_logsigma(embedding, condition_dim, prefix="ca"):
    """The chapter's CA head: Dense(2*cond) + LeakyReLU(0.2), kept in float32."""
    x = layers.Dense(2 * condition_dim, dtype="float32", name=f"{prefix}_dense")(embedding)
    return layers.LeakyReLU(negative_slope=0.2, dtype="float32", name=f"{prefix}_leaky_relu")(x)


def _sample_c(mean_logsigma, prefix="ca"):
    return ConditioningAugmentation(dtype="float32", name=f"{prefix}_sample")(mean_logsigma)


def build_ca_model(embedding_dim=1024, condition_dim=128):
    """Embedding (B, embedding_dim) -> conditioning variable c (B, condition_dim)."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    c = _sample_c(_mean_logsigma(embedding, condition_dim))
    return keras.Model(embedding, c, name="ca_model")


def build_embedding_compressor_model(embedding_dim=1024, condition_dim=128):
    """Embedding (B, embedding_dim) -> compressed embedding (B, condition_dim)."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    x = layers.Dense(condition_dim, name="compressor_dense")(embedding)
    x = layers.ReLU(name="compressor_relu")(x)
    return keras.Model(embedding, x, name="embedding_compressor")


def _batch_norm():
    """BatchNormalization; synchronized across replicas when built under a multi-replica tf.distribute
    strategy, so that per-replica batches normalise like the global batch on one device."""
    synchronized = False
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        synchronized = tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return BatchNormalization(synchronized=synchronized)


def _spatial_tile(v, height, width, name=None):
    """(B, C) -> (B, height, width, C), every position holding the vector."""
    channels = v.shape[-1]
    x = layers.RepeatVector(height * width, name=None if name is None else f"{name}_repeat")(v)
    return layers.Reshape((height, width, channels), name=None if name is None else f"{name}_reshape")(x)


def joint_block(c, x):
    """The chapter's joint block: tile c to (H, W, cond) and concat [c, x] on channels."""
    height, width = x.shape[1], x.shape[2]
    c_tiled = _spatial_tile(c, height, width)
    return layers.Concatenate(axis=-1)([c_tiled, x])


def residual_block(x, channels):
    """The chapter's residual block (its convolutions do have biases)."""
    shortcut = x
    y = Conv2D(channels, kernel_size=3, strides=1, padding="same")(x)
    y = _batch_norm()(y)
    y = layers.ReLU()(y)
    y = Conv2D(channels, kernel_size=3, strides=1, padding="same")(y)
    y = _batch_norm()(y)
    y = layers.Add()([y, shortcut])
    return layers.ReLU()(y)


# ---------------------------------------------------------------------------
# The chapter's Conv2D and BatchNormalization with faster kernels: same weights, same numbers
# ---------------------------------------------------------------------------
_CPU_ONLY = None


def _tensorflow_on_cpu():
    global _CPU_ONLY
    if _CPU_ONLY is None:
        _CPU_ONLY = False
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            _CPU_ONLY = not tf.config.list_physical_devices("GPU")
    return _CPU_ONLY


def _same_padding_before(size, kernel, stride):
    """Padding TensorFlow's 'same' puts before the first row (or column)."""
    out = -(-size // stride)
    return max((out - 1) * stride + kernel - size, 0) // 2


def _input_gradient(dy, kernel, input_shape, stride, padding):
    """d(loss)/d(input) of a 2-D convolution, computed with forward convolutions (channels_last).

    Stride 1: one convolution of the padded dy with the flipped kernel. Stride 2 with a 4x4 kernel and even
    input sizes (every strided convolution of the chapter): each of the four input phases (even/odd row,
    even/odd column) receives a 2x2 convolution of dy; one convolution with the four phase kernels side by
    side, then depth_to_space, gives all of them. None where neither applies.
    """
    import tensorflow as tf

    kh, kw = kernel.shape[0], kernel.shape[1]
    h, w = input_shape[1], input_shape[2]
    ho, wo = dy.shape[1], dy.shape[2]
    if None in (h, w, ho, wo):
        return None
    before = (
        (0, 0) if padding == "valid" else (_same_padding_before(h, kh, stride), _same_padding_before(w, kw, stride))
    )
    flipped = tf.transpose(kernel, (0, 1, 3, 2))
    if stride == 1:
        pads = [[0, 0], [kh - 1 - before[0], h - ho + before[0]], [kw - 1 - before[1], w - wo + before[1]], [0, 0]]
        return tf.nn.conv2d(tf.pad(dy, pads), flipped[::-1, ::-1], 1, "VALID")
    if stride != 2 or (kh, kw) != (4, 4) or h % 2 or w % 2:
        return None
    # Input row 2n + a gets dy rows n + q - 1 and n + q through kernel rows 2 + r and r.
    kernels, offsets = [], []
    for r, q in (divmod(a + before[0], 2)[::-1] for a in (0, 1)):
        for s, t in (divmod(b + before[1], 2)[::-1] for b in (0, 1)):
            rows = tf.gather(flipped, [2 + r, r], axis=0)
            kernels.append(tf.gather(rows, [2 + s, s], axis=1))
            offsets.append((q, t))
    right = (max(0, h // 2 + 1 - ho), max(0, w // 2 + 1 - wo))
    z = tf.nn.conv2d(tf.pad(dy, [[0, 0], [1, right[0]], [1, right[1]], [0, 0]]), tf.concat(kernels, -1), 1, "VALID")
    c = kernel.shape[2]
    parts = [z[:, q : q + h // 2, t : t + w // 2, i * c : (i + 1) * c] for i, (q, t) in enumerate(offsets)]
    return tf.nn.depth_to_space(tf.concat(parts, -1), 2)


def _kernel_gradient(x, dy, kernel_shape, stride, padding):
    """d(loss)/d(kernel) of a 2-D convolution with outputs of at most 8x8 positions, as one matrix product per
    kernel tap; None for larger outputs."""
    import tensorflow as tf

    kh, kw, c, f = kernel_shape
    h, w, ho, wo = x.shape[1], x.shape[2], dy.shape[1], dy.shape[2]
    if None in (h, w, ho, wo) or ho * wo > 64:
        return None
    if padding == "same":
        pad_h, pad_w = max((ho - 1) * stride + kh - h, 0), max((wo - 1) * stride + kw - w, 0)
        x = tf.pad(x, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
    dy = tf.reshape(dy, (-1, f))
    taps = [
        [
            tf.matmul(
                tf.reshape(
                    x[:, u : u + stride * (ho - 1) + 1 : stride, v : v + stride * (wo - 1) + 1 : stride], (-1, c)
                ),
                dy,
                transpose_a=True,
            )
            for v in range(kw)
        ]
        for u in range(kh)
    ]
    return tf.stack([tf.stack(row) for row in taps])


def conv2d(inputs, kernel, stride=1, padding="valid"):
    """``ops.conv`` (channels_last, no dilation). With TensorFlow on a CPU, the gradient is computed without
    oneDNN's backward kernels, which measured up to 8x slower than a forward convolution of the same size on
    an AVX2 CPU: the input gradient by forward convolutions (``_input_gradient``), the kernel gradient of
    small outputs by matrix products (``_kernel_gradient``). Same values."""
    if not _tensorflow_on_cpu():
        return ops.conv(inputs, kernel, strides=stride, padding=padding)
    import tensorflow as tf

    @tf.custom_gradient
    def convolve(x, k):
        y = tf.nn.conv2d(x, k, stride, padding.upper())

        def gradient(dy):
            dx = _input_gradient(dy, k, x.shape, stride, padding)
            if dx is None:
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x),
                    filter=k,
                    out_backprop=dy,
                    strides=[1, stride, stride, 1],
                    padding=padding.upper(),
                )
            dk = _kernel_gradient(x, dy, k.shape, stride, padding)
            if dk is None:
                dk = tf.raw_ops.Conv2DBackpropFilter(
                    input=x,
                    filter_sizes=tf.shape(k),
                    out_backprop=dy,
                    strides=[1, stride, stride, 1],
                    padding=padding.upper(),
                )
            return dx, dk

        return y, gradient

    return convolve(inputs, tf.identity(ops.convert_to_tensor(kernel)))  # a tensor, not a variable


@keras.saving.register_keras_serializable(package="stackgan")
class Conv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` (same weights, same outputs) whose gradient comes from ``conv2d``; built
    inside ``chapter_layers()``, it keeps Keras' own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.keras_gradient = _chapter_layers_only

    def convolution_op(self, inputs, kernel):
        plain = self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1) or self.groups != 1
        if self.keras_gradient or plain or len(set(self.strides)) != 1:
            return super().convolution_op(inputs, kernel)
        return conv2d(inputs, kernel, self.strides[0], self.padding)


_chapter_layers_only = False


@contextlib.contextmanager
def chapter_layers():
    """Networks built inside the block use Keras' layers as the chapter does: UpSampling2D then Conv2D for each
    up-sampling step (no UpSampleConv2D) and Keras' convolution gradient. The weights are the same either
    way, except that a file written before UpSampleConv2D names the up-sampling layers as the chapter does.
    For bench.py's chapter loop and for loading such files."""
    global _chapter_layers_only
    saved, _chapter_layers_only = _chapter_layers_only, True
    try:
        yield
    finally:
        _chapter_layers_only = saved


@keras.saving.register_keras_serializable(package="stackgan")
class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (same weights, outputs and moving statistics) that trains through
    TensorFlow's fused kernel: one op for statistics and normalisation instead of Keras' chain of element-wise
    ops, 1.2-1.8x faster forward and backward on a CPU. Built inside ``chapter_layers()``, it stays Keras'."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.keras_kernels = _chapter_layers_only

    def call(self, inputs, training=None, mask=None):
        fusable = keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4 and self.axis in (-1, 3)
        plain = self.keras_kernels or self.synchronized or self.renorm or not (self.scale and self.center)
        if not (training and self.trainable and fusable) or plain or mask is not None:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras: statistics in float32 under mixed precision too
        y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"), epsilon=self.epsilon, is_training=True
        )
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
        variance = unbiased_variance * (count - 1.0) / count  # Keras keeps the biased batch variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


@keras.saving.register_keras_serializable(package="stackgan")
class UpSampleConv2D(Conv2D):
    """The chapter's ``UpSampling2D(2)`` then ``Conv2D(filters, 3, padding="same")``, computed in one step.

    Same 3x3 kernel, same output. On a nearest-upsampled input, each of the four output phases (even/odd
    row, even/odd column) sees only a 2x2 patch of the small input, through taps of the 3x3 kernel summed
    together; so one 2x2 convolution of the small input with 4x the filters, interleaved, gives the result
    with 16 multiply-adds per output pair of channels instead of 36 (2.25x fewer) and no upsampled copy.
    Inputs under 8x8 take the plain upsample-then-convolve path: there the 2x2 form measured slower on a CPU
    (oneDNN), 1,337 against 1,212 ms for the chapter's 4x4x1024 -> 512 block, batch 64, forward and backward.
    """

    SMALLEST_FUSED = 8 * 8

    def __init__(self, filters, **kwargs):
        kwargs.setdefault("kernel_size", 3)
        kwargs.setdefault("padding", "same")
        super().__init__(filters, **kwargs)
        if tuple(self.kernel_size) != (3, 3) or self.padding != "same" or tuple(self.strides) != (1, 1):
            raise ValueError("UpSampleConv2D is a 3x3, stride-1, 'same' convolution after 2x upsampling")

    def call(self, inputs):
        k = self.kernel  # (3, 3, in, out)
        height, width, c = inputs.shape[1], inputs.shape[2], self.filters
        if height is None or width is None or height * width < self.SMALLEST_FUSED:
            y = conv2d(ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2), k, padding="same")
            return y + self.bias if self.use_bias else y
        # Row taps of output phase a: a=0 reads rows i-1 (k[0]) and i (k[1] + k[2]); a=1 reads rows i
        # (k[0] + k[1]) and i+1 (k[2]). Columns likewise.
        rows = (ops.stack([k[0], k[1] + k[2]]), ops.stack([k[0] + k[1], k[2]]))
        phases = []
        for r in rows:
            phases.append(ops.stack([r[:, 0], r[:, 1] + r[:, 2]], axis=1))
            phases.append(ops.stack([r[:, 0] + r[:, 1], r[:, 2]], axis=1))
        z = conv2d(ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]]), ops.concatenate(phases, axis=-1))
        parts = [
            z[:, a : a + height, b : b + width, (2 * a + b) * c : (2 * a + b + 1) * c] for a in (0, 1) for b in (0, 1)
        ]
        y = ops.reshape(ops.stack(parts, axis=3), (-1, height, width, 2, 2, c))
        y = ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, 2 * height, 2 * width, c))
        if self.use_bias:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)


def _up_block(x, channels):
    """The chapter's UpSampling2D(2) + Conv2D(3x3, same, no bias) (as one exact layer outside
    chapter_layers()), then BN and ReLU."""
    if not _chapter_layers_only:
        x = UpSampleConv2D(channels, use_bias=False)(x)
    else:
        x = layers.UpSampling2D(size=(2, 2))(x)
        x = Conv2D(channels, kernel_size=3, strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm()(x)
    return layers.ReLU()(x)


def _to_image(x):
    x = Conv2D(3, kernel_size=3, strides=1, padding="same", use_bias=False)(x)
    return layers.Activation("tanh", dtype="float32", name="image")(x)


def _down_block(x, channels, batch_norm=True):
    x = Conv2D(channels, (4, 4), strides=2, padding="same", use_bias=False)(x)
    if batch_norm:
        x = _batch_norm()(x)
    return layers.LeakyReLU(negative_slope=0.2)(x)


def _compressed_text(embedding, condition_dim, height, width):
    """Embedding compressor (trains with D) + spatial replication."""
    x = layers.Dense(condition_dim, name="compressor_dense")(embedding)
    x = layers.ReLU(name="compressor_relu")(x)
    return _spatial_tile(x, height, width, name="compressor_tile")


def _classifier(x, compressed, df_dim):
    """Concat text, 1x1 conv 8df (with bias), BN, LeakyReLU, Flatten, Dense(1) logits."""
    x = layers.Concatenate(axis=-1)([x, compressed])
    x = Conv2D(df_dim * 8, kernel_size=1, strides=1, padding="same")(x)
    x = _batch_norm()(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.Flatten()(x)
    return layers.Dense(1, dtype="float32", name="logits")(x)


# ---------------------------------------------------------------------------
# Stage I
# ---------------------------------------------------------------------------
def build_stage1_generator(gf_dim=128, z_dim=100, condition_dim=128, embedding_dim=1024):
    """[embedding, z] -> [image (B,64,64,3) tanh, mean_logsigma (B, 2*cond)]."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    z = keras.Input(shape=(z_dim,), name="z")
    mean_logsigma = _mean_logsigma(embedding, condition_dim)
    c = _sample_c(mean_logsigma)

    x = layers.Concatenate(axis=1)([c, z])
    x = layers.Dense(gf_dim * 8 * 4 * 4, use_bias=False)(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((4, 4, gf_dim * 8))(x)
    for channels in (gf_dim * 4, gf_dim * 2, gf_dim, gf_dim // 2):
        x = _up_block(x, channels)
    image = _to_image(x)
    return keras.Model([embedding, z], [image, mean_logsigma], name="stage1_generator")


def build_stage1_discriminator(df_dim=64, condition_dim=128, embedding_dim=1024):
    """[image (B,64,64,3), embedding] -> logits (B, 1)."""
    image = keras.Input(shape=(LR_IMAGE_SIZE, LR_IMAGE_SIZE, 3), name="image")
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")

    x = _down_block(image, df_dim, batch_norm=False)
    for channels in (df_dim * 2, df_dim * 4, df_dim * 8):
        x = _down_block(x, channels)

    compressed = _compressed_text(embedding, condition_dim, x.shape[1], x.shape[2])
    logits = _classifier(x, compressed, df_dim)
    return keras.Model([image, embedding], logits, name="stage1_discriminator")


# ---------------------------------------------------------------------------
# Stage II
# ---------------------------------------------------------------------------
def build_stage2_generator(gf_dim=128, condition_dim=128, embedding_dim=1024):
    """[embedding, lr_image (B,64,64,3)] -> [image (B,256,256,3), mean_logsigma]."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    lr_image = keras.Input(shape=(LR_IMAGE_SIZE, LR_IMAGE_SIZE, 3), name="lr_image")
    mean_logsigma = _mean_logsigma(embedding, condition_dim)
    c = _sample_c(mean_logsigma)

    # Image encoder: 64x64 -> 16x16x(4 gf).
    x = layers.ZeroPadding2D(padding=(1, 1))(lr_image)
    x = Conv2D(gf_dim, kernel_size=(3, 3), strides=1, use_bias=False)(x)
    x = layers.ReLU()(x)
    for channels in (gf_dim * 2, gf_dim * 4):
        x = layers.ZeroPadding2D(padding=(1, 1))(x)
        x = Conv2D(channels, kernel_size=(4, 4), strides=2, use_bias=False)(x)
        x = _batch_norm()(x)
        x = layers.ReLU()(x)

    # Joint block + residual blocks.
    x = joint_block(c, x)
    x = layers.ZeroPadding2D(padding=(1, 1))(x)
    x = Conv2D(gf_dim * 4, kernel_size=(3, 3), strides=1, use_bias=False)(x)
    x = _batch_norm()(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = residual_block(x, gf_dim * 4)

    # Up-sampling: 16x16 -> 256x256.
    for channels in (gf_dim * 4, gf_dim * 2, gf_dim, gf_dim // 2):
        x = _up_block(x, channels)
    image = _to_image(x)
    return keras.Model([embedding, lr_image], [image, mean_logsigma], name="stage2_generator")


def build_stage2_discriminator(df_dim=64, condition_dim=128, embedding_dim=1024):
    """[image (B,256,256,3), embedding] -> logits (B, 1)."""
    image = keras.Input(shape=(HR_IMAGE_SIZE, HR_IMAGE_SIZE, 3), name="image")
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")

    x = _down_block(image, df_dim, batch_norm=False)
    for channels in (df_dim * 2, df_dim * 4, df_dim * 8, df_dim * 16, df_dim * 32):
        x = _down_block(x, channels)
    x = Conv2D(df_dim * 16, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm()(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = Conv2D(df_dim * 8, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm()(x)

    x2 = Conv2D(df_dim * 2, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x2 = _batch_norm()(x2)
    x2 = layers.LeakyReLU(negative_slope=0.2)(x2)
    x2 = Conv2D(df_dim * 2, (3, 3), strides=1, padding="same", use_bias=False)(x2)
    x2 = _batch_norm()(x2)
    x2 = layers.LeakyReLU(negative_slope=0.2)(x2)
    x2 = Conv2D(df_dim * 8, (3, 3), strides=1, padding="same", use_bias=False)(x2)
    x2 = _batch_norm()(x2)

    x = layers.Add()([x, x2])
    x = layers.LeakyReLU(negative_slope=0.2)(x)

    compressed = _compressed_text(embedding, condition_dim, x.shape[1], x.shape[2])
    logits = _classifier(x, compressed, df_dim)
    return keras.Model([image, embedding], logits, name="stage2_discriminator")


# ---------------------------------------------------------------------------
# Adversarial wrapper and loss
# ---------------------------------------------------------------------------
def build_adversarial_model(gen_model, dis_model, stage1_gen=None, with_real_images=False):
    """[embedding, z] -> [logits, mean_logsigma, fake_image]: the chapter's G -> D wrapper.

    Stage-I: fake, mls = gen([e, z]); logits = dis([fake, e]).
    Stage-II (``stage1_gen`` given): the Stage-I generator is frozen
    (``trainable = False``, inference mode) and produces the low-resolution
    image that feeds the Stage-II generator.

    ``with_real_images=True`` (what training uses): inputs [embedding, z,
    real_image, wrong_image]; ``logits`` (3B, 1) are D's on the real, wrong and
    fake images, in that order, from ONE discriminator call. Its batch norm then
    normalises the three batches together: called on the fakes alone it would
    subtract their batch mean, hiding from D a colour cast that every fake of the
    batch shares.

    The discriminator is NOT frozen here (in Keras 3 that would also empty its
    trainable variables for its own step and put its BN in inference mode);
    the generator step must apply gradients to ``gen_model.trainable_variables``
    only.
    """
    embedding_dim = gen_model.inputs[0].shape[-1]
    z_source = stage1_gen if stage1_gen is not None else gen_model
    z_dim = z_source.inputs[1].shape[-1]

    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    z = keras.Input(shape=(z_dim,), name="z")
    if stage1_gen is None:
        fake, mean_logsigma = gen_model([embedding, z])
    else:
        stage1_gen.trainable = False
        lr_image = stage1_gen([embedding, z], training=False)[0]
        fake, mean_logsigma = gen_model([embedding, lr_image])
    inputs = [embedding, z]
    if with_real_images:
        real = keras.Input(shape=fake.shape[1:], name="real_image")
        wrong = keras.Input(shape=fake.shape[1:], name="wrong_image")
        inputs += [real, wrong]
        images = layers.Concatenate(axis=0, name="real_wrong_fake")([real, wrong, fake])
        embeddings = layers.Concatenate(axis=0, name="embedding_x3")([embedding] * 3)
        logits = dis_model([images, embeddings])
    else:
        logits = dis_model([fake, embedding])
    name = "stage1_adversarial" if stage1_gen is None else "stage2_adversarial"
    return keras.Model(inputs, [logits, mean_logsigma, fake], name=name)


def KL_loss(y_true, y_pred):
    """KL(N(mean, sigma^2) || N(0, I)) averaged over batch and dims; y_true ignored."""
    del y_true
    y_pred = ops.cast(y_pred, "float32")
    cond = y_pred.shape[-1] // 2
    mean = y_pred[:, :cond]
    log_sigma = y_pred[:, cond:]
    loss = -log_sigma + 0.5 * (-1.0 + ops.exp(2.0 * log_sigma) + ops.square(mean))
    return ops.mean(loss)


# ---------------------------------------------------------------------------
# Config-driven builders
# ---------------------------------------------------------------------------
def _cfg(config):
    merged = dict(NETWORK_DEFAULTS)
    if config:
        merged.update({k: config[k] for k in NETWORK_DEFAULTS if k in config})
    return merged


def build_generator(stage, config=None):
    cfg = _cfg(config)
    if stage == 1:
        return build_stage1_generator(cfg["gf_dim"], cfg["z_dim"], cfg["condition_dim"], cfg["embedding_dim"])
    if stage == 2:
        return build_stage2_generator(cfg["gf_dim"], cfg["condition_dim"], cfg["embedding_dim"])
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")


def build_discriminator(stage, config=None):
    cfg = _cfg(config)
    if stage == 1:
        return build_stage1_discriminator(cfg["df_dim"], cfg["condition_dim"], cfg["embedding_dim"])
    if stage == 2:
        return build_stage2_discriminator(cfg["df_dim"], cfg["condition_dim"], cfg["embedding_dim"])
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")
