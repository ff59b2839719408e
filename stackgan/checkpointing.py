"""The folder of any trained thing (a stage's GAN, the caption encoder), in one place: one run per results folder (a
lock), the checkpoints that never lose a run, the settings a resumed run must share, the refusal to overwrite an
exported model that has no checkpoint to resume, and where a stopped run resumes (TrainedFolder).

The lock: an exclusive fcntl.flock on <folder>/.lock that dies with its process, so that two runs never interleave
their checkpoints and history, and a killed run never leaves a lock behind. The lock file holds the holder's process
id and command line, for the message that refuses a second run. A process may take the lock of a folder it already
holds (the demo's caption encoder trains into the folder of its Stage-I run).

The checkpoints (CheckpointFolder): ckpt-N, TF's state file `checkpoint` that lists them, and config.json, the
settings of the run that wrote them (written before each checkpoint, so every checkpoint has its settings beside it).
Opening the folder
- removes what killed runs left: TF's ckpt-N_temp folders and *.tempstate* files, `checkpoint.tmp*`, .tmp-* files;
- settles an interrupted --fresh: `--fresh` sets the old run aside as <folder>.previous and deletes it only once the
  new run's first checkpoint is written; if the new run died before that, the old run comes back;
- finds the newest checkpoint whose every tensor reads back, whatever the state file says: a missing, garbled or
  stale state file, or a damaged newest checkpoint, is recovered from (and said so), and the state file rewritten to
  list the checkpoints found, so that tf.train.CheckpointManager deletes only checkpoints it understands; with none
  readable, the run is refused in one line that names --fresh. A resumed run never starts over silently.
"""

import contextlib
import json
import os
import re
import shutil
import socket
import sys

from stackgan import io
from stackgan.cli import UserError, describe_os_error

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
        raise io.WriteError(folder, err) from None
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
        raise io.WriteError(path, err) from None
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


CONFIG_FILE = "config.json"
STATE_FILE = "checkpoint"
PREVIOUS_SUFFIX = ".previous"
_CHECKPOINT = re.compile(r"^ckpt-(\d+)\.index$")
_TF_LEFTOVER = re.compile(r"^(ckpt-\d+_temp.*|.*\.tempstate\d*|checkpoint\.tmp.*)$")


@contextlib.contextmanager
def quiet_tensorflow():
    """TF's Python logger at ERROR for the block: the messages here say what its warnings would."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


class CheckpointFolder:
    """One run's checkpoint folder. `extras` are files of the run outside the folder (its history) that --fresh sets
    aside with it. Only the chief changes anything on disk; `write_dir` is where this worker's saves go (the folder
    itself on the chief)."""

    def __init__(self, directory, max_to_keep, chief=True, write_dir=None, extras=()):
        self.directory = directory
        self.previous = directory + PREVIOUS_SUFFIX
        self.max_to_keep = max_to_keep
        self.chief = chief
        self.write_dir = write_dir or directory
        self.extras = tuple(extras)
        self.manager = None

    @property
    def config_path(self):
        return os.path.join(self.directory, CONFIG_FILE)

    def open(self, fresh, log=print):
        """Settle the folder as the module says. Returns (path of the checkpoint to restore, its saved config dict
        or None); (None, None) for a new run. With `fresh`, an existing run is set aside."""
        if self.chief:
            self.remove_leftovers()
            self._settle_previous(log)
        found = self._scan()
        if fresh:
            if self.chief and (found or os.path.exists(self.config_path)):
                self._set_aside(log)
            return None, None
        if not found:
            return None, None
        number, damaged = self._newest_readable(found)
        notes = self._state_notes(found, number, damaged)
        if number is None:
            raise UserError(
                f"no checkpoint in {self.directory} can be read ({'; '.join(notes)}); put back a good copy of the "
                f"folder, or pass --fresh to start over"
            )
        if notes and self.chief:
            log(f"Recovered {self.directory}: {'; '.join(notes)}; resuming from ckpt-{number}")
            self._rewrite_state([n for n in sorted(found) if n <= number and n not in dict(damaged)])
        return found[number], self._read_config()

    def track(self, checkpoint):
        """The tf.train.CheckpointManager that saves `checkpoint` from now on (after open)."""
        import tensorflow as tf

        with quiet_tensorflow():
            self.manager = tf.train.CheckpointManager(checkpoint, self.write_dir, max_to_keep=self.max_to_keep)
        return self.manager

    def write_config(self, config):
        """config.json: written before each checkpoint, so that no checkpoint is without its settings."""
        if self.chief:
            io.write_json(self.config_path, config)

    def save(self, number):
        """Checkpoint `number` (every worker: the save is collective). A failed write removes its partial files and
        is a one-line UserError; the newest complete checkpoint stays the newest. The first checkpoint of a --fresh
        run ends the previous run."""
        import tensorflow as tf

        try:
            with quiet_tensorflow():
                self.manager.save(checkpoint_number=number)
        except tf.errors.OpError as err:
            self.remove_leftovers()
            raise io.TensorFlowWriteError(f"a checkpoint in {self.write_dir}", err) from None
        if self.chief and os.path.isdir(self.previous):
            shutil.rmtree(self.previous, ignore_errors=True)

    def close(self):
        """Off the chief, remove the scratch folder its collective saves wrote into."""
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    # ------------------------------------------------------------------
    def remove_leftovers(self):
        """Remove the partial files of interrupted writes: TF's ckpt-N_temp folders and .tempstate files, its
        temporary state files, and our .tmp-* files of processes that are gone."""
        for folder in {self.directory, self.write_dir}:
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                path = os.path.join(folder, name)
                if _TF_LEFTOVER.match(name):
                    shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else io.remove_quietly(path)
            io.remove_stale_temps(folder)

    def _scan(self):
        """{N: prefix path} of the ckpt-N whose index file is in the folder."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return {}
        found = {}
        for name in names:
            m = _CHECKPOINT.match(name)
            if m:
                found[int(m.group(1))] = os.path.join(self.directory, f"ckpt-{m.group(1)}")
        return found

    def _newest_readable(self, found):
        """(the newest N whose checkpoint reads back, [(N, problem)] of the newer ones that do not)."""
        damaged = []
        for number in sorted(found, reverse=True):
            problem = unreadable(found[number])
            if problem is None:
                return number, damaged
            damaged.append((number, problem))
        return None, damaged

    def _state_notes(self, found, number, damaged):
        """What was wrong with the folder, as notes for the message; [] when the state file names `number`."""
        notes = [f"ckpt-{n} is damaged ({problem})" for n, problem in damaged]
        state = read_state(self.directory)
        if state == "missing":
            notes.append(f"its state file {STATE_FILE} is missing")
        elif state == "unreadable":
            notes.append(f"its state file {STATE_FILE} is unreadable")
        else:
            named = os.path.basename(state.model_checkpoint_path)
            if named != f"ckpt-{number}" and not any(named == f"ckpt-{n}" for n, _ in damaged):
                notes.append(
                    f"its state file names {named}, which is missing"
                    if not os.path.exists(state.model_checkpoint_path + ".index")
                    else f"its state file names {named}, but ckpt-{number} is newer"
                )
        return notes

    def _rewrite_state(self, numbers):
        """TF's state file, listing ckpt-N for `numbers` (newest last) with their files' times, so that the
        CheckpointManager keeps the newest and deletes the oldest as it would have."""
        import tensorflow as tf

        names = [f"ckpt-{n}" for n in numbers]
        times = [os.path.getmtime(os.path.join(self.directory, n + ".index")) for n in names]
        with quiet_tensorflow():
            tf.compat.v1.train.update_checkpoint_state(
                self.directory,
                names[-1],
                all_model_checkpoint_paths=names,
                all_model_checkpoint_timestamps=times,
                last_preserved_timestamp=0.0,
            )

    def _read_config(self):
        """The saved settings; None when the folder has no config.json (one copied without it)."""
        if not os.path.exists(self.config_path):
            return None
        try:
            with open(self.config_path) as f:
                saved = json.load(f)
            if not isinstance(saved, dict):
                raise ValueError("not a JSON object")
            return saved
        except (OSError, ValueError) as err:
            raise UserError(
                f"{self.config_path} is unreadable ({type(err).__name__}: {str(err)[:80]}): it records the settings "
                f"the checkpoints were made with; put back a good copy, delete it to resume without comparing "
                f"settings, or pass --fresh to start over"
            ) from None

    def _set_aside(self, log):
        """--fresh: move the run to <folder>.previous (with its extras), where it stays until the new run's first
        checkpoint is written."""
        shutil.rmtree(self.previous, ignore_errors=True)
        os.rename(self.directory, self.previous)
        for path in self.extras:
            if os.path.exists(path):
                os.replace(path, os.path.join(self.previous, os.path.basename(path)))
        os.makedirs(self.directory, exist_ok=True)
        log(
            f"--fresh: the run in {self.directory} is kept in {self.previous} until this run's first checkpoint "
            f"is written, then deleted"
        )

    def _settle_previous(self, log):
        """After an interrupted --fresh: keep the new run if it wrote a checkpoint, else bring the previous one
        back."""
        if not os.path.isdir(self.previous):
            return
        if self._scan():
            shutil.rmtree(self.previous, ignore_errors=True)
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        for path in self.extras:
            kept = os.path.join(self.previous, os.path.basename(path))
            if os.path.exists(kept):
                os.replace(kept, path)
        os.rename(self.previous, self.directory)
        log(f"A --fresh run stopped before its first checkpoint: the previous run is back in {self.directory}")


def read_state(directory):
    """TF's CheckpointState of the folder, 'missing' or 'unreadable'."""
    import tensorflow as tf

    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return "missing"
    try:
        with quiet_tensorflow():
            state = tf.train.get_checkpoint_state(directory)
    except Exception:
        return "unreadable"
    return state if state is not None and state.model_checkpoint_path else "unreadable"


def unreadable(prefix):
    """None if every tensor of the checkpoint at `prefix` reads back (TF checks each one's checksum), else what
    went wrong, in a few words."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_dtype_map():
            reader.get_tensor(name)
    except Exception as err:
        text = getattr(err, "message", str(err))
        return f"{type(err).__name__}: {text.splitlines()[0][:80] if text else ''}"
    return None


class TrainedFolder:
    """The results folder of one trained thing: `what` names it in messages ('a Stage-I generator', 'a text
    encoder'), `export` is the (config, weights) it exports (their presence means it was trained there; the config
    says how long), `checkpoint_dir` holds its CheckpointFolder. Only the chief changes anything on disk; `write_dir`
    is where this worker's checkpoints go."""

    def __init__(self, results_dir, checkpoint_dir, what, export, max_to_keep, chief=True, write_dir=None, extras=()):
        self.results_dir, self.what, self.chief = results_dir, what, chief
        self.export_config, self.export_weights = export
        self.checkpoints = CheckpointFolder(checkpoint_dir, max_to_keep, chief, write_dir, extras)
        self.directory = checkpoint_dir
        self.saved_epoch = 0  # the epoch of the newest checkpoint: where a stopped run resumes

    @contextlib.contextmanager
    def held(self, *more_folders):
        """The results folder's lock for the block (taken by the chief; the other workers write elsewhere), with the
        temporary files of killed runs removed from it and from more_folders."""
        if not self.chief:
            yield
            return
        with hold(self.results_dir):
            for folder in (self.results_dir, *more_folders):
                io.remove_stale_temps(folder)
            yield

    def restore(self, checkpoint, settings, fresh, compare, log=print):
        """Restore the newest readable checkpoint into `checkpoint` (a tf.train.Checkpoint) unless fresh, after
        compare(saved settings, settings) -> (refused, announced) lists of 'key=saved (now new)': refused ones stop the
        run in one line, announced ones are said. Without a checkpoint, an export of an earlier run is not
        overwritten unless fresh. Returns the restored checkpoint's path, or None for a new run."""
        import tensorflow as tf

        latest, saved = self.checkpoints.open(fresh, log)
        if latest is None and not fresh:
            self._refuse_to_overwrite_an_export()
        elif latest:
            self._check_settings(saved, settings, compare, log)
            try:
                checkpoint.restore(latest).assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as err:
                tf.get_logger().setLevel("ERROR")  # not TF's "unrestored values" warnings after the message
                raise UserError(
                    f"{latest} does not fit these networks ({type(err).__name__}; checkpoints of earlier versions of "
                    f"this project need retraining); pass --fresh to start over"
                ) from None
        self.checkpoints.track(checkpoint)
        return latest

    def _check_settings(self, saved, settings, compare, log):
        if saved is None:
            log(f"note: {self.checkpoints.config_path} is missing; resuming without comparing settings")
            return
        refused, announced = compare(saved, settings)
        if refused:
            raise UserError(
                f"the checkpoint in {self.directory} was trained with {', '.join(refused)}; "
                "pass the same settings to resume, or --fresh to start over"
            )
        if announced:
            log(f"Resuming with a new learning-rate schedule: {', '.join(announced)}")

    def _refuse_to_overwrite_an_export(self):
        """No checkpoint to resume, but the export of an earlier run: training from scratch would replace it, so it
        takes --fresh."""
        if not (self.chief and os.path.exists(self.export_weights)):
            return
        raise UserError(
            f"{self.results_dir} holds {self.what} {self.trained()} but {self.directory} has no checkpoint to resume it "
            f"from; pass --fresh to train a new one in its place, or give another --results-dir"
        )

    def exported_epochs(self):
        """The epochs the exported model was trained, as its config says; None if it cannot tell."""
        try:
            with open(self.export_config) as f:
                return int(json.load(f)["epochs_trained"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def trained(self):
        epochs = self.exported_epochs()
        return "of an earlier run" if epochs is None else f"trained {epochs} epochs"

    def save(self, epoch, settings):
        """Checkpoint `epoch` with its settings beside it (every worker: the save is collective)."""
        self.checkpoints.write_config(settings)
        self.checkpoints.save(epoch)
        self.saved_epoch = epoch

    def stop_message(self, where):
        """Where a stopped run stopped and where it resumes."""
        resume = (
            f"the same command resumes from the checkpoint of epoch {self.saved_epoch} in {self.directory}"
            if self.saved_epoch
            else "no checkpoint was written yet"
        )
        return f"stopped {where}; {resume}"

    def close(self):
        self.checkpoints.close()
