"""Helpers the tests share (fixtures are in conftest.py)."""

import os
import pickle
import subprocess
import sys

from stackgan import layout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared synthetic set: small enough to write in a second, every class present in both splits.
BIRDS = dict(n_train=48, n_test=16, seed=0)
# The shared synthetic flowers: two flowers of each of the 32 training and the 8 test classes.
FLOWERS = dict(n_train=64, n_test=16, seed=0)
# Tiny networks for tests that train: widths, batch and no XLA (compiling every tiny step would double the time;
# XLA has its own tests).
TINY = ["--gf-dim", "8", "--df-dim", "4", "--z-dim", "8", "--condition-dim", "8", "--batch-size", "8", "--xla", "off"]
TINY_NETWORKS = dict(gf_dim=8, df_dim=4, z_dim=8, condition_dim=8)
# The three pickles of a StackGAN split: file names, class labels, embeddings.
PICKLES = (layout.FILENAMES_FILE, layout.CLASS_INFO_FILE, layout.EMBEDDINGS_FILE)


def common(data_dir, results, logs):
    """The folders of a training command."""
    return ["--data-dir", str(data_dir), "--results-dir", str(results), "--log-dir", str(logs)]


def run_cli(script, *args, cwd=REPO, env=None, timeout=300):
    """A repository command in a fresh process: the CompletedProcess, text output."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run(
        [sys.executable, os.path.join(REPO, script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def last_error_line(result):
    """The one line a failed command printed last on stderr (and no traceback before it)."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stderr.strip().splitlines()[-1]


def one_line_error(main, argv, capsys):
    """main(argv), run as a command runs it, must exit with status 2 and one 'error: ...' line: returns that line."""
    import pytest

    from stackgan.cli import run_main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def split_paths(data_dir, split="train"):
    """The three pickles of a StackGAN split: file names, class labels, embeddings."""
    from stackgan import layout

    return [
        os.path.join(data_dir, split, f)
        for f in (layout.FILENAMES_FILE, layout.CLASS_INFO_FILE, layout.EMBEDDINGS_FILE)
    ]


def dump(path, obj):
    """Pickle `obj` as the Python-2 era files are (protocol 2)."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
