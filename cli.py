"""Command-line plumbing shared by every script: user errors become one line and exit status 2."""

import argparse
import sys


class UserError(Exception):
    """Bad input from the user (a missing file, a wrong value): printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (an unknown flag, a bad value) are one-line UserErrors like every other."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default in --help, except where there is none to show."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def run_main(main, argv=None):
    """Run `main(argv)`; turn a UserError into `error: <message>` on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
