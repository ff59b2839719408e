"""Faults a run must survive with nothing lost (stackgan.checkpointing, folder_lock, cli.safe_points, io): damaged
checkpoint folders, an interrupted --fresh, a kill between the history and the checkpoint, two runs on one folder,
SIGTERM and Ctrl-C, what killed runs leave behind, full disks and unwritable folders. Every damaged file is made here."""

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

import stage1
from helpers import REPO, TINY, common, last_error_line, one_line_error
from stackgan import cli, folder_lock, io, layout
from stackgan.training import checkpoints as run_checkpoints

TINY_RUN = TINY + ["--mixed-precision", "off"]


def history_epochs(results):
    with open(layout.history_path(str(results), 1)) as f:
        return [row["epoch"] for row in json.load(f)]


def exported_epochs(results):
    with open(layout.config_path(str(results), 1)) as f:
        return json.load(f)["epochs_trained"]


def checkpoint_numbers(results):
    names = os.listdir(layout.checkpoint_dir(str(results), 1))
    return sorted(int(n[5:-6]) for n in names if n.startswith("ckpt-") and n.endswith(".index"))


@pytest.fixture(scope="module")
def three_epochs(birds, tmp_path_factory):
    """A results folder of a tiny Stage-I run of 3 epochs (checkpoints 1-3); tests copy it before changing it."""
    results = tmp_path_factory.mktemp("three") / "r"
    stage1.main(common(birds, results, tmp_path_factory.mktemp("logs")) + TINY_RUN + ["--epochs", "3"])
    return results


@pytest.fixture
def run_copy(three_epochs, birds, tmp_path):
    """(copy of three_epochs, its checkpoint folder, the training arguments for it)."""
    results = tmp_path / "r"
    shutil.copytree(three_epochs, results)
    return results, results / "stage1_ckpt", common(birds, results, tmp_path / "l") + TINY_RUN


def truncate(path, keep):
    with open(path, "rb") as f:
        head = f.read(keep)
    with open(path, "wb") as f:
        f.write(head)


def remove_checkpoint(ckpt_dir, number):
    for name in os.listdir(ckpt_dir):
        if name.startswith(f"ckpt-{number}."):
            os.remove(ckpt_dir / name)


def garble_state(ckpt_dir):
    (ckpt_dir / "checkpoint").write_bytes(b"\x00\xffmodel_checkpoint_path: {")


def truncate_newest(ckpt_dir):
    truncate(ckpt_dir / "ckpt-3.data-00000-of-00001", 5000)


# Damages, two in one run where they combine (to keep the tests quick): how, where the run resumes, what it says.
DAMAGES = {
    "state file garbled, newest checkpoint truncated": (
        (garble_state, truncate_newest),
        2,
        ("ckpt-3 is damaged (", "its state file checkpoint is unreadable"),
    ),
    "state file missing": ((lambda d: os.remove(d / "checkpoint"),), 3, ("its state file checkpoint is missing",)),
    "newest checkpoint deleted": ((lambda d: remove_checkpoint(d, 3),), 2, ("names ckpt-3, which is missing",)),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_checkpoint_folder_resumes_from_the_newest_readable_checkpoint(run_copy, damage, capsys):
    results, ckpt_dir, args = run_copy
    spoilers, resumed, notes = DAMAGES[damage]
    for spoil in spoilers:
        spoil(ckpt_dir)
    capsys.readouterr()
    stage1.main(args + ["--epochs", "4"])
    out = capsys.readouterr().out
    assert f"Recovered {ckpt_dir}: " in out and f"resuming from ckpt-{resumed}" in out
    assert all(note in out for note in notes), out
    assert f"at epoch {resumed} (optimizer step {6 * resumed})" in out  # not a silent restart from epoch 1
    assert history_epochs(results) == [1, 2, 3, 4] and exported_epochs(results) == 4
    # The state file was rebuilt, so the manager went on deleting the oldest checkpoints, and only those.
    assert checkpoint_numbers(results) == [2, 3, 4]


def test_no_readable_checkpoint_is_refused_in_one_line_and_nothing_is_deleted(run_copy, capsys):
    results, ckpt_dir, args = run_copy
    for number in (1, 2, 3):
        truncate(ckpt_dir / f"ckpt-{number}.index", 10)
    before = sorted(os.listdir(ckpt_dir))
    exported = (results / "stage1_gen.weights.h5").read_bytes()
    err = one_line_error(stage1.main, args + ["--epochs", "4"], capsys)
    assert f"no checkpoint in {ckpt_dir} can be read" in err and "ckpt-3 is damaged" in err and "--fresh" in err
    assert sorted(os.listdir(ckpt_dir)) == before
    assert (results / "stage1_gen.weights.h5").read_bytes() == exported


def test_a_corrupt_config_in_the_checkpoint_folder_is_refused_in_one_line(run_copy, capsys):
    results, ckpt_dir, args = run_copy
    (ckpt_dir / "config.json").write_text('{"gf_dim": 8,')
    err = one_line_error(stage1.main, args + ["--epochs", "4"], capsys)
    assert "config.json is unreadable (JSONDecodeError" in err and "--fresh" in err
    assert checkpoint_numbers(results) == [1, 2, 3] and history_epochs(results) == [1, 2, 3]


def test_exported_weights_without_checkpoints_are_not_overwritten_silently(run_copy, capsys):
    results, ckpt_dir, args = run_copy
    shutil.rmtree(ckpt_dir)
    exported = (results / "stage1_gen.weights.h5").read_bytes()
    err = one_line_error(stage1.main, args + ["--epochs", "1"], capsys)
    assert "holds a Stage-I generator trained 3 epochs" in err and "--fresh" in err
    assert (results / "stage1_gen.weights.h5").read_bytes() == exported


def test_an_interrupted_fresh_run_leaves_the_old_run_resumable(run_copy, monkeypatch, capsys):
    """--fresh sets the old run aside until the new run's first checkpoint: a new run (other widths) stopped in its
    first epoch leaves the old one to resume, with its history; a finished --fresh run replaces it."""
    from stackgan.training import loop

    results, ckpt_dir, args = run_copy
    wider = [a if a != "8" else "16" for a in args]  # --gf-dim 16 ...

    def killed(ctx, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        stage1.main(wider + ["--epochs", "2", "--fresh"])
    monkeypatch.undo()
    capsys.readouterr()
    stage1.main(args + ["--epochs", "4"])
    out = capsys.readouterr().out
    assert f"the previous run is back in {ckpt_dir}" in out and "at epoch 3" in out
    assert history_epochs(results) == [1, 2, 3, 4] and not os.path.exists(f"{ckpt_dir}.previous")
    stage1.main(wider + ["--epochs", "1", "--fresh"])
    assert history_epochs(results) == [1] and checkpoint_numbers(results) == [1]
    assert not os.path.exists(f"{ckpt_dir}.previous") and exported_epochs(results) == 1


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def litter(results, ckpt_dir, data_dir):
    """What kill -9 leaves: our .tmp-<pid>.<host>.* files (results, sample grids, the cache), TF's ckpt-N_temp
    folder, .tempstate files and temporary state files. Returns them, and a live process's temporary file."""
    dead = io.temp_prefix(dead_pid())
    cache = layout.cache_dir(data_dir)
    files = [results / f"{dead}a.json", results / "stage1" / f"{dead}b.png", ckpt_dir / "checkpoint.tmp0a1b",
             ckpt_dir / "ckpt-5.index.tempstate123", os.path.join(cache, f"{dead}c.npy")]  # fmt: skip
    for path in files:
        open(path, "w").close()
    os.makedirs(ckpt_dir / "ckpt-5_temp")
    live = os.path.join(cache, f"{io.temp_prefix()}d.npy")  # this process's: alive
    open(live, "w").close()
    return files + [ckpt_dir / "ckpt-5_temp"], live


def test_a_kill_after_the_checkpoint_loses_nothing_and_its_leftovers_go(run_copy, birds_copy, monkeypatch, capsys):
    """A run killed after writing checkpoint 4 but before exporting it: the next run has every history row, exports
    epoch 4 although it has nothing left to train, and removes the temporary files of killed runs (not those of live
    ones)."""
    results, ckpt_dir, args = run_copy
    args = [birds_copy if a == args[1] else a for a in args]

    def killed(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_checkpoints.RunCheckpoint, "export", killed)
    with pytest.raises(KeyboardInterrupt):
        stage1.main(args + ["--epochs", "4"])
    monkeypatch.undo()
    assert checkpoint_numbers(results) == [2, 3, 4] and exported_epochs(results) == 3
    stale, live = litter(results, ckpt_dir, birds_copy)
    capsys.readouterr()
    stage1.main(args + ["--epochs", "4"])
    assert "Exporting the weights of epoch 4" in capsys.readouterr().out
    assert history_epochs(results) == [1, 2, 3, 4] and exported_epochs(results) == 4
    assert not [p for p in stale if os.path.exists(p)] and os.path.exists(live)


# ---------------------------------------------------------------------------
# One run per results folder
# ---------------------------------------------------------------------------
def hold_in_another_process(folder):
    """A process that holds the folder's lock until killed."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from stackgan import folder_lock; "
        "lock = folder_lock.hold(sys.argv[2]); lock.__enter__(); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, REPO, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_on_one_results_folder_is_refused_naming_the_holder(run_copy, capsys):
    from stackgan.config import EncoderConfig
    from stackgan.text import training

    results, ckpt_dir, args = run_copy
    holder = hold_in_another_process(results)
    try:
        err = one_line_error(stage1.main, args + ["--epochs", "4"], capsys)
        assert f"{results} is in use by another run (PID {holder.pid} " in err and "--results-dir" in err
        with pytest.raises(cli.UserError, match=f"PID {holder.pid} "):
            training.train(EncoderConfig(data_dir=args[1], results_dir=str(results), epochs=1, conv_dims=(8, 8)))
        assert checkpoint_numbers(results) == [1, 2, 3]
    finally:
        holder.kill()
        holder.wait()
    with folder_lock.hold(str(results)):  # the lock died with its process
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with folder_lock.hold(str(tmp_path)), folder_lock.hold(str(tmp_path / ".")):
        assert (tmp_path / folder_lock.LOCK_FILE).is_file()
    holder = hold_in_another_process(tmp_path)  # released: another process can take it
    holder.kill()
    holder.wait()


# ---------------------------------------------------------------------------
# Signals and leftovers
# ---------------------------------------------------------------------------
def test_ctrl_c_and_sigterm_wait_for_a_safe_point_and_a_second_one_interrupts():
    with cli.safe_points():
        os.kill(os.getpid(), signal.SIGTERM)
        assert cli.stop_requested()
        with pytest.raises(cli.Stopped, match="after epoch 2"):
            cli.check_stop("stopped after epoch 2")
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert not cli.stop_requested()
    cli.check_stop("outside any safe_points block nothing is raised")


def test_sigterm_stops_training_between_steps_with_one_line(run_copy):
    """A SIGTERM in the middle of a run: exit status 143, one line, no temporary file, and every checkpoint with its
    history row."""
    results, ckpt_dir, args = run_copy
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, os.path.join(REPO, "stage1.py"), *args, "--epochs", "40"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    for line in run.stdout:
        if "stage1 epoch 4/40  d_loss" in line:  # epoch 4 done (its checkpoint is being written)
            break
    run.send_signal(signal.SIGTERM)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 143, stderr[-2000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("terminated (SIGTERM): stopped ") and "the same command resumes from" in line, line
    assert "Traceback" not in stderr
    saved = checkpoint_numbers(results)[-1]
    assert saved >= 4 and history_epochs(results) == list(range(1, saved + 1))
    leftovers = [n for d in (results, ckpt_dir, results / "stage1") for n in os.listdir(d) if "tmp" in n]
    assert not leftovers


# ---------------------------------------------------------------------------
# Full disks and unwritable folders
# ---------------------------------------------------------------------------
def limited_file_size(limit):
    """A preexec_fn: files of this process can grow to `limit` bytes; a larger write fails with EFBIG (Python
    ignores SIGXFSZ). Like a full disk for every writer, without needing one."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def run_limited(args, limit):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
        preexec_fn=limited_file_size(limit),
    )  # fmt: skip


def test_a_failed_weights_write_is_one_line_keeps_the_good_file_and_exits_cleanly(tmp_path):
    """An HDF5 write that fails (a full disk) left Keras' file open, and HDF5 crashed the process at exit."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import keras; from stackgan import io; "
        "from stackgan.cli import run_main; "
        "model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(2000)]); "
        "run_main(lambda argv: io.save_weights(model, sys.argv[2]))"
    )
    path = tmp_path / "net.weights.h5"
    path.write_bytes(b"a good file")
    result = run_limited(["-c", code, REPO, str(path)], 100_000)
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_error_line(result) == (
        f"error: cannot write {path}: File too large; free space in {tmp_path} or choose another folder"
    )
    assert "Exception ignored" not in result.stderr
    assert path.read_bytes() == b"a good file" and os.listdir(tmp_path) == ["net.weights.h5"]


def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_last_checkpoint(run_copy, birds, capsys):
    from stackgan.datasets.cache import load_dataset

    results, ckpt_dir, args = run_copy
    for split, size in (("train", 76), ("test", 64)):  # the cache exists: only the run's own files are written
        load_dataset(birds, split, size)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    limited_file_size(500_000)()  # a checkpoint is ~1 MB
    try:
        err = one_line_error(stage1.main, args + ["--epochs", "4"], capsys)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
    assert (
        err
        == f"error: cannot write a checkpoint in {ckpt_dir}: File too large; free space there or choose another folder"
    )
    assert checkpoint_numbers(results) == [1, 2, 3] and not [n for n in os.listdir(ckpt_dir) if "temp" in n]
    assert exported_epochs(results) == 3


def test_an_unwritable_folder_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import tempfile

    good = tmp_path / "a.json"
    io.write_json(str(good), {"good": True})

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(io.WriteError) as err:
        io.write_json(str(good), {"good": False})
    assert str(err.value) == f"cannot write {good}: Read-only file system; choose a writable folder"
    assert json.loads(good.read_text()) == {"good": True}
    monkeypatch.undo()
    (tmp_path / "file").write_text("a file where a folder should be")
    err = one_line_error(stage1.main, ["--results-dir", str(tmp_path / "file" / "r"), "--epochs", "1"], capsys)
    assert f"cannot write {tmp_path / 'file' / 'r'}" in err


@pytest.fixture
def mount_point(tmp_path):
    """mount(size, read_only) -> a fresh tmpfs folder, where this process may mount one (root on Linux)."""
    mounted = []

    def mount(size="1200k", read_only=False):
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if shutil.which("mount") is None or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_results_or_out_folder_is_one_line(mount_point, tiny_results, capsys):
    import generate

    read_only = mount_point("100k", read_only=True)
    err = one_line_error(stage1.main, ["--results-dir", str(read_only), "--epochs", "1"], capsys)
    assert err == f"error: cannot write {read_only}/.lock: Read-only file system; choose a writable folder"
    err = one_line_error(
        generate.main,
        ["--results-dir", tiny_results, "--out", str(read_only / "out"), "--caption", "a red bird"],
        capsys,
    )
    assert str(read_only / "out") in err and "Read-only file system" in err


def test_every_command_refuses_a_negative_seed_in_one_line(capsys):
    import bench
    import generate
    import text_encoder
    from stackgan.datasets import commands

    for main, argv in (
        (bench.main, ["--seed", "-1"]),
        (generate.main, ["--seed", "-1"]),
        (text_encoder.main, ["train", "--seed", "-1"]),
        (commands.main, ["synthetic", "--seed", "-1"]),
        (stage1.main, ["--seed", "-1"]),
    ):
        assert "-1 must be 0 or more" in one_line_error(main, argv, capsys), main
