import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import models as m
from stackgan import api
from stackgan import models as sm
from stackgan.runtime import dtype_policy

SMALL = {
    "gf_dim": 16,
    "df_dim": 8,
    "z_dim": 100,
    "condition_dim": 128,
    "embedding_dim": 1024,
}
TINY = {
    "gf_dim": 8,
    "df_dim": 4,
    "z_dim": 100,
    "condition_dim": 128,
    "embedding_dim": 1024,
}


def _rng(seed=0):
    return np.random.default_rng(seed)


def _emb(batch, dim=1024, seed=0):
    return _rng(seed).standard_normal((batch, dim)).astype("float32")


def _img(batch, size, seed=1):
    return _rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype("float32")


def _all_layers(model):
    """Every layer of a model, including those of the models nested in it."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found += _all_layers(layer)
    return found


def _ca_layers(model):
    return [lyr for lyr in _all_layers(model) if isinstance(lyr, m.ConditioningAugmentation)]


def _snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


# --------------------------------------------------------------------------- defaults
def test_default_parameter_counts_and_shapes():
    ca = m.build_ca_model()
    assert ca.count_params() == 262_400
    assert [tuple(o.shape) for o in ca.outputs] == [(None, 128), (None, 256)]  # c, mean_logsigma

    comp = m.build_embedding_compressor_model()
    assert comp.count_params() == 131_200
    assert tuple(comp.output.shape) == (None, 128)

    g1 = m.build_stage1_generator()
    assert g1.count_params() == 10_270_400
    assert [tuple(o.shape) for o in g1.outputs] == [(None, 64, 64, 3), (None, 256)]

    d1 = m.build_stage1_discriminator()
    assert d1.count_params() == 3_097_601 + 131_200
    assert tuple(d1.output.shape) == (None, 1)

    g2 = m.build_stage2_generator()
    assert g2.count_params() == 28_649_536
    assert [tuple(o.shape) for o in g2.outputs] == [(None, 256, 256, 3), (None, 256)]

    d2 = m.build_stage2_discriminator()
    assert d2.count_params() == 48_486_401 + 131_200
    assert tuple(d2.output.shape) == (None, 1)

    # Config-driven builders give the same networks (missing keys -> defaults).
    assert m.build_generator(1, {}).count_params() == 10_270_400
    assert m.build_discriminator(2, {"unrelated": 1}).count_params() == 48_617_601
    with pytest.raises(ValueError):
        m.build_generator(3, {})

    for model in (ca, comp, g1, d1, g2, d2):
        assert not any(isinstance(lyr, keras.layers.Lambda) for lyr in _all_layers(model))

    # One batch-1 forward pass through the default Stage-I networks.
    img, mls = g1([_emb(1), _emb(1, 100)], training=False)
    assert img.shape == (1, 64, 64, 3) and mls.shape == (1, 256)
    assert float(tf.reduce_max(tf.abs(img))) <= 1.0
    assert d1([img, tf.constant(_emb(1))], training=False).shape == (1, 1)


# --------------------------------------------------------------------------- small widths
@pytest.mark.parametrize("cfg", [SMALL, TINY], ids=["gf16_df8", "gf8_df4"])
def test_small_width_forward(cfg):
    b = 2
    e, z = tf.constant(_emb(b)), tf.constant(_emb(b, cfg["z_dim"], seed=2))
    g1 = m.build_generator(1, cfg)
    d1 = m.build_discriminator(1, cfg)
    g2 = m.build_generator(2, cfg)
    d2 = m.build_discriminator(2, cfg)

    lr, mls = g1([e, z], training=True)
    assert lr.shape == (b, 64, 64, 3) and mls.shape == (b, 2 * cfg["condition_dim"])
    assert d1([lr, e], training=True).shape == (b, 1)
    hr, mls2 = g2([e, lr], training=True)
    assert hr.shape == (b, 256, 256, 3) and mls2.shape == (b, 2 * cfg["condition_dim"])
    assert d2([hr, e], training=True).shape == (b, 1)

    # Widths derive from gf_dim / df_dim as in the chapter.
    gf, df = cfg["gf_dim"], cfg["df_dim"]
    g1_convs = [lyr.filters for lyr in g1.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert g1_convs == [4 * gf, 2 * gf, gf, gf // 2, 3]
    d2_convs = [lyr.filters for lyr in d2.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert d2_convs == [
        df,
        2 * df,
        4 * df,
        8 * df,
        16 * df,
        32 * df,
        16 * df,
        8 * df,
        2 * df,
        2 * df,
        8 * df,
        8 * df,
    ]


def test_joint_and_residual_blocks():
    c = keras.Input((5,))
    x = keras.Input((4, 3, 7))
    joined = m.joint_block(c, x)
    assert tuple(joined.shape) == (None, 4, 3, 12)
    out = m.residual_block(joined, 12)
    model = keras.Model([c, x], [joined, out])
    convs = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.Conv2D)]
    assert len(convs) == 2 and all(cv.use_bias and cv.kernel_size == (3, 3) for cv in convs)
    cv = np.arange(10, dtype="float32").reshape(2, 5)
    xv = _rng().standard_normal((2, 4, 3, 7)).astype("float32")
    jv, ov = model([cv, xv])
    # c comes first and is replicated at every spatial position.
    np.testing.assert_array_equal(jv[:, :, :, :5], np.broadcast_to(cv[:, None, None], (2, 4, 3, 5)))
    np.testing.assert_array_equal(jv[:, :, :, 5:], xv)
    assert ov.shape == (2, 4, 3, 12) and float(tf.reduce_min(ov)) >= 0.0


# --------------------------------------------------------------------------- CA noise
def test_conditioning_augmentation_noise_per_sample_and_per_call():
    ca = m.build_ca_model()
    e = np.repeat(_emb(1), 2, axis=0)  # two identical rows
    for training in (True, False):
        c1 = ca(e, training=training)[0].numpy()
        c2 = ca(e, training=training)[0].numpy()
        assert c1.shape == (2, 128)
        assert not np.allclose(c1[0], c1[1]), "rows with the same embedding share eps"
        assert not np.allclose(c1, c2), "two calls gave the same noise"


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import models as m
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        ca = m.build_ca_model(embedding_dim=16, condition_dim=4)
    e = tf.constant(np.ones((1, 16), "float32"))

    @tf.function
    def step():
        return strategy.run(lambda: ca(e, training=True)[0])

    first = [v.numpy() for v in strategy.experimental_local_results(step())]
    second = [v.numpy() for v in strategy.experimental_local_results(step())]
    assert not np.allclose(first[0], first[1]), "replicas drew the same noise"
    assert not np.allclose(first[0], second[0]), "two steps drew the same noise"
    print("OK")
    """
)


def test_conditioning_augmentation_noise_differs_across_replicas():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        check=False,
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


def test_conditioning_augmentation_statistics_and_config():
    layer = m.ConditioningAugmentation(seed=3)
    n, cond = 4096, 8
    mean = np.full((n, cond), 3.0, "float32")
    log_sigma = np.full((n, cond), math.log(2.0), "float32")
    c = layer(np.concatenate([mean, log_sigma], axis=1)).numpy()
    assert c.shape == (n, cond)
    assert abs(c.mean() - 3.0) < 0.1
    assert abs(c.std() - 2.0) < 0.1
    # Every column (dimension) and row gets its own noise.
    assert np.corrcoef(c[:, 0], c[:, 1])[0, 1] < 0.1

    clone = m.ConditioningAugmentation.from_config(layer.get_config())
    assert clone.seed == 3 and clone.condition_dim == cond
    # Same seed -> same first draw (seeded, reproducible).
    fresh = m.ConditioningAugmentation(seed=3)
    zeros = np.zeros((2, 2 * cond), "float32")
    np.testing.assert_allclose(fresh(zeros), m.ConditioningAugmentation(seed=3)(zeros))


# --------------------------------------------------------------------------- KL loss
def test_kl_loss_closed_form():
    zeros = np.zeros((3, 256), "float32")
    assert float(m.KL_loss(None, zeros)) == pytest.approx(0.0, abs=1e-7)

    # cond = 2: mean = [1, 2], log_sigma = [0, ln 2]
    # dim0: -0 + 0.5 * (-1 + 1 + 1) = 0.5
    # dim1: -ln2 + 0.5 * (-1 + 4 + 4) = 3.5 - ln2
    y = np.array([[1.0, 2.0, 0.0, math.log(2.0)]], "float32")
    expected = (0.5 + 3.5 - math.log(2.0)) / 2
    assert float(m.KL_loss(None, y)) == pytest.approx(expected, rel=1e-6)

    r = _rng(5).standard_normal((4, 256)).astype("float32") * 0.5
    mu, ls = r[:, :128].astype("float64"), r[:, 128:].astype("float64")
    ref = np.mean(-ls + 0.5 * (-1 + np.exp(2 * ls) + mu**2))
    assert float(m.KL_loss(np.zeros((4, 1)), r)) == pytest.approx(ref, rel=1e-5)


def test_generate_c_is_the_mean_plus_sigma_times_epsilon():
    mean_logsigma = np.array([[1.0, 2.0, 0.0, math.log(2.0)]], "float32")  # mean (1, 2), sigma (1, 2)
    epsilon = np.array([[0.5, -1.0]], "float32")
    np.testing.assert_allclose(m.generate_c(mean_logsigma, epsilon), [[1.5, 0.0]], rtol=1e-6)


def test_custom_generator_loss_is_binary_cross_entropy_of_the_logits():
    logits = np.array([[0.0], [2.0], [-3.0]], "float32")
    target = np.full((3, 1), 0.9, "float32")
    expected = np.mean(np.logaddexp(0, logits) - target * logits)
    assert float(m.custom_generator_loss(target, logits)) == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------- saving
def _set_same_noise(a, b, seed=7):
    for la, lb in zip(_ca_layers(a), _ca_layers(b), strict=True):
        la.reseed(seed)
        lb.reseed(seed)


@pytest.mark.parametrize("stage", [1, 2])
def test_save_load_round_trips(stage, tmp_path):
    size = 64 if stage == 1 else 256
    e = _emb(2)
    g = m.build_generator(stage, TINY)
    d = m.build_discriminator(stage, TINY)
    second = _emb(2, TINY["z_dim"], seed=3) if stage == 1 else _img(2, 64, seed=3)
    x_img = _img(2, size)

    # Move BN statistics away from their initial values so they are tested too.
    g([e, second], training=True)
    d([x_img, e], training=True)
    ref_logits = d([x_img, e], training=False).numpy()

    # .keras, safe mode (no Lambda, registered CA layer).
    for model in (g, d):
        model.save(tmp_path / f"{model.name}.keras")
    g_k = keras.saving.load_model(tmp_path / f"{g.name}.keras", safe_mode=True)
    d_k = keras.saving.load_model(tmp_path / f"{d.name}.keras", safe_mode=True)
    np.testing.assert_array_equal(d_k([x_img, e], training=False).numpy(), ref_logits)
    for w1, w2 in zip(g.weights, g_k.weights, strict=True):
        np.testing.assert_array_equal(w1.numpy(), w2.numpy())
    _set_same_noise(g, g_k)
    ref_img, ref_mls = g([e, second], training=False)
    img, mls = g_k([e, second], training=False)
    np.testing.assert_array_equal(mls.numpy(), ref_mls.numpy())
    np.testing.assert_array_equal(img.numpy(), ref_img.numpy())

    # .weights.h5 into freshly built models.
    g.save_weights(tmp_path / "g.weights.h5")
    d.save_weights(tmp_path / "d.weights.h5")
    g_w = m.build_generator(stage, TINY)
    d_w = m.build_discriminator(stage, TINY)
    g_w.load_weights(tmp_path / "g.weights.h5")
    d_w.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_array_equal(d_w([x_img, e], training=False).numpy(), ref_logits)
    _set_same_noise(g, g_w)
    ref_img, ref_mls = g([e, second], training=False)
    img, mls = g_w([e, second], training=False)
    np.testing.assert_array_equal(mls.numpy(), ref_mls.numpy())
    np.testing.assert_array_equal(img.numpy(), ref_img.numpy())


# --------------------------------------------------------------------------- adversarial
def _generator_step(adv, gen):
    opt = keras.optimizers.Adam(1e-2)
    e, z = _emb(2), _emb(2, adv.inputs[1].shape[-1], seed=4)
    with tf.GradientTape() as tape:
        logits, mls, fake = adv([e, z], training=True)
        loss = tf.reduce_mean(
            keras.losses.binary_crossentropy(tf.fill(tf.shape(logits), 0.9), logits, from_logits=True)
        ) + 2.0 * m.KL_loss(None, mls)
    grads = tape.gradient(loss, gen.trainable_variables)
    assert all(g is not None for g in grads)
    opt.apply(grads, gen.trainable_variables)
    return logits, mls, fake


@pytest.mark.parametrize("stage", [1, 2])
def test_adversarial_step_trains_only_generator(stage):
    if stage == 1:
        s1 = None
        gen, dis = m.build_generator(1, TINY), m.build_discriminator(1, TINY)
        adv = m.build_adversarial_model(gen, dis)
    else:
        s1 = m.build_generator(1, TINY)
        gen, dis = m.build_generator(2, TINY), m.build_discriminator(2, TINY)
        adv = m.build_adversarial_model(gen, dis, s1)
        assert not s1.trainable
    assert [tuple(i.shape) for i in adv.inputs] == [(None, 1024), (None, TINY["z_dim"])]
    size = 64 if stage == 1 else 256
    assert [tuple(o.shape) for o in adv.outputs] == [
        (None, 1),
        (None, 256),
        (None, size, size, 3),
    ]
    assert dis.trainable and dis.trainable_variables, "D must stay trainable for its own step"

    d_before = _snapshot(dis.trainable_variables)
    g_before = _snapshot(gen.trainable_variables)
    s1_before = _snapshot(s1.weights) if s1 is not None else None

    logits, mls, fake = _generator_step(adv, gen)
    assert logits.shape == (2, 1) and mls.shape == (2, 256) and fake.shape == (2, size, size, 3)

    for a, b in zip(d_before, dis.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    if s1 is not None:
        for a, b in zip(s1_before, s1.weights, strict=True):
            np.testing.assert_array_equal(a, b.numpy())
    changed = [not np.array_equal(a, b.numpy()) for a, b in zip(g_before, gen.trainable_variables, strict=True)]
    assert all(changed), "some generator weights did not change"


@pytest.mark.parametrize("stage", [1, 2])
def test_adversarial_with_real_images_runs_d_once_on_real_wrong_fake(stage):
    s1 = m.build_generator(1, TINY) if stage == 2 else None
    gen, dis = m.build_generator(stage, TINY), m.build_discriminator(stage, TINY)
    adv = m.build_adversarial_model(gen, dis, s1, with_real_images=True)
    size = 64 if stage == 1 else 256
    assert [tuple(i.shape) for i in adv.inputs] == [
        (None, 1024),
        (None, TINY["z_dim"]),
        (None, size, size, 3),
        (None, size, size, 3),
    ]
    e, z = _emb(2), _emb(2, TINY["z_dim"], seed=4)
    real, wrong = _img(2, size, seed=1), _img(2, size, seed=2)
    # Inference mode: each logit is D's on its own image, in the order real, wrong, fake.
    logits, mls, fake = adv([e, z, real, wrong], training=False)
    assert logits.shape == (6, 1) and mls.shape == (2, 256) and fake.shape == (2, size, size, 3)
    for part, images in zip(np.split(logits.numpy(), 3), (real, wrong, fake)):
        np.testing.assert_allclose(part, dis([np.asarray(images), e], training=False).numpy(), rtol=1e-4, atol=1e-5)
    # Training mode: batch norm sees the three batches together, not the real batch alone.
    logits, _, _ = adv([e, z, real, wrong], training=True)
    assert not np.allclose(logits.numpy()[:2], dis([real, e], training=True).numpy(), atol=1e-4)


# --------------------------------------------------------------------------- mixed precision
@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_outputs_are_float32(mode):
    e = _emb(2)
    with dtype_policy(mode):
        s1 = m.build_generator(1, TINY)
        d1 = m.build_discriminator(1, TINY)
        g2 = m.build_generator(2, TINY)
        d2 = m.build_discriminator(2, TINY)
    assert keras.config.dtype_policy().name == "float32"  # the policy is back; the networks keep theirs
    assert s1.get_layer("image").compute_dtype == "float32"
    logits, mls, fake = m.build_adversarial_model(s1, d1)([e, _emb(2, 100)], training=True)
    assert (logits.dtype, mls.dtype, fake.dtype) == (tf.float32,) * 3
    logits2, mls2, fake2 = m.build_adversarial_model(g2, d2, s1)([e, _emb(2, 100)], training=True)
    assert (logits2.dtype, mls2.dtype, fake2.dtype) == (tf.float32,) * 3
    assert fake2.shape == (2, 256, 256, 3)
    assert np.all(np.isfinite(logits2.numpy())) and np.all(np.isfinite(fake2.numpy()))
    assert m.KL_loss(None, mls2).dtype == tf.float32
    # A conv layer really computes in the reduced precision.
    conv = next(lyr for lyr in g2.layers if isinstance(lyr, keras.layers.Conv2D))
    assert conv.compute_dtype == {"bf16": "bfloat16", "fp16": "float16"}[mode]


def test_sample_images_runs_the_chain_compiled_with_the_models_outputs():
    """api.sample_images (one tf.function for the whole chain) gives what calling the two generators one
    after the other gives, from the same conditioning-noise state; batches of other sizes run through the
    same compiled chain, which the same models reuse."""
    config = dict(gf_dim=8, df_dim=4, z_dim=10, condition_dim=4, embedding_dim=1024)
    gens = [m.build_generator(1, config), m.build_generator(2, config)]
    e, z = _emb(5), _rng(2).standard_normal((5, 10)).astype("float32")

    def reseed():
        for i, layer in enumerate(layer for g in gens for layer in _ca_layers(g)):
            layer.reseed(10 + i)

    reseed()
    low, _ = gens[0]([e, z], training=False)
    high, _ = gens[1]([e, np.asarray(low)], training=False)
    reseed()
    images = api.sample_images(gens, e, z, batch_size=5)
    np.testing.assert_allclose(images[0], low, atol=1e-5)
    np.testing.assert_allclose(images[1], high, atol=1e-4)
    split = api.sample_images(gens, e, z, batch_size=3)  # batches of 3 and 2
    assert [i.shape for i in split] == [(5, 64, 64, 3), (5, 256, 256, 3)]


# --------------------------------------------------------------------------- --generator-condition film
@pytest.mark.parametrize("stage", [1, 2])
def test_film_generator_starts_as_the_chapter_and_then_reads_c_in_every_up_block(stage):
    """--generator-condition film adds one ConditionalAffine after each up-sampling block's batch norm: (condition_dim
    + 1) * 2 * channels weights each, zero at first, so with the chapter generator's weights it draws the chapter's
    image; once its weights move, the same features and c give another image. Under bf16 its outputs stay float32."""
    chapter = m.build_generator(stage, TINY)
    film = m.build_generator(stage, dict(TINY, generator_condition="film"))
    affine = [lyr for lyr in film.layers if isinstance(lyr, sm.ConditionalAffine)]
    gf, cond = TINY["gf_dim"], TINY["condition_dim"]
    up_channels = [4 * gf, 2 * gf, gf, gf // 2]
    assert [lyr.kernel.shape for lyr in affine] == [(cond, 2 * c) for c in up_channels]
    assert film.count_params() - chapter.count_params() == sum((cond + 1) * 2 * c for c in up_channels)

    affine_ids = {id(v) for lyr in affine for v in lyr.weights}
    chapter_weights = iter(chapter.get_weights())
    film.set_weights([w.numpy() if id(w) in affine_ids else next(chapter_weights) for w in film.weights])
    e = tf.constant(_emb(2))
    second = tf.constant(_emb(2, TINY["z_dim"], seed=2) if stage == 1 else _img(2, 64))
    for layer in sm.conditioning_layers(chapter) + sm.conditioning_layers(film):
        layer.reseed(5)
    same = chapter([e, second], training=False)[0].numpy()
    np.testing.assert_allclose(film([e, second], training=False)[0].numpy(), same, atol=1e-5)

    affine[-1].kernel.assign(np.full(affine[-1].kernel.shape, 0.05, np.float32))
    for layer in sm.conditioning_layers(film):
        layer.reseed(5)
    assert np.abs(film([e, second], training=False)[0].numpy() - same).max() > 1e-3

    with dtype_policy("bf16"):
        reduced = m.build_generator(stage, dict(TINY, generator_condition="film"))
    image, mls = reduced([e, second], training=True)
    assert (image.dtype, mls.dtype) == (tf.float32, tf.float32) and np.all(np.isfinite(image.numpy()))


def test_residual_stage2_draws_a_change_to_the_enlarged_stage1_image():
    """Stage-II's --residual: the last convolution's output is added (before tanh) to the Stage-I image enlarged
    bilinearly, so with that convolution at zero the image is the enlarged Stage-I image (within its +-0.99 clip);
    the chapter's Stage-II has the same layers and no such path."""
    gen = m.build_generator(2, dict(TINY, residual=True))
    chapter = m.build_generator(2, TINY)
    assert gen.count_params() == chapter.count_params()  # the same layers; only the output differs
    last_conv = [lyr for lyr in gen.layers if isinstance(lyr, keras.layers.Conv2D)][-1]
    assert last_conv.filters == 3
    last_conv.kernel.assign(np.zeros(last_conv.kernel.shape, np.float32))
    lr = tf.constant(_img(2, 64) * 0.9)
    image = gen([tf.constant(_emb(2)), lr], training=False)[0].numpy()
    enlarged = keras.layers.UpSampling2D(4, interpolation="bilinear")(lr).numpy()
    np.testing.assert_allclose(image, enlarged, atol=1e-5)
    assert image.dtype == np.float32 and isinstance(gen.get_layer("image"), sm.ResidualImage)
