"""Getting the real data: download CUB-200-2011, StackGAN's birds.zip and the captions (AttnGAN's birds archive),
unpack local copies of them, and check a data folder (`python data.py download | prepare | check`).
"""

import hashlib
import os
import re
import shutil
import tempfile

import data
from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.datasets import cache
from stackgan.layout import (
    CAPTIONS_DRIVE_ID,
    CLASS_INFO_FILE,
    CUB_DIR,
    DATA_DIR,
    EMBEDDINGS_FILE,
    FILENAMES_FILE,
    SPLITS,
    SYNTHETIC_MARKER,
    TEXT_DIR,
)

CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
EMBEDDINGS_DRIVE_ID = "0B3y_msrWZaXLT1BZdVdycDY5TEE"


def _prepare_hint(data_dir):
    return (
        f"download it by hand (CUB_200_2011.tgz: {CUB_URL}; birds.zip: "
        f"https://drive.google.com/uc?id={EMBEDDINGS_DRIVE_ID}) and run `python data.py prepare "
        f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {data_dir}`"
    )


def _download_url(url, dest, md5, data_dir):
    """Download url to dest with a progress bar, checking the MD5; UserError on any failure."""
    import http.client
    import urllib.request

    from tqdm import tqdm

    part = dest + ".part"
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=os.path.basename(dest)) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError, http.client.HTTPException) as err:
        io.remove_quietly(part)
        raise UserError(f"could not download {url} ({type(err).__name__}: {err}); {_prepare_hint(data_dir)}") from None
    if md5 and digest.hexdigest() != md5:
        io.remove_quietly(part)
        raise UserError(
            f"{url} arrived damaged (MD5 {digest.hexdigest()}, expected {md5}); try again or {_prepare_hint(data_dir)}"
        )
    os.replace(part, dest)


def _download_drive(file_id, dest, data_dir, what="the embeddings zip"):
    import zipfile

    try:
        import gdown
    except ImportError:
        raise UserError(f"gdown is not installed (pip install gdown); or {_prepare_hint(data_dir)}") from None
    part = dest + ".part"
    try:
        result = gdown.download(id=file_id, output=part, quiet=False)
    except Exception as err:  # noqa: BLE001 - gdown raises its own errors for quota pages, network, ...
        io.remove_quietly(part)
        raise UserError(
            f"could not download Google Drive file {file_id} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); {_prepare_hint(data_dir)}"
        ) from None
    if result is None or not os.path.isfile(part) or not zipfile.is_zipfile(part):
        io.remove_quietly(part)
        raise UserError(f"Google Drive did not return {what} (id {file_id}); {_prepare_hint(data_dir)}")
    os.replace(part, dest)


def download(data_dir=DATA_DIR):
    """Download CUB_200_2011.tgz, birds.zip and the captions (AttnGAN's birds archive) into
    <data_dir>/downloads, then prepare(). The captions are optional (only text_encoder.py needs them): if their
    download fails, the rest is prepared and a note says how to add them."""
    import zipfile

    downloads = os.path.join(data_dir, "downloads")
    os.makedirs(downloads, exist_ok=True)
    cub = os.path.join(downloads, "CUB_200_2011.tgz")
    if os.path.isfile(cub) and cache.file_digest(cub, "md5") == CUB_MD5:
        print(f"{cub} already downloaded (MD5 ok)")
    else:
        print(f"Downloading {CUB_URL} (about 1.1 GB)")
        _download_url(CUB_URL, cub, CUB_MD5, data_dir)
    birds = os.path.join(downloads, "birds.zip")
    if os.path.isfile(birds) and zipfile.is_zipfile(birds):
        print(f"{birds} already downloaded")
    else:
        print(f"Downloading the char-CNN-RNN embeddings (Google Drive id {EMBEDDINGS_DRIVE_ID})")
        _download_drive(EMBEDDINGS_DRIVE_ID, birds, data_dir)
    captions = os.path.join(downloads, "attngan_birds.zip")
    if os.path.isfile(captions) and zipfile.is_zipfile(captions):
        print(f"{captions} already downloaded")
    else:
        print(f"Downloading the captions (AttnGAN's birds archive, Google Drive id {CAPTIONS_DRIVE_ID})")
        try:
            _download_drive(CAPTIONS_DRIVE_ID, captions, data_dir, "the captions zip")
        except UserError as err:
            print(f"note: no captions ({err}); {layout.captions_hint(data_dir)}")
            captions = None
    prepare(cub, birds, data_dir, captions)
    print(f"The archives in {downloads} are no longer needed; delete them to free space.")


def _safe_member(name):
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts


def _extract_cub(archive, tmp):
    """Unpack the CUB_200_2011/ part of the archive into tmp; returns the number of entries."""
    import tarfile
    import zlib

    from tqdm import tqdm

    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tqdm(tar, desc="unpacking CUB_200_2011", unit=" files", disable=None):
                name = member.name.removeprefix("./")
                if not (name == CUB_DIR or name.startswith(CUB_DIR + "/")) or not (member.isfile() or member.isdir()):
                    continue  # attributes.txt and the like
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                elif _safe_member(member.name):  # pragma: no cover - Python < 3.11.4
                    tar.extract(member, tmp)
                count += 1
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UserError(
            f"{archive} is not a readable CUB_200_2011.tgz ({type(err).__name__}: {err}); "
            f"download it again ({CUB_URL}, MD5 {CUB_MD5})"
        ) from None
    src = os.path.join(tmp, CUB_DIR)
    missing = [f for f in ("images.txt", "bounding_boxes.txt", "images") if not os.path.exists(os.path.join(src, f))]
    if missing:
        raise UserError(
            f"{archive} has no {CUB_DIR}/{missing[0]} ({count} entries under {CUB_DIR}/): "
            f"it is not CUB_200_2011.tgz; download it from {CUB_URL}"
        )
    return count


def _extract_embeddings(archive, tmp):
    """Copy <anything>/{train,test}/{filenames,class_info,char-CNN-RNN-embeddings}.pickle to tmp/{train,test}/."""
    import zipfile
    import zlib

    drive = f"https://drive.google.com/uc?id={EMBEDDINGS_DRIVE_ID}"
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [
                n
                for n in zf.namelist()
                if not n.startswith("__MACOSX/") and not n.endswith("/") and not os.path.basename(n).startswith("._")
            ]
            chosen, missing = {}, []
            for split in SPLITS:
                for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE):
                    found = [n for n in names if n == f"{split}/{f}" or n.endswith(f"/{split}/{f}")]
                    if found:
                        chosen[(split, f)] = min(found, key=lambda n: (n.count("/"), n))
                    else:
                        missing.append(f"{split}/{f}")
            if missing:
                raise UserError(
                    f"{archive} has no {missing[0]} ({len(missing)} of the 6 pickles missing): "
                    f"it is not StackGAN's birds.zip; download it from {drive}"
                )
            for (split, f), member in chosen.items():
                os.makedirs(os.path.join(tmp, split), exist_ok=True)
                with open(os.path.join(tmp, split, f), "wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)  # checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(
            f"{archive} is not a readable birds.zip ({type(err).__name__}: {err}); download it again from {drive}"
        ) from None


CAPTION_MEMBER = re.compile(r"(?:^|/)(?:text|text_c10)/([^/]+)/([^/]+)\.txt$")


def _caption_members(names):
    """{'<class>/<image>': member} for the caption files among an archive's member names (AttnGAN's birds/text/,
    Reed's text_c10/), skipping macOS metadata; the shallowest copy wins."""
    found = {}
    for n in sorted(names, key=lambda n: (n.count("/"), n)):
        m = CAPTION_MEMBER.search(n.replace("\\", "/"))
        if m is None or n.startswith("__MACOSX/") or m.group(2).startswith("._"):
            continue
        key = f"{m.group(1)}/{m.group(2)}"
        if ".." not in (m.group(1), m.group(2)):
            found.setdefault(key, n)
    return found


def _extract_captions(archive, tmp):
    """Copy every text/<class>/<image>.txt (or text_c10/...) of a zip or tar archive to tmp/text/; a text.zip
    inside the archive (as AttnGAN's birds.zip ships them) is opened too. Returns the number of files."""
    import tarfile
    import zipfile
    import zlib

    out_root = os.path.join(tmp, TEXT_DIR)
    hint = (
        f"it is neither AttnGAN's birds.zip (https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}) nor Reed's "
        f"CUB archive with text_c10/"
    )

    def write(key, src):
        path = os.path.join(out_root, *key.split("/")) + ".txt"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)

    def from_zip(zf):
        names = zf.namelist()
        members = _caption_members(names)
        for key, member in members.items():
            with zf.open(member) as src:
                write(key, src)
        if members:
            return len(members)
        for inner in [n for n in names if os.path.basename(n) in ("text.zip", "text_c10.zip")]:
            with zf.open(inner) as raw, tempfile.TemporaryFile() as copy:
                shutil.copyfileobj(raw, copy, 1 << 20)
                copy.seek(0)
                with zipfile.ZipFile(copy) as nested:
                    count = from_zip(nested)
            if count:
                return count
        return 0

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                count = from_zip(zf)
        else:
            with tarfile.open(archive, "r:*") as tar:
                members = _caption_members([m.name for m in tar.getmembers() if m.isfile()])
                for key, member in members.items():
                    with tar.extractfile(member) as src:
                        write(key, src)
                count = len(members)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as err:
        raise UserError(f"{archive} is not a readable captions archive ({type(err).__name__}: {err}); {hint}") from None
    if not count:
        raise UserError(f"{archive} holds no text/<class>/<image>.txt or text_c10/<class>/<image>.txt file; {hint}")
    return count


def _install_captions(tmp, data_dir):
    dest = os.path.join(data_dir, TEXT_DIR)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.replace(os.path.join(tmp, TEXT_DIR), dest)


def prepare(cub_archive, embeddings_archive, data_dir=DATA_DIR, captions_archive=None):
    """Unpack CUB_200_2011.tgz and birds.zip (local files) into the layout load_split reads, and the captions
    from captions_archive (AttnGAN's birds.zip or Reed's CUB text archive) into <data_dir>/text, then check().
    With only captions_archive, only the captions are (re)placed. Everything is unpacked into a temporary
    folder first: a damaged archive leaves data_dir as it was."""
    if cub_archive is None and embeddings_archive is None and captions_archive is None:
        raise UserError("give --cub-archive and --embeddings-archive, and/or --captions-archive")
    if (cub_archive is None) != (embeddings_archive is None):
        raise UserError("--cub-archive and --embeddings-archive go together; give both (or only --captions-archive)")
    given = (("--cub-archive", cub_archive), ("--embeddings-archive", embeddings_archive))
    for what, path in given + (("--captions-archive", captions_archive),):
        if path is not None and not os.path.isfile(path):
            raise UserError(
                f"{what} {path} not found; {_prepare_hint(data_dir)} (or `python data.py download "
                f"--data-dir {data_dir}`)"
            )
    os.makedirs(data_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=data_dir, prefix=".prepare-")
    try:
        n_captions = _extract_captions(captions_archive, tmp) if captions_archive else 0
        if cub_archive is not None:
            _extract_embeddings(embeddings_archive, tmp)
            count = _extract_cub(cub_archive, tmp)
            io.remove_quietly(os.path.join(data_dir, SYNTHETIC_MARKER))
            for split in SPLITS:
                os.makedirs(os.path.join(data_dir, split), exist_ok=True)
                for f in os.listdir(os.path.join(tmp, split)):
                    os.replace(os.path.join(tmp, split, f), os.path.join(data_dir, split, f))
            dest = os.path.join(data_dir, CUB_DIR)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.replace(os.path.join(tmp, CUB_DIR), dest)
            print(
                f"Unpacked {count} entries of {cub_archive} and the split pickles of {embeddings_archive} into {data_dir}"
            )
        if n_captions:
            _install_captions(tmp, data_dir)
            print(f"Unpacked {n_captions} caption files of {captions_archive} into {os.path.join(data_dir, TEXT_DIR)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check(data_dir)


def check(data_dir=DATA_DIR):
    """Print a summary of data_dir; UserError naming what is missing and the command that fixes it."""
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {layout.data_hint(data_dir)}")
    missing = layout.missing_files(data_dir)
    if missing:
        for p in missing:
            print(f"missing: {p}")
        raise UserError(
            f"{data_dir} lacks {len(missing)} required file(s), e.g. {missing[0]}; {layout.data_hint(data_dir)}"
        )
    cub_dir = os.path.join(data_dir, CUB_DIR)
    boxes = data.load_bounding_boxes(cub_dir)
    kind = "synthetic birds" if layout.is_synthetic(data_dir) else "CUB-200-2011"
    print(f"{data_dir}: {kind}, {len(boxes)} bounding boxes")
    problems = 0
    for split in SPLITS:
        paths = layout.split_files(data_dir, split)
        filenames, class_ids, emb = (
            data.load_filenames(paths[0]),
            data.load_class_ids(paths[1]),
            data.load_embeddings(paths[2]),
        )
        data.check_counts(filenames, class_ids, emb, paths)
        no_box = [n for n in filenames if n not in boxes]
        no_image = [n for n in filenames if not os.path.isfile(os.path.join(cub_dir, "images", n + ".jpg"))]
        usable = len(set(filenames) - set(no_box) - set(no_image))
        print(
            f"  {split}: {len(filenames)} images, {len(set(class_ids))} classes, embeddings "
            f"{tuple(emb.shape)} {emb.dtype}, {len(no_box)} without bounding box, {len(no_image)} missing images"
        )
        for what, names in (("no bounding box", no_box), ("missing image", no_image)):
            if names:
                print(f"    {what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
        _report_captions(data_dir, filenames)
        if usable == 0:
            raise UserError(f"no usable image in the {split} split of {data_dir}; {layout.data_hint(data_dir)}")
        problems += len(set(no_box) | set(no_image))  # an image may lack both
    if problems:
        print(f"{problems} images will be skipped (with a warning) when loading")
    print("ok")
    return 0


def _report_captions(data_dir, filenames):
    """Print how many of a split's images have a caption file (optional: only text_encoder.py reads them)."""
    text_dir = os.path.join(data_dir, TEXT_DIR)
    if not os.path.isdir(text_dir):
        print(f"    captions: {text_dir} missing (needed only by text_encoder.py); {layout.captions_hint(data_dir)}")
        return
    missing = [n for n in filenames if not os.path.isfile(layout.caption_file(text_dir, n))]
    print(f"    captions: {len(filenames) - len(missing)} caption files present, {len(missing)} missing")
    if missing:
        print(f"    missing caption file: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
