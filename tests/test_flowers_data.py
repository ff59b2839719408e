"""Oxford-102 flowers' real data (python data.py download | prepare | check --dataset flowers): small archives in the
layout of the real ones (102flowers.tgz's jpg/, StackGAN's flowers archive, Reed's cvpr2016_flowers.tar.gz with its
Torch files and class lists), their odd files included, unpacked into StackGAN's flowers layout; wrong or damaged
archives refused in one line with the data folder left as it was; check naming what is missing and where it comes
from."""

import os
import pickle
import re
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import FLOWERS, one_line_error
from stackgan import layout
from stackgan.cli import UserError
from stackgan.datasets import captions, commands, loaders, prepare
from stackgan.datasets.cache import load_dataset
from stackgan.datasets.flowers import CAPTIONS_DRIVE_ID, DATASET, EMBEDDINGS_DRIVE_ID, IMAGES_MD5, IMAGES_URL

N_TRAIN, N_TEST = FLOWERS["n_train"], FLOWERS["n_test"]


def py2_class_info(ids):
    """Class ids as numpy int64 scalars in a protocol-0 list, as Python 2's cPickle wrote StackGAN's class_info."""
    head = (
        b"cnumpy.core.multiarray\nscalar\np1\n(cnumpy\ndtype\np2\n(S'i8'\np3\nI0\nI1\ntp4\nRp5\n"
        b"(I3\nS'<'\np6\nNNNI-1\nI-1\nI0\ntp7\nb"
    )
    out = b"(lp0\n"
    for i, class_id in enumerate(ids):
        data = repr(struct.pack("<q", class_id))[1:].encode()  # a Python 2 str literal
        out += (
            (head + b"S" + data + b"\np8\ntp9\nRp10\na")
            if i == 0
            else (b"g1\n(g5\nS" + data + b"\ntRp%d\na" % (10 + i))
        )
    return out + b"."


def split_pickles(flowers, split, bare_keys=False):
    """{file name: bytes} of a split as StackGAN's flowers archive holds it: protocol-0 lists (the training class ids
    as Python 2's numpy scalars, the test file with Windows line endings, as some copies have), the embeddings a
    list of arrays."""
    paths = layout.split_files(flowers, split)
    names = loaders.load_filenames(paths.filenames)
    if bare_keys:
        names = [os.path.basename(n) for n in names]
    ids = loaders.load_class_ids(paths.class_info)
    filenames = pickle.dumps(names, protocol=0)
    class_info = py2_class_info(ids) if split == "train" else pickle.dumps(ids, protocol=0)
    if split == "test":
        filenames, class_info = (b.replace(b"\n", b"\r\n") for b in (filenames, class_info))
    return {
        layout.FILENAMES_FILE: filenames,
        layout.CLASS_INFO_FILE: class_info,
        layout.EMBEDDINGS_FILE: Path(paths.embeddings).read_bytes(),
    }


def flower_archives(flowers, tmp_path, bare_keys=False):
    """(102flowers.tgz, flowers.zip, cvpr2016_flowers.tar.gz) made from the synthetic flowers, with what the real
    ones hold beside them."""
    jpg = os.path.join(flowers, "jpg")
    names = sorted(os.listdir(jpg))
    images = str(tmp_path / "102flowers.tgz")
    gray = tmp_path / "gray.jpg"
    with Image.open(os.path.join(jpg, names[0])) as im:
        im.convert("L").save(gray)  # a grayscale JPEG among them
    with tarfile.open(images, "w:gz") as tar:
        tar.add(jpg, arcname="jpg", recursive=False)
        tar.add(str(gray), arcname=f"jpg/{names[0]}")
        for name in names[1:]:
            tar.add(os.path.join(jpg, name), arcname=f"jpg/{name}")
        (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        tar.add(str(tmp_path / ".DS_Store"), arcname="jpg/.DS_Store")
        tar.add(str(tmp_path / ".DS_Store"), arcname="jpg/._image_00001.jpg")  # AppleDouble metadata, not a JPEG
    embeddings = str(tmp_path / "flowers.zip")
    with zipfile.ZipFile(embeddings, "w") as zf:
        for split in layout.SPLITS:
            for f, payload in split_pickles(flowers, split, bare_keys).items():
                zf.writestr(f"flowers/{split}/{f}", payload)
        zf.writestr("flowers/example_captions.txt", "this flower has large pink petals with a yellow center\n")
        zf.writestr("flowers/allclasses.txt", "".join(f"class_{c:05d}\n" for c in range(1, 41)))
        zf.writestr("__MACOSX/flowers/train/._filenames.pickle", b"junk")
        zf.writestr("flowers/.DS_Store", b"junk")
    text = os.path.join(flowers, "text_c10")
    reed = str(tmp_path / "cvpr2016_flowers.tar.gz")
    with tarfile.open(reed, "w:gz") as tar:
        root = "cvpr2016_flowers"
        for listing in ("allclasses.txt", "trainvalclasses.txt", "testclasses.txt"):
            (tmp_path / listing).write_text("class_00001\r\nclass_00002\r\n")
            tar.add(str(tmp_path / listing), arcname=f"{root}/{listing}")
        (tmp_path / "blob.t7").write_bytes(os.urandom(300))
        for class_dir in sorted(os.listdir(text)):
            tar.add(str(tmp_path / "blob.t7"), arcname=f"{root}/text_c10/{class_dir}.t7")  # per-class Torch files
            tar.add(str(tmp_path / "blob.t7"), arcname=f"{root}/images/{class_dir}.t7")
            for caption_file in sorted(os.listdir(os.path.join(text, class_dir))):
                tar.add(
                    os.path.join(text, class_dir, caption_file), arcname=f"{root}/text_c10/{class_dir}/{caption_file}"
                )
                h5 = caption_file.replace(".txt", ".h5")
                tar.add(str(tmp_path / "blob.t7"), arcname=f"{root}/text_c10/{class_dir}/{h5}")
        tar.add(str(tmp_path / "blob.t7"), arcname=f"{root}/vocab_c10.t7")
    return images, embeddings, reed


def prepare_flowers(out, images=None, embeddings=None, reed=None, dataset="flowers"):
    argv = ["prepare", "--data-dir", str(out)] + (["--dataset", dataset] if dataset else [])
    for flag, path in (
        ("--images-archive", images),
        ("--embeddings-archive", embeddings),
        ("--captions-archive", reed),
    ):
        if path:
            argv += [flag, path]
    return commands.main(argv)


def files_of(folder):
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def test_prepare_flowers_from_archives_in_the_real_layout(flowers, tmp_path, capsys):
    images, embeddings, reed = flower_archives(flowers, tmp_path)
    out = tmp_path / "data" / "flowers"
    assert prepare_flowers(out, images, embeddings, reed) == 0
    printed = capsys.readouterr().out
    assert f"{out}: Oxford-102 flowers" in printed and "bounding boxes" not in printed
    assert f"train: {N_TRAIN} images, 32 classes, embeddings ({N_TRAIN}, 10, 1024) float32" in printed
    assert f"test: {N_TEST} images, 8 classes" in printed
    assert (
        f"Unpacked {N_TRAIN + N_TEST} caption files" in printed
        and f"{N_TEST} caption files present, 0 missing" in printed
    )
    assert sorted(os.listdir(out)) == ["jpg", "test", "text_c10", "train"] and not layout.is_synthetic(str(out))
    jpgs = sorted(os.listdir(out / "jpg"))
    assert len(jpgs) == N_TRAIN + N_TEST and all(re.fullmatch(r"image_\d{5}\.jpg", n) for n in jpgs)  # no .DS_Store
    assert sorted(os.listdir(out / "text_c10")) == sorted(os.listdir(os.path.join(flowers, "text_c10")))
    assert not [p for p in (out / "text_c10").rglob("*") if p.is_file() and p.suffix != ".txt"]  # no .t7 or .h5
    # The class ids of the Python-2 numpy scalars, the CRLF test pickles, the whole images (no box), the grayscale
    # one as RGB; the captions as the synthetic set wrote them.
    for split in layout.SPLITS:
        ours, theirs = load_dataset(str(out), split, 32), load_dataset(flowers, split, 32)
        assert ours.filenames == theirs.filenames and ours.class_ids.tolist() == theirs.class_ids.tolist()
        assert ours.images.shape == (len(theirs.filenames), 32, 32, 3)
        assert (
            captions.load_caption_split(str(out), split).captions
            == captions.load_caption_split(flowers, split).captions
        )
    test = load_dataset(str(out), "test", 32)
    gray = test.images[test.filenames.index("jpg/image_00001")]  # class 1 is a test class
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    # The folder is found to be flowers from its layout: check and training need no --dataset.
    assert commands.main(["check", "--data-dir", str(out)]) == 0
    assert "Oxford-102 flowers" in capsys.readouterr().out


def test_bare_keys_are_read_as_jpg_keys(flowers, tmp_path, capsys):
    images, embeddings, _ = flower_archives(flowers, tmp_path, bare_keys=True)
    out = tmp_path / "flowers"
    assert prepare_flowers(out, images, embeddings) == 0
    assert f"train: {N_TRAIN} images, 32 classes" in capsys.readouterr().out
    split = load_dataset(str(out), "test", 16)
    assert split.filenames[0].startswith("image_") and split.images.shape == (N_TEST, 16, 16, 3)
    assert split.filenames[0] == "image_00001"  # the archive's grayscale one; the others are the same images
    np.testing.assert_array_equal(split.images[1:], load_dataset(flowers, "test", 16).images[1:])
    assert DATASET.image_path(str(out), "image_00003") == DATASET.image_path(str(out), "jpg/image_00003")


def test_wrong_or_damaged_flower_archives_are_refused_and_the_folder_kept(birds, flowers, tmp_path, capsys):
    images, embeddings, reed = flower_archives(flowers, tmp_path)
    out = tmp_path / "flowers"
    assert prepare_flowers(out, images, embeddings, reed) == 0
    before = files_of(out)
    noise = tmp_path / "noise.tgz"
    noise.write_bytes(os.urandom(3000))
    cub = str(tmp_path / "CUB_200_2011.tgz")
    with tarfile.open(cub, "w:gz") as tar:
        tar.add(os.path.join(birds, "CUB_200_2011"), arcname="CUB_200_2011")
    partial = str(tmp_path / "partial.zip")
    with zipfile.ZipFile(embeddings) as src, zipfile.ZipFile(partial, "w") as zf:
        for name in src.namelist():
            if not name.endswith("test/char-CNN-RNN-embeddings.pickle"):
                zf.writestr(name, src.read(name))
    bird_captions = str(tmp_path / "cub_text.tar.gz")
    with tarfile.open(bird_captions, "w:gz") as tar:
        tar.add(os.path.join(birds, "text"), arcname="cub/text_c10")
    cases = [
        ((str(noise), embeddings, None), r"noise\.tgz is not a readable 102flowers\.tgz .*robots\.ox\.ac\.uk"),
        (
            (cub, embeddings, None),
            r"CUB_200_2011\.tgz has no file in jpg/ \(0 entries under jpg/\): it is not 102flowers",
        ),
        ((images, str(noise), None), r"noise\.tgz is not a readable flowers\.zip"),
        ((images, partial, None), r"partial\.zip has no test/char-CNN-RNN-embeddings\.pickle .*StackGAN's flowers"),
        ((None, None, str(noise)), r"noise\.tgz is not a readable captions archive.*cvpr2016_flowers"),
        ((None, None, bird_captions), r"holds captions of none of the 64 training images .*another dataset"),
        ((images, None, None), r"--images-archive and --embeddings-archive go together"),
        (
            (str(tmp_path / "nothere.tgz"), embeddings, None),
            r"--images-archive .*nothere\.tgz not found.*--dataset flowers",
        ),
    ]
    for (i, e, c), message in cases:
        argv = ["prepare", "--dataset", "flowers", "--data-dir", str(out)]
        argv += [
            a
            for flag, path in (("--images-archive", i), ("--embeddings-archive", e), ("--captions-archive", c))
            if path
            for a in (flag, path)
        ]
        assert re.search(message, one_line_error(commands.main, argv, capsys)), message
    # Keys of images the archive does not have: nothing usable, nothing replaced.
    other = str(tmp_path / "other.zip")
    with zipfile.ZipFile(embeddings) as src, zipfile.ZipFile(other, "w") as zf:
        for name in src.namelist():
            payload = src.read(name)
            if name.endswith(layout.FILENAMES_FILE):
                payload = payload.replace(b"image_0", b"image_9")
            zf.writestr(name, payload)
    err = one_line_error(
        commands.main,
        [
            "prepare",
            "--dataset",
            "flowers",
            "--images-archive",
            images,
            "--embeddings-archive",
            other,
            "--data-dir",
            str(out),
        ],
        capsys,
    )
    assert "is not usable, nothing was replaced: no usable image in the train split" in err
    # A flowers folder is not prepared as birds.
    err = one_line_error(
        commands.main,
        [
            "prepare",
            "--dataset",
            "birds",
            "--cub-archive",
            cub,
            "--embeddings-archive",
            embeddings,
            "--data-dir",
            str(out),
        ],
        capsys,
    )
    assert "holds Oxford-102 flowers (its layout), not CUB-200-2011 birds; pass --dataset flowers" in err
    assert files_of(out) == before and not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_flower_archives_are_unpacked_within_bounds(flowers, tmp_path, monkeypatch):
    images, embeddings, reed = flower_archives(flowers, tmp_path)
    out = str(tmp_path / "data")
    monkeypatch.setattr(prepare, "MAX_MEMBERS", N_TRAIN + N_TEST)  # jpg/ itself and 3 odd files are more
    with pytest.raises(UserError, match=rf"102flowers\.tgz holds more than {N_TRAIN + N_TEST} entries"):
        prepare.prepare(images, embeddings, out, dataset="flowers")
    monkeypatch.undo()
    monkeypatch.setitem(prepare.MAX_MEMBER_BYTES, "images", 1000)
    with pytest.raises(
        UserError, match=r"102flowers\.tgz: jpg/image_\d+\.jpg would unpack to [\d,]+ bytes, more than the 1,000"
    ):
        prepare.prepare(images, embeddings, out, dataset="flowers")
    monkeypatch.undo()
    bomb = str(tmp_path / "bomb.tar.gz")
    with tarfile.open(bomb, "w:gz") as tar:  # 100 MiB of zeros: far more than 20x the archive's size + 64 MiB
        info = tarfile.TarInfo("cvpr2016_flowers/text_c10/class_00001/image_00001.txt")
        info.size = 100 << 20
        tar.addfile(info, _Zeros(info.size))
    monkeypatch.setitem(prepare.MAX_MEMBER_BYTES, "captions", 200 << 20)
    with pytest.raises(UserError, match=r"bomb\.tar\.gz would unpack to far more than its size"):
        prepare.prepare(None, None, out, bomb, dataset="flowers")
    assert not os.path.exists(out) or not [n for n in os.listdir(out) if n.startswith(".tmp-")]


class _Zeros:
    """A file of `size` zero bytes, read in chunks (tarfile.addfile reads it)."""

    def __init__(self, size):
        self.left = size

    def read(self, n=-1):
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def test_check_names_what_is_missing_and_where_it_comes_from(flowers, tmp_path, capsys):
    out = tmp_path / "flowers"
    shutil.copytree(flowers, out, ignore=shutil.ignore_patterns("cache", "text_c10"))
    os.remove(out / layout.SYNTHETIC_MARKER)
    assert commands.main(["check", "--data-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: Oxford-102 flowers" in printed
    assert (
        f"captions: {out / 'text_c10'} missing" in printed and "--captions-archive cvpr2016_flowers.tar.gz" in printed
    )
    assert f"https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}" in printed
    shutil.rmtree(out / "jpg")  # nothing left says flowers: --dataset does
    err = one_line_error(commands.main, ["check", "--dataset", "flowers", "--data-dir", str(out)], capsys)
    assert f"lacks 1 required file(s): {out / 'jpg'}/, from 102flowers.tgz ({IMAGES_URL}, MD5 {IMAGES_MD5})" in err
    assert "python data.py download --dataset flowers" in err
    os.remove(out / "test" / layout.FILENAMES_FILE)
    err = one_line_error(commands.main, ["check", "--dataset", "flowers", "--data-dir", str(out)], capsys)
    assert "lacks 2 required file(s): " in err
    drive = f"https://drive.google.com/uc?id={EMBEDDINGS_DRIVE_ID}"
    assert f"from 102flowers.tgz ({IMAGES_URL}, MD5 {IMAGES_MD5}) and flowers.zip ({drive})" in err


def test_download_flowers_fetches_the_three_archives(flowers, tmp_path, monkeypatch, capsys):
    images, embeddings, reed = flower_archives(flowers, tmp_path)
    fetched = []

    def fake_url(url, dest, md5, hint):
        fetched.append((url, md5))
        shutil.copy(images, dest)

    def fake_drive(file_id, dest, hint, what="the archive"):
        fetched.append((file_id, what))
        if file_id == CAPTIONS_DRIVE_ID:
            raise UserError(f"could not download Google Drive file {file_id} (quota); {hint}")
        shutil.copy(embeddings, dest)

    monkeypatch.setattr(prepare, "_download_url", fake_url)
    monkeypatch.setattr(prepare, "_download_drive", fake_drive)
    out = str(tmp_path / "d")
    assert commands.main(["download", "--dataset", "flowers", "--data-dir", out]) == 0
    assert fetched == [
        (IMAGES_URL, IMAGES_MD5),
        (EMBEDDINGS_DRIVE_ID, "StackGAN's flowers archive"),
        (CAPTIONS_DRIVE_ID, "Reed's cvpr2016_flowers.tar.gz"),
    ]
    printed = capsys.readouterr().out
    assert (
        "note: no captions (could not download" in printed and "--captions-archive cvpr2016_flowers.tar.gz" in printed
    )
    assert sorted(os.listdir(out)) == ["downloads", "jpg", "test", "train"]
    assert f"train: {N_TRAIN} images, 32 classes" in printed


def test_the_download_of_102flowers_says_how_to_prepare_by_hand(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError) as info:
        commands.main(["download", "--dataset", "flowers", "--data-dir", str(tmp_path / "d")])
    message = str(info.value)
    assert (
        message.startswith(f"could not download {IMAGES_URL}") and "python data.py prepare --dataset flowers" in message
    )
    assert "--images-archive 102flowers.tgz --embeddings-archive flowers.zip" in message
    assert not any(f.endswith(".part") for f in os.listdir(tmp_path / "d" / "downloads"))
