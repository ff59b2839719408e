"""Getting the real data: download CUB-200-2011, StackGAN's birds.zip and the captions (AttnGAN's birds archive),
unpack local copies of them, and check a data folder (`python data.py download | prepare | check`).
"""

import hashlib
import os
import re
import shutil
import tempfile

import numpy as np

from stackgan.datasets import birds, dataset_of, loaders
from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM
from stackgan.datasets import cache
from stackgan.datasets.birds import CAPTIONS_DRIVE_ID, CUB_DIR, TEXT_DIR
from stackgan.layout import (
    CLASS_INFO_FILE,
    EMBEDDINGS_FILE,
    FILENAMES_FILE,
    SPLITS,
    SYNTHETIC_MARKER,
    dataset_dir,
)

DATA_DIR = dataset_dir(birds.DATASET.name)

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
    embeddings = os.path.join(downloads, "birds.zip")
    if os.path.isfile(embeddings) and zipfile.is_zipfile(embeddings):
        print(f"{embeddings} already downloaded")
    else:
        print(f"Downloading the char-CNN-RNN embeddings (Google Drive id {EMBEDDINGS_DRIVE_ID})")
        _download_drive(EMBEDDINGS_DRIVE_ID, embeddings, data_dir)
    captions = os.path.join(downloads, "attngan_birds.zip")
    if os.path.isfile(captions) and zipfile.is_zipfile(captions):
        print(f"{captions} already downloaded")
    else:
        print(f"Downloading the captions (AttnGAN's birds archive, Google Drive id {CAPTIONS_DRIVE_ID})")
        try:
            _download_drive(CAPTIONS_DRIVE_ID, captions, data_dir, "the captions zip")
        except UserError as err:
            print(f"note: no captions ({err}); {birds.DATASET.captions_hint(data_dir)}")
            captions = None
    prepare(cub, embeddings, data_dir, captions)
    print(f"The archives in {downloads} are no longer needed; delete them to free space.")


# Bounds on what an archive may unpack to, as wide as the real archives need: CUB_200_2011.tgz is 1.1 GB with
# 11,788 JPEGs among ~12,000 entries (its largest file, attributes/image_attribute_labels.txt, is ~70 MB); StackGAN's
# birds.zip holds six pickles, the largest ~360 MB; AttnGAN's birds.zip holds its 11,788 captions in a text.zip.
MAX_MEMBERS = 50_000  # entries read from one archive (nested ones included)
MAX_MEMBER_BYTES = {"cub": 256 << 20, "embeddings": 2 << 30, "captions": 1 << 20, "nested": 256 << 20}
MAX_TOTAL_BYTES = 8 << 30  # unpacked from one archive
MAX_EXPANSION = 20  # unpacked bytes per byte of archive (a JPEG archive unpacks to ~1x, captions to ~5x) ...
EXPANSION_SLACK = 64 << 20  # ... plus this, for small archives
MAX_NESTING = 1  # an archive inside the archive (AttnGAN's text.zip), not one inside that
IMAGE_SAMPLE = 64  # images per split that prepare decodes before it replaces anything


class Budget:
    """What one archive may still unpack: entries and bytes (bounded by MAX_TOTAL_BYTES and the archive's size)."""

    def __init__(self, archive, hint):
        self.archive, self.hint = archive, hint
        self.members = 0
        self.bytes_left = min(MAX_TOTAL_BYTES, MAX_EXPANSION * os.path.getsize(archive) + EXPANSION_SLACK)

    def entry(self):
        """Count one entry read from the archive; a UserError past MAX_MEMBERS."""
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise UserError(f"{self.archive} holds more than {MAX_MEMBERS:,} entries; {self.hint}")

    def entries(self, count):
        for _ in range(min(count, MAX_MEMBERS + 1)):
            self.entry()

    def take(self, name, size, kind):
        """Count `size` declared bytes of a member about to be unpacked; a UserError if it breaks a bound."""
        if size > MAX_MEMBER_BYTES[kind]:
            raise UserError(
                f"{self.archive}: {name} would unpack to {size:,} bytes, more than the {MAX_MEMBER_BYTES[kind]:,} "
                f"such a file needs; {self.hint}"
            )
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise UserError(
                f"{self.archive} would unpack to far more than its size ({os.path.getsize(self.archive):,} bytes); "
                f"{self.hint}"
            )


def _raise_if_unwritable(err, tmp):
    """A write that failed while unpacking (a full disk, a read-only folder) is said as such, not blamed on the
    archive."""
    import errno

    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
        raise io.WriteError(os.path.dirname(tmp), err) from None


def _first_line(err):
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:160]}" if text else type(err).__name__


def _safe_member(name):
    parts = name.replace("\\", "/").split("/")
    return not name.startswith(("/", "\\")) and ".." not in parts


def _extract_cub(archive, tmp):
    """Unpack the CUB_200_2011/ part of the archive into tmp; returns the number of entries."""
    import tarfile
    import zlib

    from tqdm import tqdm

    hint = f"it is not CUB_200_2011.tgz: download it again ({CUB_URL}, MD5 {CUB_MD5})"
    budget = Budget(archive, hint)
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tqdm(tar, desc="unpacking CUB_200_2011", unit=" files", disable=None):
                name = member.name.removeprefix("./")
                budget.entry()
                if not (name == CUB_DIR or name.startswith(CUB_DIR + "/")) or not (member.isfile() or member.isdir()):
                    continue  # attributes.txt and the like
                budget.take(name, member.size if member.isfile() else 0, "cub")
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                elif _safe_member(member.name):  # pragma: no cover - Python < 3.11.4
                    tar.extract(member, tmp)
                count += 1
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(
            f"{archive} is not a readable CUB_200_2011.tgz ({_first_line(err)}); "
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
    budget = Budget(archive, f"it is not StackGAN's birds.zip; download it again from {drive}")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            budget.entries(len(infos))
            names = [
                i.filename
                for i in infos
                if not i.filename.startswith("__MACOSX/")
                and not i.is_dir()
                and not os.path.basename(i.filename).startswith("._")
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
                budget.take(member, zf.getinfo(member).file_size, "embeddings")
                os.makedirs(os.path.join(tmp, split), exist_ok=True)
                with open(os.path.join(tmp, split, f), "wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)  # checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(
            f"{archive} is not a readable birds.zip ({_first_line(err)}); download it again from {drive}"
        ) from None


CAPTION_MEMBER = re.compile(r"(?:^|/)(?:text|text_c10)/([^/]+)/([^/]+)\.txt$")
NESTED_CAPTIONS = ("text.zip", "text_c10.zip")


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
    inside the archive (as AttnGAN's birds.zip ships them) is opened too, but no archive inside that. Returns the
    number of files."""
    import tarfile
    import zipfile
    import zlib

    out_root = os.path.join(tmp, TEXT_DIR)
    hint = (
        f"it is neither AttnGAN's birds.zip (https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}) nor Reed's "
        f"CUB archive with text_c10/"
    )
    budget = Budget(archive, hint)

    def write(key, src, size):
        budget.take(key, size, "captions")
        path = os.path.join(out_root, *key.split("/")) + ".txt"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)

    def from_zip(zf, depth):
        infos = zf.infolist()
        budget.entries(len(infos))
        members = _caption_members([i.filename for i in infos if not i.is_dir()])
        for key, member in members.items():
            with zf.open(member) as src:
                write(key, src, zf.getinfo(member).file_size)
        if members or depth >= MAX_NESTING:
            return len(members)
        for inner in [i for i in infos if os.path.basename(i.filename) in NESTED_CAPTIONS]:
            budget.take(inner.filename, inner.file_size, "nested")
            with zf.open(inner) as raw, tempfile.TemporaryFile() as copy:
                shutil.copyfileobj(raw, copy, 1 << 20)
                copy.seek(0)
                with zipfile.ZipFile(copy) as nested:
                    count = from_zip(nested, depth + 1)
            if count:
                return count
        return 0

    def from_tar(tar):
        members = {}
        for member in tar:
            budget.entry()
            if member.isfile():
                members[member.name] = member
        found = _caption_members(list(members))
        for key, name in found.items():
            with tar.extractfile(members[name]) as src:
                write(key, src, members[name].size)
        return len(found)

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                count = from_zip(zf, 0)
        else:
            with tarfile.open(archive, "r:*") as tar:
                count = from_tar(tar)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError, NotImplementedError) as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(f"{archive} is not a readable captions archive ({_first_line(err)}); {hint}") from None
    if not count:
        raise UserError(f"{archive} holds no text/<class>/<image>.txt or text_c10/<class>/<image>.txt file; {hint}")
    return count


def _replace(staged, dest, trash):
    """Put the staged file or folder at dest; what was there goes into trash (deleted with it)."""
    if os.path.lexists(dest):
        os.replace(dest, os.path.join(trash, f"old-{len(os.listdir(trash))}"))
    os.replace(staged, dest)


def prepare(cub_archive, embeddings_archive, data_dir=DATA_DIR, captions_archive=None):
    """Unpack CUB_200_2011.tgz and birds.zip (local files) into the layout load_dataset reads, and the captions
    from captions_archive (AttnGAN's birds.zip or Reed's CUB text archive) into <data_dir>/text. With only
    captions_archive, only the captions are (re)placed. Everything is unpacked into a folder inside data_dir and
    verified there (the pickles through the loaders, the CUB tables, a sample of the images, the captions) before
    anything in data_dir is replaced: a damaged or wrong archive leaves data_dir as it was."""
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
    tmp = io.staging_folder(data_dir, "prepare")
    try:
        staged = _stage(cub_archive, embeddings_archive, captions_archive, data_dir, tmp)
        _install(staged, data_dir, tmp)
    except OSError as err:  # a full disk, a read-only folder
        raise io.WriteError(data_dir, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check(data_dir, image_sample=IMAGE_SAMPLE)


def _stage(cub_archive, embeddings_archive, captions_archive, data_dir, tmp):
    """Unpack and verify everything in tmp; returns the names (in tmp and data_dir) to install."""
    staged = []
    if captions_archive:
        n_captions = _extract_captions(captions_archive, tmp)
        _verify_captions(tmp, data_dir if cub_archive is None else tmp, captions_archive)
        staged.append(TEXT_DIR)
        print(f"Unpacked {n_captions} caption files of {captions_archive}")
    if cub_archive is not None:
        _extract_embeddings(embeddings_archive, tmp)
        count = _extract_cub(cub_archive, tmp)
        print(
            f"Unpacked {count} entries of {cub_archive} and the split pickles of {embeddings_archive}; verifying them"
        )
        verify(tmp, f"the data unpacked from {cub_archive} and {embeddings_archive}", IMAGE_SAMPLE)
        staged += [os.path.join(split, f) for split in SPLITS for f in os.listdir(os.path.join(tmp, split))]
        staged.append(CUB_DIR)
    return staged


def _install(staged, data_dir, tmp):
    """Move the verified files and folders into data_dir; real data replaces a synthetic set's marker."""
    trash = os.path.join(tmp, "replaced")
    os.makedirs(trash, exist_ok=True)
    if CUB_DIR in staged:
        io.remove_quietly(os.path.join(data_dir, SYNTHETIC_MARKER))
    for name in staged:
        os.makedirs(os.path.dirname(os.path.join(data_dir, name)), exist_ok=True)
        _replace(os.path.join(tmp, name), os.path.join(data_dir, name), trash)
    print(f"Installed them in {data_dir}")


def _verify_captions(tmp, data_dir, archive):
    """The staged captions must decode and name images of the data they join (data_dir's train split, if it has
    one)."""
    from stackgan.datasets.captions import read_captions

    text = os.path.join(tmp, TEXT_DIR)
    files = [os.path.join(d, f) for d, _, fs in os.walk(text) for f in fs]
    for path in files[:: max(1, len(files) // IMAGE_SAMPLE)]:
        read_captions(path)
    filenames_path = layout.split_files(data_dir, "train").filenames
    if os.path.isfile(filenames_path):
        names = loaders.load_filenames(filenames_path)
        if names and not any(os.path.isfile(birds.DATASET.caption_path(tmp, n)) for n in names):
            raise UserError(
                f"{archive} holds captions of none of the {len(names)} training images in {data_dir}; "
                f"it belongs to another dataset"
            )


def verify(data_dir, what, image_sample):
    """Load what training reads from data_dir (a staged copy): the pickles, the CUB tables, image_sample images
    per split; a UserError naming `what` if any of it is unusable."""
    try:
        inspect(data_dir, image_sample, quiet=True)
    except UserError as err:
        raise UserError(f"{what} is not usable, nothing was replaced: {err}") from None


def check(data_dir=DATA_DIR, image_sample=None, dataset=None):
    """Print a summary of data_dir, decoding every image (or image_sample per split), with a progress bar; UserError
    naming what is missing or unusable and the command that fixes it."""
    inspect(data_dir, image_sample, dataset=dataset)
    print("ok")
    return 0


def inspect(data_dir, image_sample=None, quiet=False, dataset=None):
    """What check prints (unless quiet): per split the images, classes, embeddings, missing boxes and images,
    undecodable images; UserError for what training would refuse or mis-train on."""
    say = (lambda *a: None) if quiet else print
    dataset = dataset_of(data_dir, dataset)
    if not os.path.isdir(data_dir):
        raise UserError(f"data folder {data_dir} not found; {dataset.data_hint(data_dir)}")
    missing = layout.missing_files(data_dir, dataset)
    if missing:
        raise UserError(
            f"{data_dir} lacks {len(missing)} required file(s): {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}; {dataset.data_hint(data_dir)}"
        )
    boxes = dataset.boxes(data_dir)
    kind = f"synthetic {dataset.name}" if layout.is_synthetic(data_dir) else dataset.title
    say(f"{data_dir}: {kind}" + ("" if boxes is None else f", {len(boxes)} bounding boxes"))
    problems = 0
    for split in SPLITS:
        paths = layout.split_files(data_dir, split)
        filenames, class_ids, emb = (
            loaders.load_filenames(paths[0]),
            loaders.load_class_ids(paths[1]),
            loaders.load_embeddings(paths[2]),
        )
        loaders.check_counts(filenames, class_ids, emb, paths)
        if emb.shape[2] != EMBEDDING_DIM:
            raise UserError(
                f"{paths[2]} holds {emb.shape[2]}-d embeddings, but StackGAN's networks read the "
                f"{EMBEDDING_DIM}-d char-CNN-RNN embeddings; download or prepare the data again"
            )
        no_box = [] if boxes is None else [n for n in filenames if n not in boxes]
        no_image = [n for n in filenames if not os.path.isfile(dataset.image_path(data_dir, n))]
        present = [n for n in filenames if n not in set(no_image)]
        undecodable, tried = _undecodable(dataset, data_dir, present, image_sample, f"decoding {split} images")
        unreadable = [name for name, _ in undecodable]
        usable = len(set(filenames) - set(no_box) - set(no_image) - set(unreadable))
        say(
            f"  {split}: {len(filenames)} images, {len(set(class_ids))} classes, embeddings "
            f"{tuple(emb.shape)} {emb.dtype}, "
            + ("" if boxes is None else f"{len(no_box)} without bounding box, ")
            + f"{len(no_image)} missing images, "
            f"{len(unreadable)} of {tried} {'sampled ' if tried < len(present) else ''}images undecodable"
        )
        described = [f"{name} ({why})" for name, why in undecodable]
        for what, names in (("no bounding box", no_box), ("missing image", no_image), ("undecodable", described)):
            if names:
                say(f"    {what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}")
        if not quiet:
            _report_captions(dataset, data_dir, filenames, class_ids)
        if usable == 0 or (tried and len(unreadable) == tried):
            raise UserError(f"no usable image in the {split} split of {data_dir}; {dataset.data_hint(data_dir)}")
        problems += len(set(no_box) | set(no_image) | set(unreadable))  # an image may lack both
    if problems:
        say(f"{problems} images will be skipped (with a warning) when loading")


def _undecodable(dataset, data_dir, names, sample, desc):
    """([(name, reason)] of the images that do not decode, number tried): every image, or `sample` of them spread
    over the list, decoded on a few threads with a progress bar."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    loaders.refuse_decompression_bombs()
    if sample is not None and len(names) > sample:
        names = [names[i] for i in np.linspace(0, len(names) - 1, sample).round().astype(int)]
    bad = []
    with (
        ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool,
        tqdm(total=len(names), desc=desc, unit="img", leave=False, disable=None if len(names) >= 500 else True) as bar,
    ):
        for name, problem in zip(
            names, pool.map(lambda n: loaders.verify_image(dataset.image_path(data_dir, n)), names)
        ):
            if problem is not None:
                bad.append((name, problem))
            bar.update(1)
    return bad, len(names)


def _report_captions(dataset, data_dir, filenames, class_ids):
    """Print how many of a split's images have a caption file (optional: only text_encoder.py reads them)."""
    text_dir = dataset.text_dir(data_dir)
    if not os.path.isdir(text_dir):
        print(f"    captions: {text_dir} missing (needed only by text_encoder.py); {dataset.captions_hint(data_dir)}")
        return
    missing = [n for n, c in zip(filenames, class_ids) if not os.path.isfile(dataset.caption_path(data_dir, n, c))]
    print(f"    captions: {len(filenames) - len(missing)} caption files present, {len(missing)} missing")
    if missing:
        print(f"    missing caption file: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
