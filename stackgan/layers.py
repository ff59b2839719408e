"""Faster kernels behind the chapter's layers: the same weights and the same numbers as Keras' own.

- Conv2D: keras.layers.Conv2D whose gradient, with TensorFlow and gradient="forward", avoids oneDNN's backward
  kernels, which measured up to 8x slower than a forward convolution of the same size on an AVX2 CPU: the
  input gradient is computed by forward convolutions, small kernel gradients by matrix products.
- BatchNormalization: keras.layers.BatchNormalization that trains through TensorFlow's fused kernel.
- UpSampleConv2D: the chapter's UpSampling2D(2) + Conv2D(3x3, same) as one 2x2 convolution of the small input
  with 4x the filters (2.25x fewer multiply-adds).

Which of them a network uses is a `Kernels` value that models.py's builders take; CHAPTER_KERNELS builds Keras'
layers exactly as the chapter has them (bench.py's baseline).
"""

import dataclasses

import keras
from keras import layers, ops


@dataclasses.dataclass(frozen=True)
class Kernels:
    """How the chapter's layers are computed (never what they compute)."""

    conv_gradient: str = "forward"  # "forward": gradients by forward convolutions (TensorFlow); "native": Keras'
    fused_upsample: bool = True  # UpSampleConv2D instead of UpSampling2D + Conv2D
    fused_batch_norm: bool = True  # TensorFlow's fused batch-norm kernel in training


FAST_KERNELS = Kernels()
CHAPTER_KERNELS = Kernels(conv_gradient="native", fused_upsample=False, fused_batch_norm=False)


def _tensorflow():
    return keras.backend.backend() == "tensorflow"


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


def conv2d(inputs, kernel, stride=1, padding="valid", gradient="native"):
    """``ops.conv`` (channels_last, no dilation). With TensorFlow and gradient="forward", the gradient is
    computed by ``_input_gradient`` and ``_kernel_gradient`` where they apply, else by TensorFlow's public
    backward ops. Same values either way."""
    if gradient != "forward" or not _tensorflow():
        return ops.conv(inputs, kernel, strides=stride, padding=padding)
    import tensorflow as tf

    strides, pad = [1, stride, stride, 1], padding.upper()

    @tf.custom_gradient
    def convolve(x, k):
        y = tf.nn.conv2d(x, k, stride, pad)

        def grad(dy):
            dx = _input_gradient(dy, k, x.shape, stride, padding)
            if dx is None:
                dx = tf.nn.conv2d_transpose(dy, k, tf.shape(x), strides, pad)
            dk = _kernel_gradient(x, dy, k.shape, stride, padding)
            if dk is None:
                dk = tf.compat.v1.nn.conv2d_backprop_filter(x, tf.shape(k), dy, strides, pad)
            return dx, dk

        return y, grad

    return convolve(inputs, tf.identity(ops.convert_to_tensor(kernel)))  # a tensor, not a variable


@keras.saving.register_keras_serializable(package="stackgan")
class Conv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` (same weights, same outputs) whose gradient comes from ``conv2d``."""

    def __init__(self, *args, gradient="native", **kwargs):
        super().__init__(*args, **kwargs)
        plain = self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1) or self.groups != 1
        self.gradient = "native" if plain or len(set(self.strides)) != 1 else gradient

    def call(self, inputs):
        if self.gradient == "native":
            return super().call(inputs)
        y = conv2d(inputs, self.kernel, self.strides[0], self.padding, self.gradient)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y

    def get_config(self):
        return dict(super().get_config(), gradient=self.gradient)


@keras.saving.register_keras_serializable(package="stackgan")
class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (same weights, outputs and moving statistics) that trains through
    TensorFlow's fused kernel: one op for statistics and normalisation instead of Keras' chain of element-wise
    ops, 1.2-1.8x faster forward and backward on a CPU. Synchronized across replicas (tf.distribute) it stays
    Keras' own."""

    def call(self, inputs, training=None, mask=None):
        fusable = _tensorflow() and len(inputs.shape) == 4 and self.axis in (-1, 3) and self.scale and self.center
        if not (training and self.trainable and fusable) or self.synchronized or mask is not None:
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
            upsampled = ops.repeat(ops.repeat(inputs, 2, axis=1), 2, axis=2)
            y = conv2d(upsampled, k, padding="same", gradient=self.gradient)
            return y + self.bias if self.use_bias else y
        # Row taps of output phase a: a=0 reads rows i-1 (k[0]) and i (k[1] + k[2]); a=1 reads rows i
        # (k[0] + k[1]) and i+1 (k[2]). Columns likewise.
        rows = (ops.stack([k[0], k[1] + k[2]]), ops.stack([k[0] + k[1], k[2]]))
        phases = []
        for r in rows:
            phases.append(ops.stack([r[:, 0], r[:, 1] + r[:, 2]], axis=1))
            phases.append(ops.stack([r[:, 0] + r[:, 1], r[:, 2]], axis=1))
        padded = ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        z = conv2d(padded, ops.concatenate(phases, axis=-1), gradient=self.gradient)
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
