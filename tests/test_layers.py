"""stackgan.layers: the faster kernels behind the chapter's layers give Keras' numbers (outputs, gradients, moving
statistics)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stackgan.layers import BatchNormalization, Conv2D, UpSampleConv2D
from stackgan.runtime import dtype_policy


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("height", [4, 16])  # the plain path below 8x8, the fused 2x2 path from there
def test_upsample_conv_is_the_chapters_upsampling_then_conv(height):
    x = tf.constant(_rng().standard_normal((2, height, height + 2, 6)).astype("float32"))
    fused = UpSampleConv2D(5, use_bias=True, bias_initializer="random_normal")
    plain = keras.layers.Conv2D(5, 3, padding="same", use_bias=True)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_fused = fused(x)
        if not plain.built:
            plain.build((None, 2 * height, 2 * height + 4, 6))
            plain.set_weights(fused.get_weights())
        y_plain = plain(keras.layers.UpSampling2D(2)(x))
        loss_fused, loss_plain = tf.reduce_sum(y_fused**2), tf.reduce_sum(y_plain**2)
    assert y_fused.shape == (2, 2 * height, 2 * height + 4, 5)
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(loss_fused, [x, fused.kernel]), tape.gradient(loss_plain, [x, plain.kernel])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    assert [w.shape for w in fused.weights] == [(3, 3, 6, 5), (5,)]  # the chapter's parameters


@pytest.mark.parametrize(
    "size, kernel, strides, padding",
    [
        ((8, 6), 3, 1, "same"),  # up-sampling, residual and image convolutions
        ((10, 7), 3, 1, "valid"),  # Stage-II encoder after ZeroPadding2D
        ((5, 4), 1, 1, "same"),  # discriminator classifiers
        ((6, 5), 2, 1, "valid"),  # UpSampleConv2D's 2x2 form
        ((16, 8), 4, 2, "same"),  # down-sampling blocks
        ((10, 6), 4, 2, "valid"),  # Stage-II encoder after ZeroPadding2D
        ((7, 5), 4, 2, "same"),  # odd sizes: Keras' own input gradient
    ],
)
def test_conv2d_has_keras_outputs_and_gradients(size, kernel, strides, padding):
    """stackgan.layers.Conv2D computes its gradients with forward convolutions: the same numbers as Keras'."""
    x = tf.constant(_rng().standard_normal((3, *size, 4)).astype("float32"))
    ours = Conv2D(5, kernel, strides=strides, padding=padding, bias_initializer="random_normal", gradient="forward")
    theirs = keras.layers.Conv2D(5, kernel, strides=strides, padding=padding)
    ours_values, theirs_values = _outputs_and_gradients(ours, theirs, x)
    assert ours.gradient == "forward"
    for a, b in zip(ours_values, theirs_values):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _outputs_and_gradients(ours, theirs, x):
    """Both layers, theirs given our weights, in training mode: [output, d/dx, d/dweights..., other
    variables after the call] of each, under the loss sum(y cos y) of the output y."""
    for layer in (ours, theirs):
        layer.build(x.shape)
    theirs.set_weights(ours.get_weights())
    results = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            y32 = tf.cast(y, "float32")
            loss = tf.reduce_sum(y32 * tf.cos(y32))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_variables]), *layer.non_trainable_variables])
    return results


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_batch_norm_has_keras_outputs_gradients_and_moving_statistics(policy):
    x = tf.constant(_rng().standard_normal((4, 5, 3, 6)).astype("float32") * 3 + 2)
    with dtype_policy("off" if policy == "float32" else "bf16"):
        ours = BatchNormalization(beta_initializer="random_normal", gamma_initializer="random_normal")
        theirs = keras.layers.BatchNormalization()
        results = _outputs_and_gradients(ours, theirs, x)
        assert results[0][0].dtype == keras.config.dtype_policy().compute_dtype
    tolerance = 1e-4 if policy == "float32" else 2e-2
    for a, b in zip(*results):
        np.testing.assert_allclose(tf.cast(a, "float32"), tf.cast(b, "float32"), rtol=tolerance, atol=tolerance)
    assert not np.allclose(ours.moving_mean, 0.0)  # the moving statistics did move
