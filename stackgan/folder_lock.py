"""One run per results folder: an exclusive lock on <folder>/.lock that dies with its process (fcntl.flock), so that
two runs never interleave their checkpoints and history, and a killed run never leaves a lock behind.

The lock file holds the holder's process id and command line, for the message that refuses a second run. A process
may take the lock of a folder it already holds (the demo's caption encoder trains into the folder of its Stage-I run).
"""

import contextlib
import os
import socket
import sys

from stackgan.cli import UserError, describe_os_error
from stackgan.io import WriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock
    fcntl = None

LOCK_FILE = ".lock"
_held = {}  # real path of a folder this process holds -> how many blocks hold it


def lock_path(folder):
    return os.path.join(folder, LOCK_FILE)


@contextlib.contextmanager
def hold(folder, flag="--results-dir"):
    """Hold the lock of `folder` (created if missing) for the block. Another process holding it is a UserError that
    names its process id and says what to do (`flag` names the option that chose the folder)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise WriteError(folder, err) from None
    key = os.path.realpath(folder)
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _release_count(key)
        return
    handle = _acquire(folder, flag)
    _held[key] = 1
    try:
        yield
    finally:
        _release_count(key)
        handle.close()  # closing the file releases the lock


def _release_count(key):
    _held[key] -= 1
    if not _held[key]:
        del _held[key]


def _acquire(folder, flag):
    """The open lock file, locked; UserError if another process holds it."""
    path = lock_path(folder)
    try:
        handle = open(path, "a+")
    except OSError as err:
        raise WriteError(path, err) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = " ".join(handle.read().split())[:200] or "a process that has not yet written its id"
        handle.close()
        raise UserError(
            f"{folder} is in use by another run ({holder}); wait for it to end or stop it, or give another {flag}"
        ) from None
    except OSError as err:  # a file system without locks: say so, and go on unprotected
        print(
            f"warning: cannot lock {path} ({describe_os_error(err)}); make sure no other run uses it", file=sys.stderr
        )
        return handle
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} on {socket.gethostname()}: {_command()}\n")
        handle.flush()
    except OSError:
        pass  # a full disk: the lock holds without the note
    return handle


def _command():
    """This process's command line, short: `stage1.py --demo`."""
    argv = sys.argv or ["python"]
    return " ".join([os.path.basename(argv[0])] + argv[1:])[:160]
