"""A local web page over a trained StackGAN: type a sentence, see birds (or flowers), read what the model heard.

    pip install -r requirements-app.txt
    python app.py --demo                               # the demo's models (results/demo) on http://127.0.0.1:7860
    python app.py --demo --dataset flowers             # the flowers demo's (results/demo_flowers)
    python app.py --results-dir results --port 8000    # your own trained models
    python app.py --demo --screenshot docs/app.png     # draw the default caption in a headless browser, save, stop

The page (stackgan/page.py) runs the Python API stackgan.StackGAN: Stage-I, and Stage-II beside it when its weights
are in the results folder, with the caption encoder trained there. It serves on 127.0.0.1 unless --host says
otherwise, and makes a public share link only with --share. Ctrl-C stops it.
"""

import os
import sys
import time

from stackgan.cli import ArgumentParser, UserError, positive_int, run_main
from stackgan.datasets import NAMES
from stackgan.layout import DEFAULT_DATASET, demo_dirs

REQUIREMENTS = "requirements-app.txt"


def build_parser():
    p = ArgumentParser(
        prog="app.py",
        description="Serve a web page over a trained StackGAN: a caption box, samples and seeds, the images of each "
        "stage and what the caption encoder heard.",
    )
    p.add_argument(
        "--results-dir",
        default=None,
        help="folder holding the trained stage{N}_config.json, stage{N}_gen.weights.h5 and text_encoder.* "
        f"(default: results, with --demo {demo_dirs(DEFAULT_DATASET)['results_dir']})",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"the demo's models: --results-dir {demo_dirs(DEFAULT_DATASET)['results_dir']}",
    )
    p.add_argument(
        "--dataset",
        choices=NAMES,
        default=DEFAULT_DATASET,
        help="with --demo, whose demo: birds, or flowers (results/demo_flowers) (default: %(default)s)",
    )
    p.add_argument(
        "--stage",
        type=int,
        choices=(1, 2),
        default=None,
        help="1: Stage-I only; 2: Stage-I and Stage-II (default: 2 when the results folder holds Stage-II weights)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s, this machine only)")
    p.add_argument(
        "--port", type=positive_int, default=None, help="port to serve on (default: the first free one from 7860)"
    )
    p.add_argument("--share", action="store_true", help="also make a temporary public link through gradio's servers")
    p.add_argument(
        "--screenshot",
        default=None,
        metavar="PNG",
        help="instead of serving until Ctrl-C: open the page in a headless Chromium-family browser, draw the default "
        "caption, save a screenshot to PNG and stop (needs playwright and chromium or Chrome on this machine; "
        "STACKGAN_BROWSER=PATH names one)",
    )
    return p


def import_gradio():
    """gradio, offline (no telemetry, no version check), or a UserError naming the requirements file."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise UserError(f"the page needs gradio, which is not installed: pip install -r {REQUIREMENTS}") from None
    return gradio


def load(args):
    """The StackGAN of the results folder, loaded and warmed up (UserError for a missing or untrained folder)."""
    from stackgan import page
    from stackgan.api import StackGAN

    results_dir = args.results_dir or (demo_dirs(args.dataset)["results_dir"] if args.demo else "results")
    birds = StackGAN.from_preset(results_dir, args.stage, needed_by="app.py")  # configs only: fails fast
    import_gradio()
    birds.text_encoder  # noqa: B018 - a folder without a trained caption encoder fails here, naming its command
    page.warm_up(birds)
    return birds


def serve(page, args):
    """Start the server without blocking: (its local URL, the share URL or None)."""
    from stackgan.page import CSS, theme

    try:
        page.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            footer_links=["api"],
            css=CSS,
            theme=theme(),
        )
    except OSError:  # gradio's message names its own environment variables; this one names the flags
        where = f"port {args.port}" if args.port else "any of ports 7860-7959"
        raise UserError(
            f"cannot serve on {args.host} {where}: in use, or not an address of this machine; "
            "choose another with --port or --host"
        ) from None
    return page.local_url, page.share_url


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.screenshot:  # a missing browser is said at once, not after loading the models
        from stackgan.browser import require_browser

        executable = require_browser().path
    birds = load(args)
    from stackgan.page import build_page, default_caption

    page = build_page(birds)
    url, share_url = serve(page, args)
    try:
        if args.screenshot:
            from stackgan.browser import screenshot

            screenshot(url, args.screenshot, default_caption(birds), executable=executable)
            print(f"saved {args.screenshot} (the page at {url})")
            return 0
        print(f"StackGAN page on {url}" + (f" and {share_url}" if share_url else "") + " (Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(3600)
    finally:
        page.close()


if __name__ == "__main__":
    sys.exit(run_main(main))
