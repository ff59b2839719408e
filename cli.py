"""Command-line plumbing shared by every script: user errors become one line and exit status 2."""

import sys


class UserError(Exception):
    """Bad input from the user (a missing file, a wrong value): printed as one line, exit status 2."""


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
    """argparse type: a whole number >= 1 (argparse turns the error into a usage message, exit 2)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
