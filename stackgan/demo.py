"""What --demo adds after training: where to look, the attributes drawn for every caption of every test bird (or
the petal-colour accuracy of every test flower), and (after Stage-I) the demo's caption encoder, so that
`generate.py --demo --caption ...` works next.

The demo's presets are in config.py (DEMO_PRESETS, ENCODER_DEMO); its data is the dataset's synthetic set.
"""

from stackgan import layout


def after_training(ctx):
    """The demo's closing steps for a finished Run."""
    report(ctx)
    if ctx.config.stage == 1 and ctx.synthetic and ctx.runtime.chief:
        from stackgan.text.training import train_demo_encoder

        config = ctx.config
        print("Training the caption encoder of the demo (python text_encoder.py train --demo)", flush=True)
        train_demo_encoder(config.data_dir, config.results_dir, config.log_dir, config.dataset)


def report(ctx):
    """Where the outputs are, and on a synthetic set the attribute report of generated test images (a bird's body
    colour and wing shade, also on pairs never seen in training; a flower's petal colour): every caption of every
    test image, one noise draw each (1,600 images for the synthetic set), so that the printed numbers vary little
    from one sampling to the next. Returns the attribute_report dict (None on other data)."""
    import numpy as np

    from stackgan import api
    from stackgan.datasets import get_dataset

    config, split = ctx.config, ctx.test_split
    dataset = get_dataset(config.dataset)
    print(
        f"Sample grids: {layout.samples_dir(config.results_dir, config.stage)}/epoch_*.png   "
        f"loss curves: {layout.loss_plot_path(config.results_dir, config.stage)}   "
        f"TensorBoard: tensorboard --logdir={config.log_dir}"
    )
    print(
        f"Metric card (each number beside its real-image ceiling and its command, test captions with their images): "
        f"python evaluate.py card {config.results_dir}   (writes {layout.card_path(config.results_dir)})"
    )
    if ctx.eval_attributes is None:
        return None
    generators, _ = api.load_generators(config.results_dir, config.stage)
    n_captions = split.embeddings.shape[1]
    embeddings = np.asarray(split.embeddings).reshape(-1, split.embeddings.shape[-1])
    z = np.random.default_rng(config.seed + 1).standard_normal((len(embeddings), config.z_dim))
    images = api.sample_images(generators, embeddings, z)
    metrics = dataset.attributes()
    asked = ctx.eval_attributes.take(np.repeat(np.arange(len(split.embeddings)), n_captions))
    result = metrics.attribute_report(images[-1], asked)
    size = images[-1].shape[1]
    unseen = "" if "unseen_images" not in result else f", {result['unseen_images']} of pairs never seen in training"
    print(
        f"{metrics.WHAT.capitalize()} of {len(embeddings)} generated {size}x{size} test images "
        f"({len(split.embeddings)} {dataset.thing}s x {n_captions} captions{unseen}): {metrics.describe(result)}; "
        f"most frequent mistakes: {metrics.describe_mistakes(result['mistakes'])}"
    )
    return result
