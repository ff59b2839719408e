"""app.py and its page at three depths: the callbacks in-process (tiny untrained networks), a real HTTP round trip to
`python app.py` on 127.0.0.1 (gradio_client), and the machine's Chromium-family browser driven by Playwright on the
same server. The server runs the trained Stage-I demo, so that "a small yellow bird with dark wings" really gives
yellow birds. Without a browser the browser test skips, saying how to get one; under CI (CI=true) it fails."""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import app
import generate
from helpers import REPO, one_line_error, run_cli
from stackgan import browser, layout, page
from stackgan.api import StackGAN
from stackgan.cli import UserError
from stackgan.datasets import synthetic
from stackgan.datasets.captions import load_caption_split
from stackgan.metrics import attributes

CAPTION = "a small yellow bird with dark wings"
YELLOW = [name for name, _ in synthetic.PALETTE].index("yellow")
COLOUR_LINE = re.compile(r"Colour:\**\s*(\w+)\s*·\s*\**Wings:\**\s*(\w+)")
# A caption that is empty, has no letters, is too long for the encoder, or has nothing the encoder can read.
BAD_CAPTIONS = ["", "   ", "!!! 42", "a" * 61, "黄色的小鸟"]


@pytest.fixture(scope="module")
def tiny(tiny_results):
    return StackGAN.from_preset(tiny_results)


# -- the callbacks, in-process ------------------------------------------------------------------------------------
def test_draw_gives_one_gallery_per_stage_and_the_panel(tiny):
    galleries, panel = page.draw(tiny, CAPTION, 3, 0, 0)
    assert [len(g) for g in galleries] == [3, 3]
    assert {(im.shape, im.dtype) for im in galleries[0]} == {((64, 64, 3), np.dtype(np.uint8))}
    assert {(im.shape, im.dtype) for im in galleries[1]} == {((256, 256, 3), np.dtype(np.uint8))}
    assert f"**Read as:** “{CAPTION}”" in panel and "**Words it cannot read:** none" in panel
    colour, wings = COLOUR_LINE.search(panel).groups()  # the tiny encoder is untrained: some colour, some shade
    assert colour in [name for name, _ in synthetic.PALETTE] and wings in synthetic.WING_SHADES
    heard = tiny.heard(CAPTION, page.NEIGHBOURS)
    for near in heard["nearest"]:  # the panel lists the API's nearest captions with their scores
        assert f"- {near['score']:.3f} · " in panel and near["caption"].split()[0] in panel
    assert len(heard["nearest"]) == page.NEIGHBOURS


def test_seeds_are_reproducible_and_each_button_changes_one(tiny):
    first, _ = page.draw(tiny, CAPTION, 2, 5, 7)
    again, _ = page.draw(tiny, CAPTION, 2, 5, 7)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(np.stack(a), np.stack(b))
    # The images are the API's for those seeds.
    np.testing.assert_array_equal(np.stack(first[1]), tiny.generate([CAPTION], 2, seed=5, condition_seed=7)[0])
    seed, noise, _ = page.new_noise(tiny, CAPTION, 2, 5, 7)
    condition_seed, condition, _ = page.new_condition(tiny, CAPTION, 2, 5, 7)
    assert (seed, condition_seed) == (6, 8)
    np.testing.assert_array_equal(np.stack(noise[0]), np.stack(page.draw(tiny, CAPTION, 2, 6, 7)[0][0]))
    np.testing.assert_array_equal(np.stack(condition[0]), np.stack(page.draw(tiny, CAPTION, 2, 5, 8)[0][0]))
    for changed in (noise, condition):
        assert np.abs(np.stack(changed[0]).astype(int) - np.stack(first[0])).mean() > 1
    assert page.draw(tiny, CAPTION, 2.0, 5.0, 7.0)[0][0][0].shape == (64, 64, 3)  # a number box sends floats


def test_unreadable_words_are_reported(tiny):
    _, panel = page.draw(tiny, "un petit oiseau jaune 🐦 aux ailes sombres", 1, 0, 0)
    assert "**Words it cannot read** (they reach the encoder as spaces): 🐦" in panel
    assert "“un petit oiseau jaune aux ailes sombres”" in panel


@pytest.mark.parametrize("caption", BAD_CAPTIONS)
def test_a_bad_caption_gets_the_command_lines_message(tiny, tiny_results, caption, tmp_path, capsys):
    import gradio as gr

    command_line = one_line_error(
        generate.main, ["--results-dir", tiny_results, "--out", str(tmp_path), "--caption", caption], capsys
    )
    with pytest.raises(UserError) as plain:
        page.draw(tiny, caption, 1, 0, 0)
    assert command_line == "error: " + str(plain.value).replace(page.CAPTION_LABEL, "--caption 1", 1)
    capsys.readouterr()
    with pytest.raises(gr.Error) as shown:  # what the page shows, and one line in the server's log
        page._on_page(page.draw, tiny, "generate")(caption, 1, 0, 0)
    assert shown.value.message == str(plain.value) and not shown.value.print_exception
    assert capsys.readouterr().err == f"refused /generate: {plain.value}\n"


def test_bad_settings_are_named(tiny):
    cases = [
        ((CAPTION, 0, 0, 0), "samples must be from 1 to 8, got 0"),
        ((CAPTION, 9, 0, 0), "samples must be from 1 to 8, got 9"),
        ((CAPTION, 100000, 0, 0), "samples must be from 1 to 8, got 100000"),
        ((CAPTION, -3, 0, 0), "samples must be from 1 to 8, got -3"),
        ((CAPTION, 2.5, 0, 0), "samples must be a whole number, got 2.5"),
        ((CAPTION, "8", 0, 0), "samples must be a whole number, got '8'"),
        ((CAPTION, True, 0, 0), "samples must be a whole number, got True"),
        ((CAPTION, float("nan"), 0, 0), "samples must be a whole number, got nan"),
        ((CAPTION, 1, float("inf"), 0), "the noise seed must be a whole number, got inf"),
        ((CAPTION, 1, -1, 0), "the noise seed must be from 0 to 2147483647, got -1"),
        ((CAPTION, 1, None, 0), "the noise seed must be a whole number, got None"),
        ((CAPTION, 1, [1], 0), "the noise seed must be a whole number, got [1]"),
        ((CAPTION, 1, 0, 2**31), "the conditioning seed must be from 0 to 2147483647, got 2147483648"),
        ((CAPTION, 1, 0, "3"), "the conditioning seed must be a whole number, got '3'"),
        ((CAPTION, 1, 0, "9" * 100), "the conditioning seed must be a whole number, got '" + "9" * 38 + "…"),
        ((None, 1, 0, 0), "the caption must be text, got None"),
        ((42, 1, 0, 0), "the caption must be text, got 42"),
        (({"text": CAPTION}, 1, 0, 0), "the caption must be text, got {'text': 'a small yellow bird with dark…"),
    ]
    for args, message in cases:
        with pytest.raises(UserError) as info:
            page.draw(tiny, *args)
        assert str(info.value) == message
    for button in (page.new_noise, page.new_condition):  # the caption is checked before a seed moves
        with pytest.raises(UserError, match="^the caption must be text, got None$"):
            button(tiny, None, 1, 0, 0)
    with pytest.raises(UserError, match="^the noise seed must be from 0 to 2147483646, got 2147483647$"):
        page.new_noise(tiny, CAPTION, 1, page.MAX_SEED, 0)
    assert page.one_line("a\nlong\t message " + "x" * 400) == "a long message " + "x" * 284 + "…"


def test_example_numbers_are_checked():
    examples = ["a red bird", "a blue bird"]
    assert page.example(examples, 1) == "a blue bird" and page.example(examples, 0.0) == "a red bird"
    for index, message in {
        2: "the example's number must be from 0 to 1, got 2",
        -1: "the example's number must be from 0 to 1, got -1",
        "0": "the example's number must be a whole number, got '0'",
        None: "the example's number must be a whole number, got None",
    }.items():
        with pytest.raises(UserError) as info:
            page.example(examples, index)
        assert str(info.value) == message
    with pytest.raises(UserError, match="^this page has no example captions$"):
        page.example([], 0)


def test_examples_are_test_captions_of_different_classes(tiny):
    examples = page.example_captions(tiny.data_dir)
    split = load_caption_split(tiny.data_dir, "test")
    owners = [next(i for i, c in enumerate(split.captions) if text in c) for text in examples]
    wanted = min(page.EXAMPLES, len(set(split.class_ids.tolist())))  # one per class, at most EXAMPLES
    assert len(examples) == wanted and len({int(split.class_ids[i]) for i in owners}) == wanted
    assert page.example_captions(os.path.join(tiny.data_dir, "nothing")) == [] and page.example_captions(None) == []


# -- app.py: its flags and one-line errors ------------------------------------------------------------------------
def test_help_names_the_flags(capsys):
    with pytest.raises(SystemExit) as info:
        app.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--results-dir", "--demo", "--host", "--port", "--share", "--screenshot"):
        assert flag in out
    assert "127.0.0.1" in out


def test_untrained_folder_names_the_training_command(tmp_path):
    result = run_cli("app.py", "--demo", cwd=str(tmp_path), timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "error: results/demo/stage1_config.json not found: app.py needs trained Stage-1 weights; "
        "run `python stage1.py --demo` first"
    ]


def test_folder_without_caption_encoder_names_its_command(tiny_results, tmp_path, capsys):
    folder = str(tmp_path / "results")
    os.makedirs(folder)
    for stage in (1, 2):
        for path in (layout.config_path, lambda r, s: layout.weights_path(r, s, "gen")):
            os.link(path(tiny_results, stage), path(folder, stage))
    err = one_line_error(app.main, ["--results-dir", folder], capsys)
    assert f"no trained text encoder in {folder}; run `python text_encoder.py train --results-dir {folder}`" in err


def test_without_gradio_it_names_the_requirements_file(tiny_results, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails as it does where it is missing
    err = one_line_error(app.main, ["--results-dir", tiny_results], capsys)
    assert err == "error: the page needs gradio, which is not installed: pip install -r requirements-app.txt"


def test_a_busy_port_is_one_line(tiny_results, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = one_line_error(app.main, ["--results-dir", tiny_results, "--stage", "1", "--port", str(port)], capsys)
    assert err == (
        f"error: cannot serve on 127.0.0.1 port {port}: in use, or not an address of this machine; "
        "choose another with --port or --host"
    )


# -- a real server: python app.py on the trained demo -------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_line(proc, timeout):
    """The first line the process prints on stdout, within timeout seconds ('' if it ended first)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


@pytest.fixture(scope="module")
def server(trained_demo, tmp_path_factory):
    """`python app.py` serving the trained demo on 127.0.0.1: .url, .results (its folder), .started (seconds from
    its start to the URL line), .log (its stderr, a file). Stopped with SIGTERM afterwards, which must end it as every command ends: one line,
    exit status 143, no traceback."""
    _, results = trained_demo
    folder = tmp_path_factory.mktemp("server")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", GRADIO_TEMP_DIR=str(folder / "gradio"))
    log_path = folder / "stderr.txt"
    port = free_port()
    start = time.monotonic()
    with open(log_path, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "app.py"), "--results-dir", results, "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=str(folder),
            env=env,
        )
    try:
        line = first_line(proc, timeout=240)
        started = time.monotonic() - start
        assert line == f"StackGAN page on http://127.0.0.1:{port}/ (Ctrl-C stops it)\n", log_path.read_text()[-3000:]
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}/", results=results, started=started, log=log_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.strip().splitlines()[-1] == "terminated (SIGTERM): interrupted"


def yellow_images(paths):
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    assert images.shape[1:] == (64, 64, 3)
    return int((attributes.image_colours(images) == YELLOW).sum())


def test_http_round_trip(server, tmp_path):
    from gradio_client import Client

    print(f"app.py served the trained demo {server.started:.1f} s after it started")
    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    assert {"/generate", "/new_noise", "/new_condition"} <= set(
        client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    )
    gallery, panel = client.predict(CAPTION, 8, 0, 0, api_name="/generate")
    paths = [item["image"] for item in gallery]
    yellow = yellow_images(paths)
    assert len(paths) == 8 and yellow >= 6, f"{yellow} of 8 yellow; {panel}"  # the demo draws the colour it heard
    assert COLOUR_LINE.search(panel).groups() == ("yellow", "black")
    assert "**Nearest training captions**" in panel and "yellow" in panel.split("**Nearest training captions**")[1]
    again, _ = client.predict(CAPTION, 8, 0, 0, api_name="/generate")
    assert [open(p, "rb").read() for p in paths] == [open(i["image"], "rb").read() for i in again]
    seed, noise, _ = client.predict(CAPTION, 8, 0, 0, api_name="/new_noise")
    assert seed == 1 and [open(i["image"], "rb").read() for i in noise] != [open(p, "rb").read() for p in paths]
    from gradio_client.exceptions import AppError

    demo = StackGAN.from_preset(server.results)
    for caption in ("", "a" * 300, "黄色的小鸟"):
        with pytest.raises(UserError) as plain:
            demo.heard(caption, label=page.CAPTION_LABEL)
        with pytest.raises(AppError) as shown:
            client.predict(caption, 1, 0, 0, api_name="/generate")
        assert str(shown.value) == str(plain.value)


def raw_call(url, endpoint, body):
    """POST body (JSON text, sent as is) to the page's /gradio_api/call/endpoint, as any HTTP client can: the
    error message it gets back, or None when the call succeeded."""
    import httpx

    posted = httpx.post(f"{url}gradio_api/call/{endpoint}", content=body, headers={"content-type": "application/json"})
    events = httpx.get(f"{url}gradio_api/call/{endpoint}/{posted.json()['event_id']}", timeout=120).text
    kind, data = re.search(r"event: (\w+)\ndata: (.*)", events).groups()
    return json.loads(data)["error"] if kind == "error" else None


def test_hostile_values_are_refused_in_one_line_each(server, tmp_path):
    """Values no page sends (None, text for numbers, numbers out of range, floats, bools, NaN, long text, too few
    values), straight to the API: one line back to the client, one line in the server's log, no traceback."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server.url, verbose=False, download_files=str(tmp_path))
    with open(layout.text_encoder_config_path(server.results)) as f:
        longest = json.load(f)["max_length"]
    log_start = server.log.stat().st_size
    sent = {
        "/generate": [
            ((None, 1, 0, 0), "the caption must be text, got None"),
            ((["a red bird"], 1, 0, 0), "the caption must be text, got ['a red bird']"),
            ((CAPTION, 100000, 0, 0), "samples must be from 1 to 8, got 100000"),
            ((CAPTION, -3, 0, 0), "samples must be from 1 to 8, got -3"),
            ((CAPTION, "8", 0, 0), "samples must be a whole number, got '8'"),
            ((CAPTION, 2.5, 0, 0), "samples must be a whole number, got 2.5"),
            ((CAPTION, True, 0, 0), "samples must be a whole number, got True"),
            ((CAPTION, None, 0, 0), "samples must be a whole number, got None"),
            ((CAPTION, 1, "x", 0), "the noise seed must be a whole number, got 'x'"),
            (
                (CAPTION, 1, 0, 1e30),
                "the conditioning seed must be from 0 to 2147483647, got 1000000000000000019884624838656",
            ),
            (
                ("a" * 100_000, 1, 0, 0),
                f"the caption has 100000 characters but the text encoder reads at most {longest}; shorten it",
            ),
        ],
        "/new_noise": [((CAPTION, 1, 2**31 - 1, 0), "the noise seed must be from 0 to 2147483646, got 2147483647")],
        "/new_condition": [((CAPTION, 1, 0, {"a": 1}), "the conditioning seed must be a whole number, got {'a': 1}")],
    }
    expected_log = []
    for endpoint, cases in sent.items():
        for args, message in cases:
            with pytest.raises(AppError) as shown:
                client.predict(*args, api_name=endpoint)
            assert str(shown.value) == message
            expected_log.append(f"refused {endpoint}: {message}")
    # What gradio_client cannot send: too few values, NaN, a bad example number.
    last_example = len(page.example_captions(StackGAN.from_preset(server.results).data_dir)) - 1
    names = "Caption, Samples, Noise seed (z), Conditioning seed"
    raw = [
        ("generate", '{"data": ["a red bird", 1, 0]}', f"/generate takes 4 values ({names}), got 3"),
        ("generate", '{"data": []}', f"/generate takes 4 values ({names}), got 0"),
        ("generate", '{"data": ["a red bird", NaN, 0, 0]}', "samples must be a whole number, got nan"),
        ("example", '{"data": [99999]}', f"the example's number must be from 0 to {last_example}, got 99999"),
        ("example", '{"data": ["x"]}', "the example's number must be a whole number, got 'x'"),
        ("example", '{"data": []}', "/example takes 1 value (Captions of test birds), got 0"),
    ]
    for endpoint, body, message in raw:
        assert raw_call(server.url, endpoint, body) == message
        expected_log.append(f"refused /{endpoint}: {message}")
    assert raw_call(server.url, "example", '{"data": [0]}') is None  # a good one still works
    gallery, _ = client.predict(CAPTION, 1, 0, 0, api_name="/generate")  # and so does the page
    assert len(gallery) == 1
    with open(server.log) as f:
        f.seek(log_start)
        log = f.read()
    assert "Traceback" not in log, log[-3000:]
    lines = log.splitlines()
    assert [line for line in lines if line.startswith("refused ")] == expected_log
    others = [line for line in lines if not line.startswith("refused ")]  # TensorFlow may log, but no errors
    assert not any("error" in line.lower() for line in others), others


# -- finding a browser -------------------------------------------------------------------------------------------
def under_ci(environ):
    """True where CI is set to anything but a no (CI=true: .ci/run, GitHub Actions, GitLab)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_for_the_test(environ=None, **where):
    """The browser the browser test drives (stackgan.browser.find_browser's, looking where `where` says); without
    one the test skips with a one-line reason that says how to get one, but under CI it fails."""
    environ = os.environ if environ is None else environ
    try:
        import playwright  # noqa: F401
    except ImportError:
        reason = "the browser test needs Playwright: pip install -r requirements-dev.txt"
    else:
        found = browser.find_browser(environ, **where)
        if found is not None:
            return found
        reason = f"the browser test needs a browser: {browser.NO_BROWSER}"
    if under_ci(environ):
        pytest.fail(f"CI={environ['CI']} and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser_executable():
    """Session-scoped, so that a skip comes before the server fixture trains the demo."""
    return browser_for_the_test()


def fake_executable(path, mode=0o755, text="#!/bin/sh\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return str(path)


def look_in(tmp_path, platform="linux", **environ):
    """find_browser() on a machine that is only tmp_path: its root, its home (tmp_path/home), its PATH (the folders
    given, else one empty folder)."""
    os.makedirs(tmp_path / "empty", exist_ok=True)
    environ.setdefault("PATH", str(tmp_path / "empty"))
    return browser.find_browser(environ, platform=platform, home=str(tmp_path / "home"), root=str(tmp_path))


def test_a_browser_is_found_on_path_first_in_the_order_of_path_names(tmp_path):
    bin_dir, other = tmp_path / "bin", tmp_path / "other"
    fake_executable(tmp_path / "usr/bin/chromium")  # an install place: after PATH
    fake_executable(bin_dir / "google-chrome")
    assert look_in(tmp_path, PATH=str(bin_dir)) == (str(bin_dir / "google-chrome"), "PATH")
    chromium = fake_executable(other / "chromium")  # chromium comes before google-chrome, wherever on PATH
    assert look_in(tmp_path, PATH=f"{bin_dir}{os.pathsep}{other}") == (chromium, "PATH")
    os.chmod(chromium, 0o644)  # not executable: passed over
    assert look_in(tmp_path, PATH=f"{bin_dir}{os.pathsep}{other}").path == str(bin_dir / "google-chrome")


def test_install_places_debian_ubuntu_snap_chrome(tmp_path):
    assert look_in(tmp_path) is None
    snap = fake_executable(tmp_path / "snap/bin/chromium")
    assert look_in(tmp_path) == (snap, "the usual install places")
    chrome = fake_executable(tmp_path / "opt/google/chrome/chrome")
    assert look_in(tmp_path).path == snap  # chromium before Chrome
    os.remove(snap)
    assert look_in(tmp_path).path == chrome
    debian = fake_executable(tmp_path / "usr/bin/chromium")
    assert look_in(tmp_path).path == debian
    # Ubuntu's snap: its /tmp is its own, so Playwright's driver makes the profile in the snap's home folder.
    assert browser.snap_name("/snap/bin/chromium") == "chromium" and browser.snap_name(debian) is None
    wrapper = fake_executable(tmp_path / "usr/bin/chromium-browser", text='#!/bin/sh\nexec /snap/bin/chromium "$@"\n')
    assert browser.snap_name(wrapper) == "chromium"
    folder = browser.snap_profile_parent("/snap/bin/chromium", home=str(tmp_path / "home"))
    assert folder == str(tmp_path / "home/snap/chromium/common/playwright-tmp") and os.path.isdir(folder)
    assert browser.snap_profile_parent(debian, home=str(tmp_path / "home")) is None


def test_playwright_downloads_the_newest_build_first(tmp_path):
    cache = tmp_path / "home/.cache/ms-playwright"
    shell = fake_executable(cache / "chromium_headless_shell-1255/chrome-headless-shell-linux64/chrome-headless-shell")
    assert look_in(tmp_path) == (shell, "Playwright's browsers")
    old = fake_executable(cache / "chromium-999/chrome-linux/chrome")  # an older Playwright's layout
    assert look_in(tmp_path).path == old  # a full Chromium before a headless shell
    new = fake_executable(cache / "chromium-1255/chrome-linux64/chrome")
    fake_executable(cache / "chromium-1300-partial/chrome-linux64/chrome")  # not a build folder
    assert look_in(tmp_path).path == new
    chosen = fake_executable(tmp_path / "browsers/chromium-1/chrome-linux64/chrome")
    assert look_in(tmp_path, PLAYWRIGHT_BROWSERS_PATH=str(tmp_path / "browsers")).path == chosen
    xdg = fake_executable(tmp_path / "xdg/ms-playwright/chromium-2/chrome-linux64/chrome")
    assert look_in(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg")).path == xdg


def test_macos_and_windows_places(tmp_path):
    cache = tmp_path / "home/Library/Caches/ms-playwright"
    testing = "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing"
    playwright = fake_executable(cache / "chromium-1255/chrome-mac-arm64" / testing)
    assert look_in(tmp_path, platform="darwin").path == playwright
    chromium = fake_executable(tmp_path / "home/Applications/Chromium.app/Contents/MacOS/Chromium")
    assert look_in(tmp_path, platform="darwin").path == chromium
    chrome = fake_executable(tmp_path / "Applications/Google Chrome.app/Contents/MacOS/Google Chrome")
    assert look_in(tmp_path, platform="darwin") == (chrome, "the usual install places")
    edge = fake_executable(tmp_path / "x86/Microsoft/Edge/Application/msedge.exe")
    folders = dict(PROGRAMFILES=str(tmp_path / "pf"), LOCALAPPDATA=str(tmp_path / "local"))
    folders["PROGRAMFILES(X86)"] = str(tmp_path / "x86")
    assert look_in(tmp_path, platform="win32", **folders).path == edge
    chrome_exe = fake_executable(tmp_path / "local/Google/Chrome/Application/chrome.exe")
    assert look_in(tmp_path, platform="win32", **folders).path == chrome_exe
    ms_playwright = fake_executable(tmp_path / "local/ms-playwright/chromium-1255/chrome-win64/chrome.exe")
    os.remove(chrome_exe)
    os.remove(edge)
    assert look_in(tmp_path, platform="win32", **folders).path == ms_playwright


def test_stackgan_browser_names_the_browser(tmp_path):
    fake_executable(tmp_path / "usr/bin/chromium")
    mine = fake_executable(tmp_path / "mine/chrome-dev")
    assert look_in(tmp_path, STACKGAN_BROWSER=mine) == (mine, "STACKGAN_BROWSER")
    with pytest.raises(UserError) as info:  # asked for and missing: said, not passed over
        look_in(tmp_path, STACKGAN_BROWSER=str(tmp_path / "nothing"))
    assert str(info.value) == (
        f"STACKGAN_BROWSER={tmp_path / 'nothing'} is not an executable file: name a Chromium-family browser, "
        "or unset it"
    )


def test_without_a_browser_the_test_skips_saying_how_to_get_one_but_fails_under_ci(tmp_path):
    os.makedirs(tmp_path / "empty")
    where = dict(platform="linux", home=str(tmp_path / "home"), root=str(tmp_path))
    for ci in (None, "", "false", "0"):
        environ = dict(PATH=str(tmp_path / "empty"), **({} if ci is None else {"CI": ci}))
        with pytest.raises(pytest.skip.Exception) as skipped:
            browser_for_the_test(environ, **where)
        reason = str(skipped.value)
        assert "\n" not in reason and reason.startswith("the browser test needs a browser: no Chromium-family")
        for how in (
            "apt-get install chromium",
            "snap install chromium",
            "Google Chrome",
            "playwright install chromium",
        ):
            assert how in reason
    for ci in ("true", "1", "True"):
        with pytest.raises(pytest.fail.Exception) as failed:
            browser_for_the_test(dict(PATH=str(tmp_path / "empty"), CI=ci), **where)
        assert str(failed.value) == f"CI={ci} and {reason}"
    debian = fake_executable(tmp_path / "usr/bin/chromium")
    assert browser_for_the_test(dict(PATH=str(tmp_path / "empty"), CI="true"), **where).path == debian


def test_screenshot_without_a_browser_is_one_line_before_anything_loads(monkeypatch, capsys, tmp_path):
    os.makedirs(tmp_path / "empty")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("STACKGAN_BROWSER", "XDG_CACHE_HOME", "PLAYWRIGHT_BROWSERS_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(browser, "LINUX_PLACES", ())  # this machine's own chromium, if any, is not looked for
    folder = str(tmp_path / "no-results")  # loading it would fail: the browser is looked for first
    err = one_line_error(app.main, ["--results-dir", folder, "--screenshot", str(tmp_path / "a.png")], capsys)
    assert err == f"error: {browser.NO_BROWSER}"


def test_in_a_real_browser(browser_executable, server, tmp_path):
    url = server.url
    shot = tmp_path / "app.png"
    print(f"driving {browser_executable.path} (found in {browser_executable.found_in})")
    with browser.chromium(browser_executable.path) as chromium:
        tab, panel = browser.capture(chromium, url, shot)  # what `python app.py --screenshot` does
        assert COLOUR_LINE.search(panel).groups() == ("yellow", "black"), panel
        assert "Words it cannot read: none" in panel and "Nearest training captions" in panel
        images = browser.images_of(tab, 1)
        assert len(images) == 4 and all(src.startswith(url) for src in images)  # the default 4 samples, served
        with Image.open(shot) as im:
            assert im.format == "PNG" and im.width == browser.VIEWPORT["width"] and im.height >= 600
        tab.locator("#new-noise").click()  # new noise: the seed box says 1 and the birds change
        tab.wait_for_function("() => document.querySelector('#seed input').value === '1'")
        tab.wait_for_function(
            "before => { const now = [...document.querySelectorAll('#stage1 img')].map(i => i.src);"
            " return now.length === 4 && now.every(s => !before.includes(s)); }",
            arg=images,
        )
        demo = StackGAN.from_preset(server.results)
        examples = page.example_captions(demo.data_dir)  # a click on an example puts it in the caption box
        tab.locator("#examples button").nth(2).click()
        tab.wait_for_function("text => document.querySelector('#caption textarea').value === text", arg=examples[2])
        with pytest.raises(UserError) as plain:
            demo.heard("   ", label=page.CAPTION_LABEL)
        assert browser.error_shown(tab, "   ") == str(plain.value)
        assert tab.refused == []  # the page asked for nothing but its own server
