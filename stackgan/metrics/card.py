"""The metric card (`evaluate.py card RESULTS_DIR`): one Markdown page with every number that can be measured here for
a results folder, each beside its real-image ceiling or reference and the command that gives it, and a grid of test
captions with the images of both stages.

The card draws caption 0 of every test row (seed 0) with each trained stage into <card>/stage1/ and <card>/stage2/,
exactly as `python generate.py --stage S --out <card>/stageS` does, and scores those folders. Real test images go to
<card>/real/ (every row on synthetic sets, for the attribute ceiling; the grid's rows otherwise). FID and IS need the
ImageNet InceptionV3 weights: given with --inception-weights or found in Keras' cache; without them they are listed
as not measured, with the command that measures them, never estimated.
"""

import datetime
import os
import shlex

import numpy as np

from stackgan import io, layout
from stackgan.cli import UserError

SEED = 0
CAPTION_INDEX = 0
# Published CUB numbers, for context only (NOTES.md section 7 and 9): other models, ~30k images, and IS with StackGAN's
# CUB-fine-tuned Inception, R-precision with each paper's own DAMSM encoders (biased, TISE).
PUBLISHED = {
    "fid": "CUB, published: StackGAN ≈51.9, AttnGAN 23.98, DM-GAN 16.09 (30k images)",
    "is": "CUB, published: StackGAN 3.70 with a CUB-fine-tuned Inception (not this ImageNet one)",
    "rprecision": "CUB, published with each paper's own DAMSM (biased, TISE): AttnGAN 67.82, DM-GAN 72.31 (%)",
}


# ---------------------------------------------------------------------------
# The attribute report, through one adapter: [(what, value, chance)] for a folder of generate.py's images.
# ---------------------------------------------------------------------------
def attribute_scores(images_dir, data_dir, split="test"):
    """The synthetic set's attribute numbers of a folder, as [(name, fraction, chance)]: a bird's body colour, wing
    shade, both, and both on the pairs never seen in training; a flower's petal colour. The only place the card
    reads the attribute metrics: when a report gains numbers, list them here."""
    from stackgan.datasets import dataset_of, synthetic, synthetic_flowers
    from stackgan.metrics import generated

    dataset = dataset_of(data_dir)
    r = generated.evaluate_folder(images_dir, data_dir, split)
    if dataset.name == "flowers":
        return [("petal colour", r["colour"], 1.0 / len(synthetic_flowers.PALETTE))]
    design = synthetic.read_design(data_dir)[0]
    hues, shades = len(design.hues), len(design.shades)
    return [
        ("body colour", r["body"], 1.0 / hues),
        ("wing shade", r["wing"], 1.0 / shades),
        ("both", r["both"], 1.0 / (hues * shades)),
        ("both, on pairs never seen in training", r["both_unseen"], 1.0 / (hues * shades)),
    ]


def command(*words):
    return " ".join(shlex.quote(str(w)) for w in words)


def _stale_removed(folder, written):
    for name in os.listdir(folder):
        if io.GENERATED.match(name) and name not in written:
            io.remove_quietly(os.path.join(folder, name))


def generate_stages(results_dir, stage, vectors, folder, batch_size=64):
    """Caption vectors (N, D) through Stage-I (and Stage-II) into <folder>/stage{s}/{row:05d}_0.png, one noise draw
    per row with seed SEED, as generate.py draws them. Returns the folders, one per stage."""
    from stackgan.api import StackGAN

    birds = StackGAN.from_preset(results_dir, stage, needed_by="evaluate.py card")
    vectors = birds.vectors(vectors)
    folders = [os.path.join(folder, f"stage{s}") for s in range(1, stage + 1)]
    written = set()
    for rows, outputs in birds.sample(vectors, 1, SEED, batch_size=batch_size):
        for out_dir, images in zip(folders, outputs):
            for row, image in zip(rows, io.to_uint8(images)):
                io.save_png(image, os.path.join(out_dir, io.image_name(int(row), 0)))
                written.add(io.image_name(int(row), 0))
    for out_dir in folders:
        _stale_removed(out_dir, written)
    return folders


def write_real(data_dir, rows, size, folder):
    """The real test images of `rows` (cropped as training crops them) as <folder>/{row:05d}_0.png at size x size."""
    from stackgan.datasets.cache import load_dataset

    split = load_dataset(data_dir, "test", size)
    by_name = {name: i for i, name in enumerate(split.filenames)}
    filenames = _test_filenames(data_dir)
    written = set()
    for row in rows:
        i = by_name.get(filenames[row])
        if i is not None:
            io.save_png(np.asarray(split.images[i]), os.path.join(folder, io.image_name(int(row), 0)))
            written.add(io.image_name(int(row), 0))
    if os.path.isdir(folder):
        _stale_removed(folder, written)
    return written


def _test_filenames(data_dir):
    from stackgan.datasets.cache import load_split_lists

    return load_split_lists(data_dir, "test")[0]


def test_captions(data_dir, rows):
    """The text of caption CAPTION_INDEX of each row, from <data>/text when it is there, else 'test embedding N'."""
    import warnings

    from stackgan.datasets.captions import load_captions

    from stackgan.datasets import dataset_of
    from stackgan.datasets.cache import load_split_lists

    filenames, class_ids, _ = load_split_lists(data_dir, "test")
    texts = [f"test embedding {r}" for r in rows]
    if os.path.isdir(dataset_of(data_dir).text_dir(data_dir)):
        with warnings.catch_warnings():  # a row without a caption file keeps its 'test embedding N'
            warnings.simplefilter("ignore")
            found = load_captions(data_dir, [filenames[r] for r in rows], [class_ids[r] for r in rows])
        texts = [c[CAPTION_INDEX] if len(c) > CAPTION_INDEX else t for c, t in zip(found, texts)]
    return texts


# ---------------------------------------------------------------------------
# Inception: the weights the card may use without downloading
# ---------------------------------------------------------------------------
def keras_cached_weights():
    """Path of the full ImageNet InceptionV3 weights in Keras' download cache, or None."""
    from stackgan.metrics import inception

    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "models", inception.WEIGHT_FILES[True])
    return path if os.path.isfile(path) else None


def inception_models(inception_weights, model_factory):
    """{False: pool-feature model, True: classifier}, each a model or the reason (str) why there is none."""
    from stackgan.metrics import inception

    path = inception_weights
    if model_factory is None:
        path = inception_weights or keras_cached_weights()
        if path is None:
            reason = "no InceptionV3 weights here (pass --inception-weights, or run the command online once)"
            return {False: reason, True: reason}
        model_factory = inception.build_inception
    models = {}
    for include_top in (False, True):
        try:
            models[include_top] = model_factory(include_top, path)
        except UserError as err:  # e.g. pool-only weights: FID works, IS does not
            models[include_top] = str(err)
    return models


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------
def _fmt(value, std=None):
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ± {std:.3f}" if std is not None else "")


class Table:
    """The numbers: one row per metric and set of images."""

    def __init__(self):
        self.rows = []

    def add(self, metric, images, value, reference, cmd):
        self.rows.append((metric, images, value, reference, f"`{cmd}`"))

    def markdown(self):
        lines = ["| metric | images | value | real-image ceiling / reference | command |", "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


def _stderr(line):
    import sys

    print(line, file=sys.stderr, flush=True)


def write_card(
    results_dir,
    data_dir=None,
    out=None,
    limit=None,
    grid=8,
    inception_weights=None,
    evaluator_options=None,
    model_factory=None,
    log=_stderr,
):
    """Generate, measure and write the card; returns its path. data_dir: the test split's dataset (default: the one
    the generators were trained on). evaluator_options: preset, epochs, width, image_size, evaluator_dir, retrain
    (stackgan.metrics.evaluator). model_factory(include_top, weights) replaces InceptionV3 (tests)."""
    from stackgan.api import has_stage
    from stackgan.datasets.cache import load_split_lists
    from stackgan.metrics import evaluator
    from stackgan.runtime import import_tensorflow
    from stackgan.api import read_stage_config

    out = out or layout.card_path(results_dir)
    if not out.endswith(".md") or os.path.isdir(out):
        raise UserError(f"--out {out}: give the path of a Markdown page ending in .md (its images go beside it)")
    config = read_stage_config(results_dir, 1, "evaluate.py card")  # one line when there is no trained Stage-I
    stage = 2 if has_stage(results_dir, 2) else 1
    data_dir = data_dir or config.get("data_dir") or layout.dataset_dir(layout.DEFAULT_DATASET)
    filenames, _, embeddings = load_split_lists(data_dir, "test")
    options = dict(evaluator_options or {})
    settings = evaluator.settings_for(
        data_dir,
        options.get("preset", "auto"),
        epochs=options.get("epochs"),
        width=options.get("width"),
        image_size=options.get("image_size"),
    )
    import_tensorflow()

    folder = os.path.splitext(out)[0]
    rows = list(range(min(len(filenames), limit or len(filenames))))
    synthetic = layout.is_synthetic(data_dir)
    log(f"Drawing caption {CAPTION_INDEX} of {len(rows)} test rows of {data_dir} with Stage-I{'+II' * (stage == 2)}")
    stage_dirs = generate_stages(results_dir, stage, np.asarray(embeddings[rows, CAPTION_INDEX]), folder)
    sizes = [64, 256][:stage]
    labels = [f"Stage-{'I' * s} {size}×{size}" for s, size in zip((1, 2), sizes)]
    real_dir = os.path.join(folder, "real")
    shown = sorted({rows[int(i)] for i in np.linspace(0, len(rows) - 1, min(grid, len(rows)))})  # across classes
    write_real(data_dir, rows if synthetic else shown, sizes[-1], real_dir)

    table = Table()
    images = list(zip(labels, stage_dirs))
    if synthetic:
        _attribute_rows(table, images, real_dir, data_dir)
    ev_flags = _evaluator_flags(options)
    ev = _rprecision_rows(table, images, data_dir, settings, options, ev_flags, synthetic, log)
    weights_flag = ["--inception-weights", inception_weights] if inception_weights else []
    _inception_rows(
        table, images, data_dir, len(rows), inception_models(inception_weights, model_factory), weights_flag
    )

    card_cmd = command(
        "python",
        "evaluate.py",
        "card",
        results_dir,
        "--data-dir",
        data_dir,
        *(["--out", out] if out != layout.card_path(results_dir) else []),
        *(["--limit", limit] if limit else []),
        *weights_flag,
        *ev_flags,
    )
    generate = [
        command(
            "python",
            "generate.py",
            "--stage",
            s,
            "--results-dir",
            results_dir,
            "--data-dir",
            data_dir,
            "--out",
            d,
            *(["--limit", len(rows)] if len(rows) < len(filenames) else []),
        )
        for s, d in zip((1, 2), stage_dirs)
    ]
    grid_table = _grid(shown, test_captions(data_dir, shown), real_dir, images, os.path.dirname(out) or ".")
    page = _page(results_dir, data_dir, card_cmd, stage, len(rows), len(filenames), table, generate, grid_table, ev)
    with io.atomic_path(out, ".md") as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    return out


def _attribute_rows(table, images, real_dir, data_dir):
    real_cmd = command("python", "evaluate.py", "attributes", "--images", real_dir, "--data-dir", data_dir)
    real_scores = attribute_scores(real_dir, data_dir)
    for label, d in images:
        for (name, value, chance), (_, real_value, _) in zip(attribute_scores(d, data_dir), real_scores):
            table.add(
                f"attributes: {name}",
                label,
                _fmt(value),
                f"{_fmt(real_value)} (real test images: `{real_cmd}`); chance {chance:.3f}",
                command("python", "evaluate.py", "attributes", "--images", d, "--data-dir", data_dir),
            )


def _rprecision_rows(table, images, data_dir, settings, options, ev_flags, synthetic, log):
    """R-precision rows; returns the evaluator (trained once, when missing)."""
    from stackgan.metrics import evaluator, rprecision

    trained = []

    def get_evaluator():
        if not trained:
            retrain = bool(options.get("retrain"))
            trained.append(evaluator.load_or_train(data_dir, settings, options.get("evaluator_dir"), retrain, log))
        return trained[0]

    context = "evaluator trained on the real images only" if synthetic else PUBLISHED["rprecision"]
    for label, d in images:
        r = rprecision.score_folder(d, data_dir, get_evaluator)
        unrelated = f", unrelated image {r['unrelated']:.3f}" if r["unrelated"] is not None else ""
        table.add(
            "R-precision (1 caption in 100)",
            label,
            f"{_fmt(r['r_precision'], r['std'])} ({r['images']} images, {r['folds']} folds)",
            f"{_fmt(r['real_r_precision'], r['real_std'])} (real test images, the ceiling); "
            f"chance {r['chance']:.3f}{unrelated}; {context}",
            command("python", "evaluate.py", "rprecision", "--images", d, "--data-dir", data_dir, *ev_flags),
        )
    return trained[0] if trained else None


def _inception_rows(table, images, data_dir, n, models, weights_flag):
    """FID and IS rows: measured with the models given, else 'not measured' with the command that measures them."""
    from stackgan.metrics import inception

    pool, classifier = models[False], models[True]
    splits = min(10, n)
    references = {}
    for label, d in images:
        fid_cmd = command(
            "python", "evaluate.py", "fid", "--real", "test", "--fake", d, "--data-dir", data_dir, *weights_flag
        )
        if isinstance(pool, str) or n < 2:
            table.add(
                "FID", label, f"not measured: {pool if n > 1 else 'fewer than 2 images'}", PUBLISHED["fid"], fid_cmd
            )
        else:
            if "fid" not in references:
                references.update(_fid_reference(pool, data_dir, n))
            f = inception.fid("test", d, pool, data_dir, 32, os.path.join(data_dir, "fid_cache"))
            table.add(
                "FID",
                label,
                f"{f['fid']:.2f} ({f['fake']} images against {f['real']} real)",
                f"{references['fid']:.2f} ({references['fid_images']} real training images against the same test "
                f"images); {PUBLISHED['fid']}",
                fid_cmd,
            )
        is_cmd = command("python", "evaluate.py", "is", "--images", d, "--splits", splits, *weights_flag)
        if isinstance(classifier, str):
            table.add("IS (ImageNet InceptionV3)", label, f"not measured: {classifier}", PUBLISHED["is"], is_cmd)
            continue
        if "is" not in references:
            references.update(_is_reference(classifier, data_dir, n, splits))
        probs = inception.model_outputs(
            classifier, io.folder_batches(io.list_images(d), 32, inception.input_size(classifier))
        )
        table.add(
            "IS (ImageNet InceptionV3)",
            label,
            f"{_fmt(*inception.inception_score(probs, splits))} ({len(probs)} images, {splits} splits)",
            f"{_fmt(*references['is'])} ({references['is_images']} real test images); {PUBLISHED['is']}",
            is_cmd,
        )


def _fid_reference(pool, data_dir, n):
    """FID of n real training images against the test split: what a perfect generator gets at this count."""
    from stackgan.datasets.cache import load_dataset
    from stackgan.metrics import inception

    train = load_dataset(data_dir, "train", inception.INCEPTION_SIZE)
    pick = np.linspace(0, len(train.images) - 1, min(n, len(train.images))).astype(int)
    mu_t, sigma_t = inception.activation_statistics(
        inception.model_outputs(pool, io.array_batches(train.images[pick], 32))
    )
    mu_r, sigma_r, _, _ = inception.real_statistics("test", data_dir, pool, 32, os.path.join(data_dir, "fid_cache"))
    return {"fid": inception.frechet_distance(mu_r, sigma_r, mu_t, sigma_t), "fid_images": len(pick)}


def _is_reference(classifier, data_dir, n, splits):
    """IS of the first n real test images."""
    from stackgan.datasets.cache import load_dataset
    from stackgan.metrics import inception

    test = load_dataset(data_dir, "test", inception.INCEPTION_SIZE).images[:n]
    probs = inception.model_outputs(classifier, io.array_batches(test, 32))
    return {"is": inception.inception_score(probs, min(splits, len(probs))), "is_images": len(probs)}


def _evaluator_flags(options):
    flags = []
    for key, flag in (
        ("evaluator_dir", "--evaluator-dir"),
        ("epochs", "--evaluator-epochs"),
        ("width", "--evaluator-width"),
        ("image_size", "--evaluator-size"),
    ):
        if options.get(key) is not None:
            flags += [flag, options[key]]
    if options.get("preset", "auto") != "auto":
        flags += ["--evaluator-preset", options["preset"]]
    return flags


def _page(results_dir, data_dir, card_cmd, stage, n, total, table, generate, grid_table, ev):
    from stackgan.metrics import rprecision
    from stackgan.runtime import cpu_info, device_description, visible_gpus

    if ev is None:
        how = ""
    elif ev.trained_s is not None:
        how = f" It was trained by this command in {ev.trained_s:.0f} s" + (
            f" and cached in `{ev.path}`." if ev.path else "."
        )
    else:
        how = f" It was read from `{ev.path}`."
    lines = [
        f"# Metric card: {results_dir}",
        "",
        f"`{card_cmd}` on {datetime.date.today().isoformat()}, {device_description(visible_gpus(), cpu_info())}. "
        f"Caption {CAPTION_INDEX} of {n} of the {total} test rows of `{data_dir}`, one sample each (seed {SEED}), "
        f"drawn by Stage-I{' and Stage-II' if stage == 2 else ''} of `{results_dir}` as these commands draw them:",
        "",
        *[f"    {g}" for g in generate],
        "",
        "## Numbers",
        "",
        table.markdown(),
        "",
        "What the numbers mean:",
        "",
    ]
    if layout.is_synthetic(data_dir):
        lines.append(
            "- **attributes**: the share of generated test birds whose colours, read from the pixels, are the ones "
            "their embedding asks for; the real test birds give the ceiling."
        )
    lines += [
        f"- **R-precision**: for each image, its own caption ranked first by cosine score among "
        f"{rprecision.CANDIDATES} captions, 99 of them from test images of other classes; the hit rate, ± the std "
        f"over folds. The evaluator (a CNN on the images, a projection of the caption embeddings, DAMSM's loss) was "
        f"trained on the real training images and captions only, never on generated images.{how} The real test "
        f"images of the same rows give the ceiling. Chance is 0.01 for a random ranking; a real image scored "
        f"against another row's caption reaches 'unrelated image', about 1 / classes, because all 99 wrong captions "
        f"come from other classes.",
        "- **FID / IS**: ImageNet InceptionV3. FID with fewer than 2,048 images is biased upward and compares only "
        "at equal counts. The paper's IS used a CUB-fine-tuned Inception, so published IS numbers are context, not "
        "a target.",
        "",
        "## Test captions and their images",
        "",
        grid_table,
        "",
    ]
    return "\n".join(lines)


def _grid(rows, captions, real_dir, images, page_dir):
    """A Markdown table: caption, real image, each stage's image."""
    link = lambda path: f"![]({os.path.relpath(path, page_dir)})" if os.path.isfile(path) else "—"  # noqa: E731
    labels = [label for label, _ in images]
    lines = ["| row | caption | real | " + " | ".join(labels) + " |", "|---|---|---|" + "---|" * len(labels)]
    for row, caption in zip(rows, captions):
        name = io.image_name(row, 0)
        cells = [str(row), caption.replace("|", "\\|"), link(os.path.join(real_dir, name))]
        cells += [link(os.path.join(d, name)) for _, d in images]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
