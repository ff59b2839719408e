"""Command-line plumbing shared by every script: user errors become one line and exit status 2.

Every argparse type here rejects a bad value with a message that names it, so that `--g-lr nan`,
`--seed -1` or `--epochs 0` end in one line, not in a traceback minutes later.
"""

import argparse
import contextlib
import math
import os
import signal
import sys
import threading


class UserError(Exception):
    """Bad input from the user (a missing file, a wrong value): printed as one line, exit status 2."""


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C, SIGTERM) and stopped at a safe point."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a bad value) are one-line UserErrors like every other."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


# The stop signal the process received, if any: SIGINT (Ctrl-C) or SIGTERM.
_received = []


def run_main(main, argv=None):
    """Run `main(argv)`: a UserError becomes `error: <message>` on stderr and exit status 2, as does an OSError that
    reached no closer handler (a full disk, a read-only folder). Ctrl-C and SIGTERM become one line and exit status
    130 / 143: SIGTERM is raised as KeyboardInterrupt where the program is (so that `finally` blocks and atomic
    writes clean up), except inside `safe_points()`, where both wait for the next safe point of a training loop."""

    def on_sigterm(signum, frame):
        _received.append(signum)
        raise KeyboardInterrupt

    _received.clear()
    previous = _set_handler(signal.SIGTERM, on_sigterm)
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Stopped) as err:
        terminated = signal.SIGTERM in _received
        message = str(err) if isinstance(err, Stopped) else "interrupted"
        print(f"{'terminated (SIGTERM)' if terminated else 'stopped (Ctrl-C)'}: {message}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    finally:
        _set_handler(signal.SIGTERM, previous)


def describe_os_error(err, path=None):
    """One line for an OSError: the file it concerns and the system's reason (h5py and TF write theirs over several
    lines; the errno says it in a few words)."""
    reason = os.strerror(err.errno) if err.errno else (str(err).splitlines() or [type(err).__name__])[0][:200]
    path = path or err.filename
    return f"{path}: {reason}" if path else reason


_NOT_SET = object()


def _set_handler(signum, handler):
    """signal.signal where it is allowed (the main thread): returns the previous handler (SIG_DFL for one installed
    outside Python), or _NOT_SET where nothing was changed; setting _NOT_SET changes nothing."""
    if handler is _NOT_SET or threading.current_thread() is not threading.main_thread():
        return _NOT_SET
    previous = signal.signal(signum, handler)
    return signal.SIG_DFL if previous is None else previous


class SafePoints:
    """What `safe_points()` yields: the stop signal received so far (None if none)."""

    def __init__(self):
        self.signal = None


_safe_points = []


@contextlib.contextmanager
def safe_points():
    """Within the block, Ctrl-C and SIGTERM do not interrupt: they ask the run to stop, and `check_stop()` raises
    Stopped at the next safe point (between step calls or epochs, never inside a checkpoint write). A second signal
    interrupts at once. Outside the main thread (where signals cannot be handled) the block runs unchanged."""
    points = SafePoints()

    def on_signal(signum, frame):
        _received.append(signum)
        if points.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        points.signal = signum
        if signum == signal.SIGINT:  # someone at the terminal: say why it goes on a moment
            print("\nCtrl-C: stopping at the next safe point (press it again to stop at once)", file=sys.stderr)

    previous = {s: _set_handler(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    _safe_points.append(points)
    try:
        yield points
    finally:
        _safe_points.remove(points)
        for signum, handler in previous.items():
            _set_handler(signum, handler)


def stop_requested():
    """True if a stop signal came since the innermost safe_points() began."""
    return bool(_safe_points) and _safe_points[-1].signal is not None


def check_stop(message):
    """At a safe point: raise Stopped(message) if a stop signal came since safe_points() began."""
    if stop_requested():
        raise Stopped(message)


def _number(text, kind, what):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text):
    """argparse type: a whole number >= 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def caption_index(text):
    """argparse type: which of an image's captions, a number from 0 or 'mean' (their average)."""
    if text == "mean":
        return "mean"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a caption number (0, 1, ...) nor 'mean'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; caption numbers start at 0")
    return value


def non_negative_int(text):
    """argparse type: a whole number >= 0 (seeds)."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def positive_float(text):
    """argparse type: a finite number > 0 (learning rates)."""
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be greater than 0")
    return value


def non_negative_float(text):
    """argparse type: a finite number >= 0 (loss weights)."""
    value = _number(text, float, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def probability(text):
    """argparse type: a number from 0 to 1."""
    value = _number(text, float, "a number")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be from 0 to 1")
    return value


def momentum(text):
    """argparse type: the momentum of a moving average, from 0 up to (not including) 1."""
    value = _number(text, float, "a number")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is a momentum: from 0 up to (not including) 1")
    return value


def beta(text):
    """argparse type: an Adam beta, from 0 up to (not including) 1."""
    return momentum(text)
