"""What --demo adds after training: where to look, the attribute accuracy over every caption of every test bird,
and (after Stage-I) the demo's caption encoder, so that `generate.py --demo --caption ...` works next.

The demo's presets are in config.py (DEMO_PRESETS, ENCODER_DEMO); its data is the synthetic birds.
"""

from stackgan import layout


def after_training(ctx):
    """The demo's closing steps for a finished Run."""
    report(ctx)
    if ctx.config.stage == 1 and ctx.synthetic and ctx.runtime.chief:
        from stackgan.text.training import train_demo_encoder

        config = ctx.config
        print("Training the caption encoder of the demo (python text_encoder.py train --demo)", flush=True)
        train_demo_encoder(config.data_dir, config.results_dir, config.log_dir)


def report(ctx):
    """Where the outputs are, and on synthetic birds the attribute report of generated test images: every caption
    of every test bird, one noise draw each (1,600 images for the synthetic set), so that the printed numbers vary
    little from one sampling to the next. Returns the attribute_report dict (None on other data)."""
    import numpy as np

    from stackgan import sampling
    from stackgan.metrics.attributes import attribute_report, describe, describe_mistakes

    config, split = ctx.config, ctx.test_split
    print(
        f"Sample grids: {layout.samples_dir(config.results_dir, config.stage)}/epoch_*.png   "
        f"loss curves: {layout.loss_plot_path(config.results_dir, config.stage)}   "
        f"TensorBoard: tensorboard --logdir={config.log_dir}"
    )
    if ctx.eval_attributes is None:
        return None
    generators, _ = sampling.load_generators(config.results_dir, config.stage)
    n_captions = split.embeddings.shape[1]
    embeddings = np.asarray(split.embeddings).reshape(-1, split.embeddings.shape[-1])
    z = np.random.default_rng(config.seed + 1).standard_normal((len(embeddings), config.z_dim))
    images = sampling.sample_images(generators, embeddings, z)
    asked = ctx.eval_attributes.take(np.repeat(np.arange(len(split.embeddings)), n_captions))
    result = attribute_report(images[-1], asked)
    size = images[-1].shape[1]
    print(
        f"Attributes of {len(embeddings)} generated {size}x{size} test images ({len(split.embeddings)} birds x "
        f"{n_captions} captions, {result['unseen_images']} of pairs never seen in training): {describe(result)}; "
        f"most frequent mistakes: {describe_mistakes(result['mistakes'])}"
    )
    return result
