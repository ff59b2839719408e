"""The page of app.py in a real browser: a Chromium-family browser already on this machine, headless, driven by
Playwright.

Used by `python app.py --screenshot PNG` (docs/app.png) and by the browser test. find_browser() looks, in this order,
at STACKGAN_BROWSER (a path), at chromium, chromium-browser, google-chrome, chrome or microsoft-edge on PATH, at
the places where Debian, Ubuntu (snap), Google Chrome, Chromium and Microsoft Edge install on Linux, macOS and
Windows, and at the browsers Playwright has downloaded (`python -m playwright install chromium`, in its cache or
PLAYWRIGHT_BROWSERS_PATH); it never downloads one. The page may reach only the server it came from: every other
request is refused, so the page is known to work offline.
"""

import contextlib
import glob
import os
import re
import shutil
import sys
from typing import NamedTuple
from urllib.parse import urlsplit

from stackgan import io
from stackgan.cli import UserError

BROWSER_VARIABLE = "STACKGAN_BROWSER"
HOW_TO_GET_ONE = (
    "Debian: apt-get install chromium; Ubuntu: snap install chromium; macOS: install Google Chrome; "
    "anywhere: python -m playwright install chromium"
)
NO_BROWSER = (
    f"no Chromium-family browser found ({BROWSER_VARIABLE}, PATH, the usual install places, Playwright's cache): "
    + HOW_TO_GET_ONE
)
# Names on PATH, the first found wins.
PATH_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "microsoft-edge",
    "microsoft-edge-stable",
    "msedge",
)
# Where browsers install when PATH does not name them (a service's or cron's PATH often does not).
LINUX_PLACES = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
    "/opt/google/chrome/chrome",
    "/opt/microsoft/msedge/msedge",
)
MAC_APPS = (
    "Google Chrome.app/Contents/MacOS/Google Chrome",
    "Chromium.app/Contents/MacOS/Chromium",
    "Microsoft Edge.app/Contents/MacOS/Microsoft Edge",
)
WINDOWS_APPS = (
    r"Google\Chrome\Application\chrome.exe",
    r"Chromium\Application\chrome.exe",
    r"Microsoft\Edge\Application\msedge.exe",
)
WINDOWS_FOLDERS = ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")
# A Playwright download: <cache>/chromium-<revision>/<one of these> (today's layouts first, then older ones), or
# the headless shell in <cache>/chromium_headless_shell-<revision>/.
PLAYWRIGHT_LAYOUTS = {
    "linux": {
        "chromium": ("chrome-linux64/chrome", "chrome-linux-arm64/chrome", "chrome-linux/chrome"),
        "chromium_headless_shell": (
            "chrome-headless-shell-linux64/chrome-headless-shell",
            "chrome-headless-shell-linux-arm64/chrome-headless-shell",
            "chrome-linux/headless_shell",
        ),
    },
    "darwin": {
        "chromium": (
            "chrome-mac-arm64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
            "chrome-mac-x64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
            "chrome-mac/Chromium.app/Contents/MacOS/Chromium",
        ),
        "chromium_headless_shell": (
            "chrome-headless-shell-mac-arm64/chrome-headless-shell",
            "chrome-headless-shell-mac-x64/chrome-headless-shell",
            "chrome-mac/headless_shell",
        ),
    },
    "win32": {
        "chromium": ("chrome-win64/chrome.exe", "chrome-win/chrome.exe"),
        "chromium_headless_shell": (
            "chrome-headless-shell-win64/chrome-headless-shell.exe",
            "chrome-win/headless_shell.exe",
        ),
    },
}
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


def require_browser():
    """find_browser()'s browser, with Playwright to drive it; else a UserError that says how to get them."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise UserError("driving a browser needs Playwright: pip install playwright") from None
    found = find_browser()
    if found is None:
        raise UserError(NO_BROWSER)
    return found


class Browser(NamedTuple):
    """A browser that find_browser() found: its executable, and where it was found (for messages)."""

    path: str
    found_in: str


def find_browser(environ=None, platform=None, home=None, root="/"):
    """The first Chromium-family browser on this machine, as a Browser, or None. environ (default: os.environ)
    gives STACKGAN_BROWSER, PATH and the folders that Playwright and Windows name; platform (sys.platform), home
    (the user's home folder) and root (the file system's root) say where to look, so that a test can look into a
    folder of its own. A STACKGAN_BROWSER that is not an executable file is a UserError: asked for, it is never
    passed over for another browser."""
    environ = os.environ if environ is None else environ
    platform = _platform_family(platform or sys.platform)
    home = home or os.path.expanduser("~")
    chosen = environ.get(BROWSER_VARIABLE)
    if chosen:
        if not is_executable(chosen):
            raise UserError(
                f"{BROWSER_VARIABLE}={chosen} is not an executable file: name a Chromium-family browser, or unset it"
            )
        return Browser(chosen, BROWSER_VARIABLE)
    for path, found_in in candidates(environ, platform, home, root):
        if is_executable(path):
            return Browser(path, found_in)
    return None


def candidates(environ, platform, home, root):
    """(path, where it was looked for) of every browser find_browser() considers, in its order."""
    for name in PATH_NAMES:
        path = shutil.which(name, path=environ.get("PATH", ""))
        if path:
            yield path, "PATH"
    for path in install_places(environ, platform, home, root):
        yield path, "the usual install places"
    for path in playwright_browsers(environ, platform, home):
        yield path, "Playwright's browsers"


def install_places(environ, platform, home, root):
    """Where Chromium, Google Chrome and Microsoft Edge install on this platform, in the order of MAC_APPS and
    WINDOWS_APPS (Edge last, wherever it is)."""
    if platform == "darwin":
        for app in MAC_APPS:
            for apps in (os.path.join(root, "Applications"), os.path.join(home, "Applications")):
                yield os.path.join(apps, app)
    elif platform == "win32":
        for app in WINDOWS_APPS:
            for folder in filter(None, (environ.get(name) for name in WINDOWS_FOLDERS)):
                yield os.path.join(folder, *app.split("\\"))
    else:
        for place in LINUX_PLACES:
            yield os.path.join(root, place.lstrip("/"))


def playwright_caches(environ, platform, home):
    """The folders where Playwright keeps the browsers it downloaded: PLAYWRIGHT_BROWSERS_PATH (0: inside the
    playwright package) and the user's cache folder."""
    chosen = environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if chosen == "0":
        import importlib.util

        spec = importlib.util.find_spec("playwright")
        if spec and spec.origin:
            yield os.path.join(os.path.dirname(spec.origin), "driver", "package", ".local-browsers")
    elif chosen:
        yield chosen
    if platform == "darwin":
        cache = os.path.join(home, "Library", "Caches")
    elif platform == "win32":
        cache = environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    else:
        cache = environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    yield os.path.join(cache, "ms-playwright")


def playwright_browsers(environ, platform, home):
    """The executables of Playwright's downloaded Chromium builds, the newest first, then its headless shells."""
    layouts = PLAYWRIGHT_LAYOUTS[platform]
    for cache in playwright_caches(environ, platform, home):
        for kind, executables in layouts.items():
            builds = []
            for folder in glob.glob(os.path.join(glob.escape(cache), kind + "-*")):
                revision = re.fullmatch(re.escape(kind) + r"-(\d+)", os.path.basename(folder))
                if revision:
                    builds.append((int(revision.group(1)), folder))
            for _, folder in sorted(builds, reverse=True):
                for executable in executables:
                    yield os.path.join(folder, *executable.split("/"))


def is_executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _platform_family(platform):
    if platform.startswith(("win", "cygwin")):
        return "win32"
    return "darwin" if platform == "darwin" else "linux"


def snap_profile_parent(executable, home=None):
    """For a snap's browser (Ubuntu's chromium: /snap/bin/chromium, or a script that runs it), a folder in the
    snap's own folder of the home directory, made if absent; else None. The snap's confinement gives it a /tmp of
    its own, so a profile folder that Playwright made in the system's /tmp would not be there for the browser."""
    name = snap_name(executable)
    if name is None:
        return None
    folder = os.path.join(home or os.path.expanduser("~"), "snap", name, "common", "playwright-tmp")
    os.makedirs(folder, exist_ok=True)
    return folder


def snap_name(executable):
    """The snap that runs executable (/snap/bin/NAME, or a short script that calls it), or None."""
    match = re.match(r"/snap/bin/([\w-]+)", executable)
    if match:
        return match.group(1)
    try:
        with open(executable, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    match = re.search(rb"/snap/bin/([\w-]+)", head) if head.startswith(b"#!") else None
    return match.group(1).decode() if match else None


@contextlib.contextmanager
def _temporary_variable(name, value):
    """os.environ[name] = value inside the block (nothing changes when value is None)."""
    if value is None:
        yield
        return
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def chromium(executable=None):
    """A headless Chromium-family browser (Playwright's Browser): the executable given, else find_browser()'s.
    UserError when Playwright or a browser is missing."""
    executable = require_browser().path if executable is None else executable
    if not is_executable(executable):
        raise UserError(f"{executable} is not an executable file: name a Chromium-family browser")
    from playwright.sync_api import sync_playwright

    # Playwright's driver makes the browser's profile folder in its TMPDIR, read when the driver starts.
    with _temporary_variable("TMPDIR", snap_profile_parent(executable)):
        playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


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


def screenshot(url, path, caption=None, executable=None):
    """capture() in a browser of its own (app.py --screenshot): executable, else find_browser()'s."""
    with chromium(executable) as browser:
        capture(browser, url, path, caption)
