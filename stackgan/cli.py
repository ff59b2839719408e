"""Command-line plumbing shared by every script: user errors become one line and exit status 2.

Every argparse type here rejects a bad value with a message that names it, so that `--g-lr nan`,
`--seed -1` or `--epochs 0` end in one line, not in a traceback minutes later.
"""

import argparse
import math
import signal
import sys


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


def run_main(main, argv=None):
    """Run `main(argv)`: a UserError becomes `error: <message>` on stderr and exit status 2; Ctrl-C and SIGTERM
    (raised as KeyboardInterrupt where the program is, so that `finally` blocks and atomic writes clean up)
    become one line and exit status 130 / 143."""
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Stopped) as err:
        message = str(err) if isinstance(err, Stopped) else "interrupted"
        print(f"{'terminated' if terminated else 'stopped'}: {message}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    finally:
        signal.signal(signal.SIGTERM, previous)


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
