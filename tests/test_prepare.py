"""Getting the real data (python data.py download | prepare | check): archives unpacked, bad archives refused in one
line with the data folder left as it was, check's summary, and every subcommand's help."""

import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

import data
from helpers import REPO
from stackgan import layout
from stackgan.datasets.birds import CAPTIONS_DRIVE_ID, CUB_DIR, DATASET
from stackgan.cli import UserError, run_main
from stackgan.datasets import captions, commands, prepare
from stackgan.datasets.cache import load_dataset
from stackgan.io import write_json

PICKLES = (layout.FILENAMES_FILE, layout.CLASS_INFO_FILE, layout.EMBEDDINGS_FILE)


def make_archives(data_dir, tmp_path):
    cub = str(tmp_path / "CUB_200_2011.tgz")
    with tarfile.open(cub, "w:gz") as tar:
        tar.add(DATASET.cub_dir(data_dir), arcname="CUB_200_2011")
        (tmp_path / "attributes.txt").write_text("1 has_bill_shape::curved\n")
        tar.add(str(tmp_path / "attributes.txt"), arcname="attributes.txt")
    birds = str(tmp_path / "birds.zip")
    with zipfile.ZipFile(birds, "w") as zf:
        for split in ("train", "test"):
            for f in PICKLES:
                zf.write(os.path.join(data_dir, split, f), f"birds/{split}/{f}")
        zf.writestr("birds/example_captions.txt", "a red bird\n")
        zf.writestr("__MACOSX/birds/train/._filenames.pickle", b"junk")
    return cub, birds


def test_prepare_from_fake_archives(birds, tmp_path, capsys):
    cub, birds = make_archives(birds, tmp_path)
    out = str(tmp_path / "data" / "birds")
    assert commands.main(["prepare", "--cub-archive", cub, "--embeddings-archive", birds, "--data-dir", out]) == 0
    assert "train: 48 images, 6 classes" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["CUB_200_2011", "test", "train"]
    assert sorted(os.listdir(os.path.join(out, "train"))) == sorted(PICKLES)
    assert not os.path.exists(os.path.join(out, "attributes.txt")) and not layout.is_synthetic(out)
    split = load_dataset(out, "test", 32)
    assert split.images.shape == (16, 32, 32, 3)

    bad = tmp_path / "bad.tgz"
    bad.write_bytes(os.urandom(2000))
    with pytest.raises(UserError, match="bad.tgz is not a readable CUB_200_2011.tgz"):
        prepare.prepare(str(bad), birds, out)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(Path(cub).read_bytes()[:3000])
    with pytest.raises(UserError, match="truncated.tgz"):
        prepare.prepare(str(truncated), birds, out)
    with pytest.raises(UserError, match="bad.tgz is not a readable birds.zip"):
        prepare.prepare(cub, str(bad), out)
    partial = str(tmp_path / "partial.zip")
    with zipfile.ZipFile(partial, "w") as zf:
        zf.writestr("birds/train/filenames.pickle", b"x")
    with pytest.raises(UserError, match="partial.zip has no train/class_info.pickle"):
        prepare.prepare(cub, partial, out)
    with pytest.raises(UserError, match="--cub-archive .*nothere.tgz not found.*prepare"):
        prepare.prepare(str(tmp_path / "nothere.tgz"), birds, out)
    assert load_dataset(out, "test", 32).images.shape == (16, 32, 32, 3)  # failed runs left it intact
    assert not [n for n in os.listdir(out) if n.startswith(".prepare-")]


def test_check(birds_copy, tmp_path, capsys):
    assert commands.main(["check", "--data-dir", birds_copy]) == 0
    out = capsys.readouterr().out
    assert "synthetic birds" in out and "train: 48 images, 6 classes, embeddings (48, 10, 1024)" in out
    os.remove(os.path.join(birds_copy, "test", layout.FILENAMES_FILE))
    with pytest.raises(UserError, match=r"lacks 1 required file.*test.filenames\.pickle.*python data\.py download"):
        commands.main(["check", "--data-dir", birds_copy])
    missing = str(tmp_path / "no_such_dir")
    run = subprocess.run(
        [sys.executable, "data.py", "check", "--data-dir", missing],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data folder") and "python data.py download" in lines[0]


def test_download_failure_says_prepare(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError, match="could not download .*CUB_200_2011.tgz.*python data.py prepare"):
        commands.main(["download", "--data-dir", str(tmp_path / "d")])
    assert not any(f.endswith(".part") for f in os.listdir(tmp_path / "d" / "downloads"))


@pytest.mark.parametrize("command", ["download", "prepare", "check", "synthetic"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        commands.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: data.py {command}" in capsys.readouterr().out


def test_written_files_get_ordinary_permissions(tmp_path):
    write_json(str(tmp_path / "a.json"), {"x": 1})
    mode = os.stat(tmp_path / "a.json").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def caption_archives(birds, tmp_path):
    """AttnGAN-style zip (birds/text/...), the same with a nested text.zip, and a Reed-style tar (text_c10/)."""
    text = os.path.join(birds, "text")
    files = [os.path.relpath(os.path.join(d, f), text) for d, _, fs in os.walk(text) for f in fs]
    attngan = str(tmp_path / "attngan_birds.zip")
    with zipfile.ZipFile(attngan, "w") as zf:
        for f in files:
            zf.write(os.path.join(text, f), f"birds/text/{f}")
        zf.writestr("birds/example_captions.txt", "a red bird\n")
        zf.writestr(f"__MACOSX/birds/text/{files[0]}", b"junk")
    nested = str(tmp_path / "nested.zip")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for f in files:
            zf.write(os.path.join(text, f), f"text/{f}")
    with zipfile.ZipFile(nested, "w") as zf:
        zf.writestr("birds/text.zip", inner.getvalue())
        zf.writestr("birds/captions.pickle", b"x")
    reed = str(tmp_path / "cub_icml.tar.gz")
    with tarfile.open(reed, "w:gz") as tar:
        tar.add(text, arcname="cub/text_c10")
    return [attngan, nested, reed], len(files)


def test_prepare_captions_archive_and_check(birds, tmp_path, capsys):
    archives, n_files = caption_archives(birds, tmp_path)
    out = tmp_path / "birds"
    shutil.copytree(birds, out, ignore=shutil.ignore_patterns("cache", "text"))
    assert commands.main(["check", "--data-dir", str(out)]) == 0
    assert "captions: " + os.path.join(str(out), "text") + " missing" in capsys.readouterr().out
    for archive in archives:
        shutil.rmtree(out / "text", ignore_errors=True)
        assert commands.main(["prepare", "--captions-archive", archive, "--data-dir", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"Unpacked {n_files} caption files" in printed and "48 caption files present, 0 missing" in printed
        assert (
            captions.load_caption_split(str(out), "test").captions
            == captions.load_caption_split(birds, "test").captions
        )
        assert not (out / "text" / "__MACOSX").exists()
    victim = data.load_filenames(os.path.join(str(out), "train", layout.FILENAMES_FILE))[0]
    os.remove(DATASET.caption_path(str(out), victim))
    assert commands.main(["check", "--data-dir", str(out)]) == 0
    assert f"47 caption files present, 1 missing\n    missing caption file: {victim}" in capsys.readouterr().out

    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("birds/train/filenames.pickle", b"x")
    with pytest.raises(UserError, match=r"bad\.zip holds no text/<class>/<image>\.txt"):
        prepare.prepare(None, None, str(out), str(bad))
    noise = tmp_path / "noise.tgz"
    noise.write_bytes(os.urandom(500))
    with pytest.raises(UserError, match=r"noise\.tgz is not a readable captions archive"):
        prepare.prepare(None, None, str(out), str(noise))
    with pytest.raises(UserError, match="go together"):
        prepare.prepare("CUB_200_2011.tgz", None, str(out))
    assert len(captions.load_caption_split(str(out), "test").captions) == 16  # failed runs left it intact


def test_download_without_captions_still_prepares(birds, tmp_path, monkeypatch, capsys):
    cub = str(tmp_path / "CUB_200_2011.tgz")
    with tarfile.open(cub, "w:gz") as tar:
        tar.add(os.path.join(birds, CUB_DIR), arcname=CUB_DIR)
    archive = str(tmp_path / "birds.zip")
    with zipfile.ZipFile(archive, "w") as zf:
        for split in layout.SPLITS:
            for f in PICKLES:
                zf.write(os.path.join(birds, split, f), f"birds/{split}/{f}")

    def fake_url(url, dest, md5, data_dir):
        shutil.copy(cub, dest)

    def fake_drive(file_id, dest, data_dir, what="the embeddings zip"):
        if file_id == CAPTIONS_DRIVE_ID:
            raise UserError("could not download Google Drive file (quota)")
        shutil.copy(archive, dest)

    monkeypatch.setattr(prepare, "_download_url", fake_url)
    monkeypatch.setattr(prepare, "_download_drive", fake_drive)
    out = str(tmp_path / "d")
    assert commands.main(["download", "--data-dir", out]) == 0
    printed = capsys.readouterr().out
    assert "note: no captions (could not download" in printed and "--captions-archive" in printed
    assert not layout.missing_files(out, DATASET) and not os.path.exists(os.path.join(out, "text"))


def refused_pickle():
    """A protocol-0 pickle that would run a shell command when loaded."""
    return b"cos\nsystem\n(S'echo owned'\ntR."


def test_prepare_verifies_everything_before_it_replaces_anything(birds, tmp_path, capsys):
    """A valid zip holding a refused pickle, prepared into a working data folder, leaves it working."""
    cub, good_zip = make_archives(birds, tmp_path)
    out = tmp_path / "data"
    assert (
        commands.main(["prepare", "--cub-archive", cub, "--embeddings-archive", good_zip, "--data-dir", str(out)]) == 0
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad_zip = str(tmp_path / "refused.zip")
    with zipfile.ZipFile(good_zip) as src, zipfile.ZipFile(bad_zip, "w") as zf:
        for name in src.namelist():
            zf.writestr(name, refused_pickle() if name.endswith("test/class_info.pickle") else src.read(name))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(
            commands.main, ["prepare", "--cub-archive", cub, "--embeddings-archive", bad_zip, "--data-dir", str(out)]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "refused.zip is not usable, nothing was replaced" in err and "os.system" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert load_dataset(str(out), "test", 32).images.shape == (16, 32, 32, 3)


def zip_of(path, members):
    """A zip of {name: bytes or (size of zeros)}; the zeros are written in chunks, compressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in members.items():
            if isinstance(content, int):
                with zf.open(name, "w", force_zip64=True) as f:
                    for _ in range(content >> 20):
                        f.write(bytes(1 << 20))
            else:
                zf.writestr(name, content)
    return str(path)


def test_archives_are_unpacked_within_bounds(birds, tmp_path, monkeypatch):
    cub, good_zip = make_archives(birds, tmp_path)
    out = str(tmp_path / "data")
    # 100 MiB of zeros in a 100 kB zip: more than 20x its size (+ 64 MiB) would come out of it.
    members = {f"birds/{s}/{f}": b"x" for s in layout.SPLITS for f in PICKLES}
    members["birds/train/char-CNN-RNN-embeddings.pickle"] = 100 << 20
    bomb = zip_of(tmp_path / "bomb.zip", members)
    with pytest.raises(UserError, match=r"bomb\.zip would unpack to far more than its size"):
        prepare.prepare(cub, bomb, out)
    monkeypatch.setattr(prepare, "MAX_MEMBERS", 7)
    with pytest.raises(UserError, match=r"birds\.zip holds more than 7 entries"):  # 6 pickles and 2 others
        prepare.prepare(cub, good_zip, out)
    six = {f"birds/{s}/{f}": Path(birds, s, f).read_bytes() for s in layout.SPLITS for f in PICKLES}
    with pytest.raises(UserError, match=r"CUB_200_2011\.tgz holds more than 7 entries"):
        prepare.prepare(cub, zip_of(tmp_path / "six.zip", six), out)
    monkeypatch.undo()
    monkeypatch.setitem(prepare.MAX_MEMBER_BYTES, "captions", 10)
    archives, _ = caption_archives(birds, tmp_path)
    with pytest.raises(UserError, match=r"would unpack to \d+ bytes, more than the 10 such a file needs"):
        prepare.prepare(None, None, out, archives[0])
    assert not os.path.exists(out) or not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_archives_inside_archives_are_opened_one_level_deep(birds, tmp_path):
    """AttnGAN's text.zip inside birds.zip is read; a text.zip inside that is not (nested zips recursed until
    RecursionError)."""
    text = os.path.join(birds, "text")
    name = next(os.path.relpath(os.path.join(d, f), text) for d, _, fs in os.walk(text) for f in fs)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(os.path.join(text, name), f"text/{name}")
    middle = io.BytesIO()
    with zipfile.ZipFile(middle, "w") as zf:
        zf.writestr("text.zip", inner.getvalue())
    deep = zip_of(tmp_path / "deep.zip", {"birds/text.zip": middle.getvalue()})
    with pytest.raises(UserError, match=r"deep\.zip holds no text/<class>/<image>\.txt"):
        prepare.prepare(None, None, str(tmp_path / "data"), deep)


def damaged_copy(birds, tmp_path, split, change):
    """A copy of the set whose embeddings pickle of `split` holds change(embeddings)."""
    out = tmp_path / "birds"
    shutil.copytree(birds, out, ignore=shutil.ignore_patterns("cache"))
    path = layout.split_files(str(out), split).embeddings
    changed = change(data.load_embeddings(path))
    with open(path, "wb") as f:
        pickle.dump(changed, f, protocol=2)
    return str(out)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda e: np.where(np.arange(len(e))[:, None, None] == 2, np.nan, e),
            r"embeddings of row 2 \(of 16\) are not finite",
        ),
        (lambda e: e[:, :, :512], r"holds 512-d embeddings, but StackGAN's networks read the 1024-d"),
        (lambda e: e[:, :0], r"embeddings of shape \(16, 0, 1024\)"),
    ],
    ids=["nan", "512-d", "no captions"],
)
def test_check_refuses_embeddings_that_training_cannot_use(birds, tmp_path, capsys, change, message):
    from helpers import one_line_error

    out = damaged_copy(birds, tmp_path, "test", change)
    assert re.search(message, one_line_error(commands.main, ["check", "--data-dir", out], capsys))


def test_check_decodes_every_image(birds_copy, capsys):
    names = data.load_filenames(layout.split_files(birds_copy, "train").filenames)
    truncated = DATASET.image_path(birds_copy, names[1])
    with open(truncated, "rb") as f:
        head = f.read(300)
    with open(truncated, "wb") as f:
        f.write(head)
    assert commands.main(["check", "--data-dir", birds_copy]) == 0
    out = capsys.readouterr().out
    assert "1 of 48 images undecodable" in out and f"undecodable: {names[1]} (OSError" in out
    assert "0 of 16 images undecodable" in out and "1 images will be skipped" in out


def test_check_errors_are_one_line(birds_copy, capsys):
    from helpers import one_line_error

    for f in PICKLES:
        os.remove(os.path.join(birds_copy, "train", f))
    err = one_line_error(commands.main, ["check", "--data-dir", birds_copy], capsys)
    assert "lacks 3 required file(s): " in err and "filenames.pickle" in err
