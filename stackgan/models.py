"""StackGAN networks (Stage-I and Stage-II) for Keras 3, the chapter's layer for layer.

Layer types, kernel sizes, strides, paddings, bias flags, batch-norm placement and activations follow
the chapter; every channel width derives from ``gf_dim`` / ``df_dim``, so the defaults give its
512/256/128/64 (generator) and 64..2048 (discriminator) widths.

- Both generators run ``build_ca_model`` (the CA network) on the embedding; its conditioning augmentation samples a
  fresh epsilon per sample and call from the ``SeedGenerator`` of a registered layer, and ``generate_c`` draws c.
  ``KL_loss`` is KL(N(mean, sigma^2) || N(0, I)) with log-sigma the second half of its input;
  ``custom_generator_loss`` is the chapter's binary cross-entropy, which the training step computes every loss with.
- Both discriminators run ``build_embedding_compressor_model`` on their text input, so it trains with D; its output
  is replicated spatially with built-in layers (no ``Lambda`` anywhere: models load in safe mode).
- Discriminators return the logits of the final ``Dense(1)``; ``sigmoid(logits)`` is D's probability.
- ``build_adversarial_model`` chains G -> D for Stage-I and frozen Stage-I G -> Stage-II G -> D for
  Stage-II, optionally running D once on real, wrong and fake images together.
- Options beyond the chapter, off by default: ``ConditionalAffine`` (c read in every up-sampling block,
  --generator-condition film) and ``ResidualImage`` (Stage-II draws a change to the enlarged Stage-I image,
  --residual).

The layers behind the convolutions and batch norms (stackgan/layers.py) compute the chapter's numbers faster;
``kernels=CHAPTER_KERNELS`` builds Keras' own layers instead.

Mixed precision: the conditioning-augmentation path, the final ``tanh`` and the final ``Dense`` run in
float32, so image, logits and mean_logsigma outputs are float32 under mixed_float16 / mixed_bfloat16.
README's "Differences from the chapter" lists where and why this departs from the chapter's code.
"""

import keras
from keras import layers, ops

from stackgan.config import IMAGE_SIZE, NETWORK_DEFAULTS
from stackgan.layers import FAST_KERNELS, BatchNormalization, Conv2D, UpSampleConv2D

# Every width defaults to the chapter's, as StageConfig holds them.
GF, DF, Z, COND, EMB = (NETWORK_DEFAULTS[k] for k in ("gf_dim", "df_dim", "z_dim", "condition_dim", "embedding_dim"))

# Seeds of different noise streams of the conditioning augmentation (tf.distribute replicas, the two stages of the
# API) are this far apart.
NOISE_STREAM_STRIDE = 1_000_003

LR_IMAGE_SIZE = IMAGE_SIZE[1]
HR_IMAGE_SIZE = IMAGE_SIZE[2]


# ---------------------------------------------------------------------------
# Conditioning augmentation
# ---------------------------------------------------------------------------
def generate_c(mean_logsigma, epsilon):
    """The chapter's generate_c: c = mean + exp(log_sigma) * epsilon, mean the first half of mean_logsigma and
    log_sigma the second; epsilon ~ N(0, I) comes per sample from ConditioningAugmentation (the chapter drew one
    epsilon for the whole batch)."""
    condition_dim = mean_logsigma.shape[-1] // 2
    return mean_logsigma[:, :condition_dim] + ops.exp(mean_logsigma[:, condition_dim:]) * epsilon


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
        shape = (ops.shape(inputs)[0], self.condition_dim)
        replica = _tf_replica_id()
        if replica is None:
            epsilon = keras.random.normal(shape, dtype=inputs.dtype, seed=self.seed_generator)
        else:
            # Under tf.distribute every replica holds an identical copy of the
            # seed state, so keras.random would give every replica the same
            # noise; fold the replica id into the seed instead.
            import tensorflow as tf

            seed = self.seed_generator.next()
            offset = tf.cast(replica + 1, seed.dtype) * NOISE_STREAM_STRIDE
            seed = tf.stack([seed[0] + offset, seed[1]])
            epsilon = tf.random.stateless_normal(shape, seed=seed, dtype=inputs.dtype)
        return generate_c(inputs, epsilon)

    def reseed(self, seed, stream=0):
        """Restart the noise from `seed`, as a new layer built with seed + stream * NOISE_STREAM_STRIDE would draw
        it: different streams (the two stages' layers) draw different noise from one seed."""
        for variable in self.non_trainable_variables:  # the seed generator's state is the layer's only variable
            variable.assign(ops.cast([int(seed) + int(stream) * NOISE_STREAM_STRIDE, 0], variable.dtype))

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


def build_ca_model(embedding_dim=EMB, condition_dim=COND):
    """The chapter's conditioning augmentation network: embedding (B, embedding_dim) -> Dense(2 * condition_dim) +
    LeakyReLU(0.2) = mean_logsigma -> c (B, condition_dim) sampled by generate_c. Both generators run it; it also
    returns mean_logsigma, which their KL term reads. Kept in float32 under mixed precision."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    x = layers.Dense(2 * condition_dim, dtype="float32", name="ca_dense")(embedding)
    mean_logsigma = layers.LeakyReLU(negative_slope=0.2, dtype="float32", name="ca_leaky_relu")(x)
    c = ConditioningAugmentation(dtype="float32", name="ca_sample")(mean_logsigma)
    return keras.Model(embedding, [c, mean_logsigma], name="ca_model")


@keras.saving.register_keras_serializable(package="stackgan")
class ConditionalAffine(keras.layers.Layer):
    """FiLM (Perez et al., 2018), as conditional batch norm uses it: [x (B, H, W, C), c (B, D)] ->
    x * (1 + gamma) + beta, with (gamma, beta) = c @ kernel + bias per channel. Kernel and bias start at zero, so
    the block starts as the chapter's. Not in the chapter (--generator-condition film)."""

    def build(self, input_shapes):
        x_shape, c_shape = input_shapes
        channels = x_shape[-1]
        self.kernel = self.add_weight(shape=(c_shape[-1], 2 * channels), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(2 * channels,), initializer="zeros", name="bias")
        super().build(input_shapes)

    def call(self, inputs):
        x, c = inputs
        film = ops.matmul(ops.cast(c, self.compute_dtype), ops.cast(self.kernel, self.compute_dtype))
        film = film + ops.cast(self.bias, self.compute_dtype)
        gamma, beta = ops.split(film[:, None, None, :], 2, axis=-1)
        return x * (1.0 + gamma) + beta

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


@keras.saving.register_keras_serializable(package="stackgan")
class ResidualImage(keras.layers.Layer):
    """[change (B, H, W, 3), base image (B, H, W, 3) in [-1, 1]] -> tanh(change + atanh(base)), the base clipped to
    +-0.99: the image is the base where the change is zero (Stage-II's --residual, not in the chapter). float32."""

    def call(self, inputs):
        change, base = (ops.cast(t, "float32") for t in inputs)
        return ops.tanh(change + ops.arctanh(ops.clip(base, -0.99, 0.99)))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def build_embedding_compressor_model(embedding_dim=EMB, condition_dim=COND):
    """The chapter's embedding compressor: embedding (B, embedding_dim) -> Dense(condition_dim) + ReLU. Each
    discriminator runs it on its text input, so it trains with D (the chapter only ever called its predict)."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    x = layers.Dense(condition_dim, name="compressor_dense")(embedding)
    x = layers.ReLU(name="compressor_relu")(x)
    return keras.Model(embedding, x, name="embedding_compressor")


def conditioning_layers(model):
    """The ConditioningAugmentation layers of a generator (inside its CA network)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, ConditioningAugmentation):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += conditioning_layers(layer)
    return found


def _conv(kernels, filters, kernel_size, **kwargs):
    """Conv2D: Keras' own with CHAPTER_KERNELS, else stackgan.layers.Conv2D (same weights and outputs)."""
    if kernels.conv_gradient == "native":
        return layers.Conv2D(filters, kernel_size, **kwargs)
    return Conv2D(filters, kernel_size, gradient=kernels.conv_gradient, **kwargs)


def _batch_norm(kernels):
    """BatchNormalization; synchronized across replicas when built under a multi-replica tf.distribute
    strategy, so that per-replica batches normalise like the global batch on one device."""
    synchronized = False
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        synchronized = tf.distribute.has_strategy() and tf.distribute.get_strategy().num_replicas_in_sync > 1
    return (BatchNormalization if kernels.fused_batch_norm else layers.BatchNormalization)(synchronized=synchronized)


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


def residual_block(x, channels, kernels=FAST_KERNELS):
    """The chapter's residual block (its convolutions do have biases)."""
    shortcut = x
    y = _conv(kernels, channels, kernel_size=3, strides=1, padding="same")(x)
    y = _batch_norm(kernels)(y)
    y = layers.ReLU()(y)
    y = _conv(kernels, channels, kernel_size=3, strides=1, padding="same")(y)
    y = _batch_norm(kernels)(y)
    y = layers.Add()([y, shortcut])
    return layers.ReLU()(y)


def _up_block(x, channels, kernels, c=None):
    """The chapter's UpSampling2D(2) + Conv2D(3x3, same, no bias) (one exact UpSampleConv2D layer unless
    kernels.fused_upsample is off), then BN (scaled and shifted by c when given: ConditionalAffine) and ReLU."""
    if kernels.fused_upsample:
        x = UpSampleConv2D(channels, use_bias=False, gradient=kernels.conv_gradient)(x)
    else:
        x = layers.UpSampling2D(size=(2, 2))(x)
        x = _conv(kernels, channels, kernel_size=3, strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm(kernels)(x)
    if c is not None:
        x = ConditionalAffine()([x, c])
    return layers.ReLU()(x)


def _to_image(x, kernels):
    x = _conv(kernels, 3, kernel_size=3, strides=1, padding="same", use_bias=False)(x)
    return layers.Activation("tanh", dtype="float32", name="image")(x)


def _down_block(x, channels, kernels, batch_norm=True):
    x = _conv(kernels, channels, (4, 4), strides=2, padding="same", use_bias=False)(x)
    if batch_norm:
        x = _batch_norm(kernels)(x)
    return layers.LeakyReLU(negative_slope=0.2)(x)


def _compressed_text(embedding, condition_dim, height, width):
    """The embedding compressor (trains with D), its output replicated at every position of D's last feature map."""
    compressed = build_embedding_compressor_model(embedding.shape[-1], condition_dim)(embedding)
    return _spatial_tile(compressed, height, width, name="compressor_tile")


def _text_head(x, embedding_dim):
    """An optional head (not in the chapter; --text-loss): the sentence embedding regressed from D's image features
    by one Dense layer, float32 (B, embedding_dim)."""
    x = layers.Flatten(name="text_head_flatten")(x)
    return layers.Dense(embedding_dim, dtype="float32", name="text_head")(x)


def _projection_classifier(x, embedding, df_dim, kernels):
    """The chapter's classifier without the tiled text: 1x1 conv 8df (with bias), BN, LeakyReLU, Flatten, Dense(1),
    plus a projection term (Miyato & Koyama, 2018; not in the chapter, the demo's --matching projection): the inner
    product of those features with a linear map of the embedding. The text then enters the logit linearly, so that
    a description D never saw with a real image (a new combination of attributes) is judged by its parts."""
    x = _conv(kernels, df_dim * 8, kernel_size=1, strides=1, padding="same")(x)
    x = _batch_norm(kernels)(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    unconditional = layers.Dense(1, dtype="float32", name="logits")(layers.Flatten()(x))
    pooled = layers.GlobalAveragePooling2D(name="projection_pool")(x)
    text = layers.UnitNormalization(name="projection_unit")(embedding)  # any embedding scale
    projected = layers.Dense(df_dim * 8, use_bias=False, name="projection")(text)
    matching = layers.Dot(axes=1, dtype="float32", name="projection_dot")([pooled, projected])
    return layers.Add(dtype="float32", name="projection_logits")([unconditional, matching])


def _classifier(x, compressed, df_dim, kernels):
    """Concat text, 1x1 conv 8df (with bias), BN, LeakyReLU, Flatten, Dense(1) logits."""
    x = layers.Concatenate(axis=-1)([x, compressed])
    x = _conv(kernels, df_dim * 8, kernel_size=1, strides=1, padding="same")(x)
    x = _batch_norm(kernels)(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.Flatten()(x)
    return layers.Dense(1, dtype="float32", name="logits")(x)


def _judge(x, embedding, df_dim, condition_dim, kernels, text_head, matching):
    """A discriminator's outputs from its image features x: the chapter's classifier on x beside the tiled
    compressed embedding (matching "concat") or the projection classifier; with text_head, [logits, the embedding
    regressed from x]."""
    if matching == "projection":
        logits = _projection_classifier(x, embedding, df_dim, kernels)
    else:
        compressed = _compressed_text(embedding, condition_dim, x.shape[1], x.shape[2])
        logits = _classifier(x, compressed, df_dim, kernels)
    return [logits, _text_head(x, embedding.shape[-1])] if text_head else logits


# ---------------------------------------------------------------------------
# Stage I
# ---------------------------------------------------------------------------
def build_stage1_generator(
    gf_dim=GF, z_dim=Z, condition_dim=COND, embedding_dim=EMB, kernels=FAST_KERNELS, generator_condition="input"
):
    """[embedding, z] -> [image (B,64,64,3) tanh, mean_logsigma (B, 2*cond)]; generator_condition "film" also feeds c
    to every up-sampling block (ConditionalAffine)."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    z = keras.Input(shape=(z_dim,), name="z")
    c, mean_logsigma = build_ca_model(embedding_dim, condition_dim)(embedding)

    x = layers.Concatenate(axis=1)([c, z])
    x = layers.Dense(gf_dim * 8 * 4 * 4, use_bias=False)(x)
    x = layers.ReLU()(x)
    x = layers.Reshape((4, 4, gf_dim * 8))(x)
    film = c if generator_condition == "film" else None
    for channels in (gf_dim * 4, gf_dim * 2, gf_dim, gf_dim // 2):
        x = _up_block(x, channels, kernels, film)
    image = _to_image(x, kernels)
    return keras.Model([embedding, z], [image, mean_logsigma], name="stage1_generator")


def build_stage1_discriminator(
    df_dim=DF, condition_dim=COND, embedding_dim=EMB, kernels=FAST_KERNELS, text_head=False, matching="concat"
):
    """[image (B,64,64,3), embedding] -> logits (B, 1); with text_head, [logits, the embedding regressed from the
    image (B, embedding_dim)]."""
    image = keras.Input(shape=(LR_IMAGE_SIZE, LR_IMAGE_SIZE, 3), name="image")
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")

    x = _down_block(image, df_dim, kernels, batch_norm=False)
    for channels in (df_dim * 2, df_dim * 4, df_dim * 8):
        x = _down_block(x, channels, kernels)

    outputs = _judge(x, embedding, df_dim, condition_dim, kernels, text_head, matching)
    return keras.Model([image, embedding], outputs, name="stage1_discriminator")


# ---------------------------------------------------------------------------
# Stage II
# ---------------------------------------------------------------------------
def build_stage2_generator(
    gf_dim=GF,
    condition_dim=COND,
    embedding_dim=EMB,
    kernels=FAST_KERNELS,
    generator_condition="input",
    residual=False,
):
    """[embedding, lr_image (B,64,64,3)] -> [image (B,256,256,3), mean_logsigma]; generator_condition "film" also
    feeds c to every up-sampling block (ConditionalAffine); residual: the last convolution draws a change to the
    Stage-I image enlarged bilinearly (ResidualImage) instead of the image itself."""
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")
    lr_image = keras.Input(shape=(LR_IMAGE_SIZE, LR_IMAGE_SIZE, 3), name="lr_image")
    c, mean_logsigma = build_ca_model(embedding_dim, condition_dim)(embedding)

    # Image encoder: 64x64 -> 16x16x(4 gf).
    x = layers.ZeroPadding2D(padding=(1, 1))(lr_image)
    x = _conv(kernels, gf_dim, kernel_size=(3, 3), strides=1, use_bias=False)(x)
    x = layers.ReLU()(x)
    for channels in (gf_dim * 2, gf_dim * 4):
        x = layers.ZeroPadding2D(padding=(1, 1))(x)
        x = _conv(kernels, channels, kernel_size=(4, 4), strides=2, use_bias=False)(x)
        x = _batch_norm(kernels)(x)
        x = layers.ReLU()(x)

    # Joint block + residual blocks.
    x = joint_block(c, x)
    x = layers.ZeroPadding2D(padding=(1, 1))(x)
    x = _conv(kernels, gf_dim * 4, kernel_size=(3, 3), strides=1, use_bias=False)(x)
    x = _batch_norm(kernels)(x)
    x = layers.ReLU()(x)
    for _ in range(4):
        x = residual_block(x, gf_dim * 4, kernels)

    # Up-sampling: 16x16 -> 256x256.
    film = c if generator_condition == "film" else None
    for channels in (gf_dim * 4, gf_dim * 2, gf_dim, gf_dim // 2):
        x = _up_block(x, channels, kernels, film)
    if residual:
        change = _conv(kernels, 3, kernel_size=3, strides=1, padding="same", use_bias=False)(x)
        enlarged = layers.UpSampling2D(HR_IMAGE_SIZE // LR_IMAGE_SIZE, interpolation="bilinear")(lr_image)
        image = ResidualImage(dtype="float32", name="image")([change, enlarged])
    else:
        image = _to_image(x, kernels)
    return keras.Model([embedding, lr_image], [image, mean_logsigma], name="stage2_generator")


def build_stage2_discriminator(
    df_dim=DF, condition_dim=COND, embedding_dim=EMB, kernels=FAST_KERNELS, text_head=False, matching="concat"
):
    """[image (B,256,256,3), embedding] -> logits (B, 1); with text_head, [logits, the regressed embedding]."""
    image = keras.Input(shape=(HR_IMAGE_SIZE, HR_IMAGE_SIZE, 3), name="image")
    embedding = keras.Input(shape=(embedding_dim,), name="embedding")

    x = _down_block(image, df_dim, kernels, batch_norm=False)
    for channels in (df_dim * 2, df_dim * 4, df_dim * 8, df_dim * 16, df_dim * 32):
        x = _down_block(x, channels, kernels)
    x = _conv(kernels, df_dim * 16, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm(kernels)(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = _conv(kernels, df_dim * 8, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x = _batch_norm(kernels)(x)

    x2 = _conv(kernels, df_dim * 2, (1, 1), strides=1, padding="same", use_bias=False)(x)
    x2 = _batch_norm(kernels)(x2)
    x2 = layers.LeakyReLU(negative_slope=0.2)(x2)
    x2 = _conv(kernels, df_dim * 2, (3, 3), strides=1, padding="same", use_bias=False)(x2)
    x2 = _batch_norm(kernels)(x2)
    x2 = layers.LeakyReLU(negative_slope=0.2)(x2)
    x2 = _conv(kernels, df_dim * 8, (3, 3), strides=1, padding="same", use_bias=False)(x2)
    x2 = _batch_norm(kernels)(x2)

    x = layers.Add()([x, x2])
    x = layers.LeakyReLU(negative_slope=0.2)(x)

    outputs = _judge(x, embedding, df_dim, condition_dim, kernels, text_head, matching)
    return keras.Model([image, embedding], outputs, name="stage2_discriminator")


# ---------------------------------------------------------------------------
# Adversarial wrapper and loss
# ---------------------------------------------------------------------------
def build_adversarial_model(gen_model, dis_model, stage1_gen=None, with_real_images=False, fake_embedding=False):
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

    ``fake_embedding=True`` (with real images): a fifth input, the embedding the
    fake is drawn from and judged with (a mixed condition, say), where the real
    and wrong images are judged with ``embedding``.

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
    drawn = embedding
    if with_real_images and fake_embedding:
        drawn = keras.Input(shape=(embedding_dim,), name="fake_embedding")
    if stage1_gen is None:
        fake, mean_logsigma = gen_model([drawn, z])
    else:
        stage1_gen.trainable = False
        lr_image = stage1_gen([drawn, z], training=False)[0]
        fake, mean_logsigma = gen_model([drawn, lr_image])
    inputs = [embedding, z]
    if with_real_images:
        real = keras.Input(shape=fake.shape[1:], name="real_image")
        wrong = keras.Input(shape=fake.shape[1:], name="wrong_image")
        inputs += [real, wrong] + ([drawn] if fake_embedding else [])
        images = layers.Concatenate(axis=0, name="real_wrong_fake")([real, wrong, fake])
        embeddings = layers.Concatenate(axis=0, name="embedding_x3")([embedding, embedding, drawn])
        outputs = dis_model([images, embeddings])
    else:
        outputs = dis_model([fake, embedding])
    logits, *text = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    name = "stage1_adversarial" if stage1_gen is None else "stage2_adversarial"
    return keras.Model(inputs, [logits, mean_logsigma, fake] + text, name=name)


def KL_loss(y_true, y_pred):
    """KL(N(mean, sigma^2) || N(0, I)) averaged over batch and dims; y_true ignored."""
    del y_true
    y_pred = ops.cast(y_pred, "float32")
    cond = y_pred.shape[-1] // 2
    mean = y_pred[:, :cond]
    log_sigma = y_pred[:, cond:]
    loss = -log_sigma + 0.5 * (-1.0 + ops.exp(2.0 * log_sigma) + ops.square(mean))
    return ops.mean(loss)


def custom_generator_loss(y_true, y_pred, sample_weight=None):
    """The chapter's custom_generator_loss: binary cross-entropy of D's output against the target labels, averaged.
    Our discriminators return logits, so the sigmoid is applied inside (from_logits). sample_weight (B,), not in the
    chapter: how much each example counts (the average is still over all B)."""
    loss = ops.binary_crossentropy(y_true, y_pred, from_logits=True)
    if sample_weight is not None:
        loss = loss * ops.reshape(ops.cast(sample_weight, loss.dtype), (-1,) + (1,) * (len(loss.shape) - 1))
    return ops.mean(loss)


# ---------------------------------------------------------------------------
# Config-driven builders
# ---------------------------------------------------------------------------
def _cfg(config):
    merged = dict(NETWORK_DEFAULTS)
    if config:
        merged.update({k: config[k] for k in NETWORK_DEFAULTS if k in config})
    return merged


def build_generator(stage, config=None, kernels=FAST_KERNELS):
    """The stage's generator at the widths of `config` (a dict with NETWORK_DEFAULTS' keys; missing ones default)."""
    cfg = _cfg(config)
    if stage == 1:
        return build_stage1_generator(
            cfg["gf_dim"], cfg["z_dim"], cfg["condition_dim"], cfg["embedding_dim"], kernels, cfg["generator_condition"]
        )
    if stage == 2:
        return build_stage2_generator(
            cfg["gf_dim"],
            cfg["condition_dim"],
            cfg["embedding_dim"],
            kernels,
            cfg["generator_condition"],
            cfg["residual"],
        )
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")


def build_discriminator(stage, config=None, kernels=FAST_KERNELS, text_head=False, matching="concat"):
    """The stage's discriminator; text_head adds the regressed-embedding output (--text-loss); matching "projection"
    judges the text by a projection term instead of the chapter's tiled compressed text ("concat")."""
    cfg = _cfg(config)
    args = (cfg["df_dim"], cfg["condition_dim"], cfg["embedding_dim"], kernels, text_head, matching)
    if stage == 1:
        return build_stage1_discriminator(*args)
    if stage == 2:
        return build_stage2_discriminator(*args)
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")
