"""The page of app.py in a real browser: Debian's chromium, headless, driven by Playwright.

Used by `python app.py --screenshot PNG` (docs/app.png) and by the browser test. Playwright drives the chromium
the system installed (apt-get install chromium), never a browser of its own, and the page may reach only the
server it came from: every other request is refused, so the page is known to work offline.
"""

import contextlib
import os
from urllib.parse import urlsplit

from stackgan import io
from stackgan.cli import UserError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT = dict(width=1440, height=960)
TIMEOUT_MS = 120_000  # a draw on a busy 2-core machine; normally a second or two


@contextlib.contextmanager
def chromium(executable=CHROMIUM):
    """A headless chromium browser (Playwright's Browser); UserError when Playwright or chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise UserError("driving a browser needs Playwright: pip install playwright") from None
    if not os.path.isfile(executable):
        raise UserError(f"{executable} not found: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url):
    """A browser tab on the page at url, loaded, that can reach nothing but url's server. Its `refused` attribute
    lists the other addresses the page asked for."""
    tab = browser.new_page(viewport=VIEWPORT)
    tab.refused = []
    origin = urlsplit(url).netloc

    def only_the_server(route):
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            tab.refused.append(route.request.url)
            route.abort()

    tab.route("**/*", only_the_server)
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(url)
    tab.locator("#generate").wait_for(state="visible")
    return tab


def images_of(tab, stage):
    """The images of one stage's gallery that the browser has loaded."""
    return tab.locator(f"#stage{stage} img").evaluate_all(
        "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.src)"
    )


def draw_caption(tab, caption):
    """Type caption, click Generate and wait until the panel has changed and the Stage-I images are loaded:
    the panel's text (a string) afterwards."""
    before = tab.locator("#heard").inner_text()
    tab.locator("#caption textarea").fill(caption)
    tab.locator("#generate").click()
    tab.wait_for_function(
        """before => {
            const panel = document.querySelector('#heard');
            const imgs = [...document.querySelectorAll('#stage1 img')];
            return panel && panel.innerText !== before && imgs.length > 0
                && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=before,
    )
    return tab.locator("#heard").inner_text()


def error_shown(tab, caption):
    """Type caption, click Generate and wait for the page's error message: its text."""
    tab.locator("#caption textarea").fill(caption)
    tab.locator("#generate").click()
    toast = tab.locator('[data-testid="toast-text"]').last
    toast.wait_for(state="visible")
    return toast.inner_text()


def capture(browser, url, path, caption=None):
    """Open the page at url, draw caption (default: the page's DEFAULT_CAPTION) and save a PNG screenshot of the
    whole page to path: (the tab, the panel's text)."""
    from stackgan.page import DEFAULT_CAPTION

    tab = open_page(browser, url)
    panel = draw_caption(tab, caption or DEFAULT_CAPTION)
    with io.atomic_path(str(path), suffix=".png") as tmp:
        tab.screenshot(path=tmp, full_page=True)
    return tab, panel


def screenshot(url, path, caption=None):
    """capture() in a browser of its own (app.py --screenshot)."""
    with chromium() as browser:
        capture(browser, url, path, caption)
