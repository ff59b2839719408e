"""The page app.py serves: type a sentence, see birds (or flowers), and read what the model heard.

A caption box with example captions from the test split (or the dataset's own), how many samples and two seeds (the
noise z, and the conditioning-augmentation sample), one gallery per stage, and the panel "What the model heard" beside
them. Two buttons keep the caption and change one seed each, so that a user sees what each kind of noise does.

The callbacks are plain functions of a stackgan.StackGAN (draw, new_noise, new_condition, heard_markdown): every
loading, encoding and sampling step is the API's. They raise UserError with the messages generate.py prints;
build_page() shows those on the page as gr.Error. Only the page's builders (build_page, theme) import gradio.

Every value of a request reaches the callbacks as the client sent it (the events do not let gradio preprocess it),
so that the callbacks check all of them: None, text where a number belongs, floats, bools, out-of-range numbers,
long captions. A refusal is one line on the page (and for an API client), and one line `refused /NAME: ...` in the
server's log, never a traceback; what gradio itself refuses before the callbacks run (too few values) too.
"""

import math
import sys
import warnings

from stackgan.cli import UserError

DEFAULT_CAPTION = "a small yellow bird with dark wings"
CAPTION_LABEL = "the caption"  # how a bad caption is named in its message (generate.py says '--caption 1')
MAX_SAMPLES = 8
MAX_SEED = 2**31 - 1
EXAMPLES = 8
NEIGHBOURS = 3
MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~")
SHOWN_CHARACTERS = 40  # of a refused value, in its message
MESSAGE_CHARACTERS = 300  # of a refusal, on the page and in the log


# -- the callbacks ------------------------------------------------------------------------------------------------
def shown(value):
    """A value as a message shows it: its repr, cut to SHOWN_CHARACTERS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


def whole_number(value, what, low, high=None):
    """value (an int, or a float with no fraction, as a number box sends it) as an int from low to high; a
    UserError for anything else (None, text, bools, fractions, NaN, infinities, numbers out of range)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise UserError(f"{what} must be a whole number, got {shown(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise UserError(f"{what} must be {bound}, got {shown(value)}")
    return value


def checked_text(value, what):
    """value if it is a string, else a UserError naming what it is."""
    if not isinstance(value, str):
        raise UserError(f"{what} must be text, got {shown(value)}")
    return value


def draw(birds, caption, samples=4, seed=0, condition_seed=0):
    """(one gallery per stage: a list of `samples` uint8 images, the "What the model heard" Markdown) for a caption.
    UserError for a bad caption (generate.py's message, the caption named CAPTION_LABEL) or a bad setting."""
    caption = checked_text(caption, CAPTION_LABEL)
    samples = whole_number(samples, "samples", 1, MAX_SAMPLES)
    seed = whole_number(seed, "the noise seed", 0, MAX_SEED)
    condition_seed = whole_number(condition_seed, "the conditioning seed", 0, MAX_SEED)
    heard = birds.heard(caption, NEIGHBOURS, label=CAPTION_LABEL)  # checks the caption first
    stages = birds.generate([caption], samples=samples, seed=seed, condition_seed=condition_seed, all_stages=True)
    galleries = [[images[0, k] for k in range(samples)] for images in stages]
    return galleries, heard_markdown(heard)


def new_noise(birds, caption, samples, seed, condition_seed):
    """The next noise seed, then draw(): the same caption and conditioning sample, new z."""
    checked_text(caption, CAPTION_LABEL)
    seed = whole_number(seed, "the noise seed", 0, MAX_SEED - 1) + 1
    return seed, *draw(birds, caption, samples, seed, condition_seed)


def new_condition(birds, caption, samples, seed, condition_seed):
    """The next conditioning seed, then draw(): the same caption and z, a new conditioning-augmentation sample."""
    checked_text(caption, CAPTION_LABEL)
    condition_seed = whole_number(condition_seed, "the conditioning seed", 0, MAX_SEED - 1) + 1
    return condition_seed, *draw(birds, caption, samples, seed, condition_seed)


def heard_markdown(heard):
    """The panel for a StackGAN.heard() dict: the text the encoder read, the words it could not read, the colour
    and wing shade (synthetic birds), the nearest training captions with their cosine scores."""
    lines = [f"**Read as:** “{_plain(heard['read_as'])}”", ""]
    if heard["unknown_words"]:
        words = ", ".join(_plain(w) for w in heard["unknown_words"])
        lines += [f"**Words it cannot read** (they reach the encoder as spaces): {words}", ""]
    else:
        lines += ["**Words it cannot read:** none", ""]
    if heard["colour"] is not None:
        decoded = [f"**{key.capitalize()}:** {heard[key]}" for key in ("colour", "wings", "petals") if heard.get(key)]
        lines += [
            " · ".join(decoded) + " (decoded from the caption's embedding, as the synthetic set encodes them)",
            "",
        ]
    if heard["nearest"]:
        lines += ["**Nearest training captions** (cosine of the embeddings):", ""]
        lines += [f"- {n['score']:.3f} · {_plain(n['caption'])}" for n in heard["nearest"]]
    else:
        lines += ["*The training captions are not there, so no nearest captions.*"]
    return "\n".join(lines)


def _plain(text):
    """text shown as itself in Markdown (no emphasis, links or HTML from a caption file)."""
    return "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in " ".join(text.split()))


def example(examples, index):
    """The example caption at index (what a click on the examples sends)."""
    if not examples:
        raise UserError("this page has no example captions")
    return examples[whole_number(index, "the example's number", 0, len(examples) - 1)]


def example_captions(data_dir, count=EXAMPLES):
    """Up to `count` captions of the test split, the first of one bird per class (so they differ), or []."""
    if not data_dir:
        return []
    from stackgan.datasets.captions import load_caption_split

    try:
        with warnings.catch_warnings():  # test birds without a caption file are simply not examples
            warnings.simplefilter("ignore")
            split = load_caption_split(data_dir, "test")
    except (UserError, OSError):
        return []
    examples, classes = [], set()
    for class_id, captions in zip(split.class_ids.tolist(), split.captions):
        if captions and class_id not in classes:
            classes.add(class_id)
            examples.append(captions[0])
        if len(examples) == count:
            break
    return examples


def default_caption(model):
    """The caption the page opens with: the birds' DEFAULT_CAPTION, another dataset's first example caption."""
    return DEFAULT_CAPTION if model.dataset.name == "birds" else model.dataset.example_captions[0]


def title(model):
    """'StackGAN: type a sentence, see a bird' (or a flower)."""
    return f"StackGAN: type a sentence, see a {model.dataset.thing}"


def describe(birds):
    """One line: which models the page runs and the data they were trained on."""
    sizes = " + ".join(f"Stage-{'I' * s} {size_text(s)}" for s in range(1, birds.stage + 1))
    return f"{sizes} from `{birds.results_dir}`, trained on `{birds.data_dir}`"


def size_text(stage):
    size = 64 if stage == 1 else 256
    return f"{size}×{size}"


def warm_up(birds):
    """Load the networks and the caption index and compile the sampling graph, so that the first click is fast."""
    draw(birds, default_caption(birds), 1, 0, 0)


# -- the page -----------------------------------------------------------------------------------------------------
def one_line(message):
    """message on one line of at most MESSAGE_CHARACTERS."""
    message = " ".join(str(message).split())
    return message if len(message) <= MESSAGE_CHARACTERS else message[: MESSAGE_CHARACTERS - 1] + "…"


def refusal(endpoint, message):
    """A gr.Error for a refused request: one line shown on the page and returned to an API client, one line
    `refused /endpoint: message` in the server's log, no traceback."""
    import gradio as gr

    message = one_line(message)
    print(f"refused /{endpoint}: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, print_exception=False)


def _on_page(callback, birds, endpoint):
    """callback(birds, caption, samples, seed, condition_seed) for gradio: a UserError becomes a refusal
    (endpoint names it in the log); the galleries are unpacked into one output each."""

    def run(caption, samples, seed, condition_seed):
        try:
            result = callback(birds, caption, samples, seed, condition_seed)
        except UserError as err:
            raise refusal(endpoint, err) from None
        if callback is draw:
            galleries, panel = result
            return *galleries, panel
        changed, galleries, panel = result
        return changed, *galleries, panel

    run.__name__ = callback.__name__  # gradio names the event's function after it
    return run


def _examples_on_page(examples):
    """example() for gradio: the caption of the example clicked; a bad number is a refusal."""

    def example_caption(index):
        try:
            return example(examples, index)
        except UserError as err:
            raise refusal("example", err) from None

    return example_caption


def _page_blocks():
    """gr.Blocks whose own refusals of a request, before the callbacks see its values (fewer values than the event
    takes), are refusals too: one line, no traceback."""
    import gradio as gr

    class Page(gr.Blocks):
        async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
            try:
                return await super().preprocess_data(block_fn, inputs, state, explicit_call)
            except gr.Error as err:
                if not err.print_exception:
                    raise
                raise refusal(block_fn.api_name or block_fn.name, err.message) from None
            except Exception as err:  # noqa: BLE001 - whatever gradio raises here is about the request's values
                endpoint = block_fn.api_name or block_fn.name
                needed, got = block_fn.inputs, len(inputs) if isinstance(inputs, list) else None
                if got is not None and got < len(needed):
                    names = ", ".join(str(getattr(block, "label", None) or type(block).__name__) for block in needed)
                    values = "value" if len(needed) == 1 else "values"
                    message = f"/{endpoint} takes {len(needed)} {values} ({names}), got {got}"
                else:
                    message = (str(err).splitlines() or [type(err).__name__])[0]
                raise refusal(endpoint, message) from None

    return Page


CSS = """
.stage-gallery img { image-rendering: pixelated; }
"""


def theme():
    """gradio's default theme in the system's fonts: the page loads no web font, so it looks the same offline."""
    import gradio as gr

    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_page(birds, examples=None):
    """The gr.Blocks page over a loaded StackGAN; examples default to example_captions(birds.data_dir), else the
    dataset's own example captions."""
    import gradio as gr

    thing, caption_text = birds.dataset.thing, default_caption(birds)
    tested = example_captions(birds.data_dir) if examples is None else examples
    examples = tested or list(birds.dataset.example_captions)
    # Gradio keeps every image it sent in its temporary folder: files older than an hour go, checked hourly.
    with _page_blocks()(title=title(birds), analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(
            f"# {title(birds)}\n{describe(birds)}. The noise seed draws z; the conditioning seed draws the "
            "conditioning-augmentation sample of the caption's embedding."
        )
        with gr.Row():
            with gr.Column(scale=2):
                caption = gr.Textbox(
                    label="Caption", value=caption_text, placeholder=caption_text, lines=2, elem_id="caption"
                )
                if examples:
                    chooser = gr.Dataset(
                        components=[caption],
                        samples=[[e] for e in examples],
                        type="index",
                        label=f"Captions of test {thing}s" if tested else f"Example captions of {thing}s",
                        elem_id="examples",
                    )
                samples = gr.Slider(1, MAX_SAMPLES, value=4, step=1, label="Samples", elem_id="samples")
                with gr.Row():
                    # No minimum here: draw() checks the seeds and says what is wrong in one line.
                    seed = gr.Number(value=0, precision=0, label="Noise seed (z)", elem_id="seed")
                    condition_seed = gr.Number(
                        value=0, precision=0, label="Conditioning seed", elem_id="condition-seed"
                    )
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                noise_button = gr.Button("New noise z (same caption and conditioning)", size="sm", elem_id="new-noise")
                condition_button = gr.Button(
                    "New conditioning sample (same caption and z)", size="sm", elem_id="new-condition"
                )
            with gr.Column(scale=3):
                with gr.Row():
                    galleries = [
                        gr.Gallery(
                            label=f"Stage-{'I' * s} ({size_text(s)})",
                            columns=2,
                            format="png",
                            object_fit="contain",
                            height="auto",
                            allow_preview=False,
                            elem_id=f"stage{s}",
                            elem_classes=["stage-gallery"],
                        )
                        for s in range(1, birds.stage + 1)
                    ]
            with gr.Column(scale=2):
                gr.Markdown("### What the model heard")
                panel = gr.Markdown(elem_id="heard")
        inputs = [caption, samples, seed, condition_seed]
        # preprocess=False: the callbacks get each value as sent and check it themselves (gradio's own checks
        # print tracebacks); one drawing at a time: the API reseeds its layers.
        shared = dict(preprocess=False, concurrency_id="draw", concurrency_limit=1)
        outputs = [*galleries, panel]
        generate.click(_on_page(draw, birds, "generate"), inputs, outputs, api_name="generate", **shared)
        caption.submit(_on_page(draw, birds, "generate"), inputs, outputs, api_name=False, **shared)
        noise_button.click(
            _on_page(new_noise, birds, "new_noise"), inputs, [seed, *outputs], api_name="new_noise", **shared
        )
        condition_button.click(
            _on_page(new_condition, birds, "new_condition"),
            inputs,
            [condition_seed, *outputs],
            api_name="new_condition",
            **shared,
        )
        if examples:
            chooser.click(
                _examples_on_page(examples),
                [chooser],
                [caption],
                api_name="example",
                api_visibility="undocumented",
                preprocess=False,
            )
    return page
