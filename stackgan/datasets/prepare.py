"""Getting a dataset's real data: download its archives, unpack local copies of them, and check a data folder
(`python data.py download | prepare | check`).

Which archives a dataset has, where they are and what its images folder must hold is the dataset's own module's
(Dataset.archives, images_folder: stackgan.datasets.birds, stackgan.datasets.flowers); this module is the machinery
they share: downloads (a direct link, MD5-checked, or Google Drive via gdown), unpacking within bounds, and staging:
everything is unpacked into a folder inside the data folder and verified there before anything is replaced.
"""

import hashlib
import os
import re
import shutil
import tempfile

import numpy as np

from stackgan import io, layout
from stackgan.cli import UserError
from stackgan.config import EMBEDDING_DIM
from stackgan.datasets import cache, dataset_of, loaders
from stackgan.layout import (
    CLASS_INFO_FILE,
    DEFAULT_DATASET,
    EMBEDDINGS_FILE,
    FILENAMES_FILE,
    SPLITS,
    SYNTHETIC_MARKER,
    dataset_dir,
)

DATA_DIR = dataset_dir(DEFAULT_DATASET)
ROLES = ("images", "embeddings", "captions")


def _dataset_flag(dataset):
    return "" if dataset.name == DEFAULT_DATASET else f" --dataset {dataset.name}"


def prepare_hint(dataset, data_dir):
    """How to download a dataset's archives by hand and unpack them."""
    images, embeddings = dataset.archive("images"), dataset.archive("embeddings")
    return (
        f"download it by hand ({images.filename}: {images.link}; {embeddings.filename}: {embeddings.link}) and run "
        f"`python data.py prepare{_dataset_flag(dataset)} {images.flag} {images.filename} {embeddings.flag} "
        f"{embeddings.filename} --data-dir {data_dir}`"
    )


def _download_url(url, dest, md5, hint):
    """Download url to dest with a progress bar, checking the MD5; UserError (ending in `hint`) on any failure."""
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
        raise UserError(f"could not download {url} ({type(err).__name__}: {err}); {hint}") from None
    if md5 and digest.hexdigest() != md5:
        io.remove_quietly(part)
        raise UserError(f"{url} arrived damaged (MD5 {digest.hexdigest()}, expected {md5}); try again or {hint}")
    os.replace(part, dest)


def _is_archive(path):
    """True for a zip or tar file (compressed or not)."""
    import tarfile
    import zipfile

    try:
        return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)
    except OSError:
        return False


def _download_drive(file_id, dest, hint, what="the archive"):
    """Download a Google Drive file with gdown (it handles the confirm step of large files) to dest; UserError
    (ending in `hint`) unless a zip or tar archive arrives."""
    try:
        import gdown
    except ImportError:
        raise UserError(f"gdown is not installed (pip install gdown); or {hint}") from None
    part = dest + ".part"
    try:
        result = gdown.download(id=file_id, output=part, quiet=False)
    except Exception as err:
        io.remove_quietly(part)
        raise UserError(
            f"could not download Google Drive file {file_id} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); {hint}"
        ) from None
    if result is None or not os.path.isfile(part) or not _is_archive(part):
        io.remove_quietly(part)
        raise UserError(f"Google Drive did not return {what} (id {file_id}); {hint}")
    os.replace(part, dest)


def _downloaded(path, archive):
    """True when path already holds the archive: its MD5 matches, or (without one) it is a readable archive."""
    if not os.path.isfile(path):
        return False
    return cache.file_digest(path, "md5") == archive.md5 if archive.md5 else _is_archive(path)


def download(data_dir=DATA_DIR, dataset=None):
    """Download the dataset's archives (CUB_200_2011.tgz, birds.zip and AttnGAN's captions for the birds;
    102flowers.tgz, StackGAN's flowers archive and Reed's captions for the flowers) into <data_dir>/downloads, then
    prepare(). The captions are optional (only text_encoder.py needs them): if their download fails, the rest is
    prepared and a note says how to add them."""
    dataset = dataset_of(data_dir, dataset)
    downloads = os.path.join(data_dir, "downloads")
    os.makedirs(downloads, exist_ok=True)
    hint = prepare_hint(dataset, data_dir)
    paths = {}
    for archive in dataset.archives:
        dest = os.path.join(downloads, archive.filename)
        if _downloaded(dest, archive):
            print(f"{dest} already downloaded" + (" (MD5 ok)" if archive.md5 else ""))
        else:
            try:
                if archive.url:
                    print(f"Downloading {archive.url}" + (f" ({archive.size})" if archive.size else ""))
                    _download_url(archive.url, dest, archive.md5, hint)
                else:
                    print(f"Downloading {archive.title} (Google Drive id {archive.drive_id})")
                    _download_drive(archive.drive_id, dest, hint, archive.title)
            except UserError as err:
                if not archive.optional:
                    raise
                print(f"note: no {archive.role} ({err}); {dataset.captions_hint(data_dir)}")
                dest = None
        paths[archive.role] = dest
    prepare(paths["images"], paths["embeddings"], data_dir, paths.get("captions"), dataset)
    print(f"The archives in {downloads} are no longer needed; delete them to free space.")


# Bounds on what an archive may unpack to, as wide as the real archives need: CUB_200_2011.tgz is 1.1 GB with
# 11,788 JPEGs among ~12,000 entries (its largest file, attributes/image_attribute_labels.txt, is ~70 MB);
# 102flowers.tgz is 330 MB with 8,189 JPEGs; StackGAN's birds.zip holds six pickles, the largest ~360 MB; AttnGAN's
# birds.zip holds its 11,788 captions in a text.zip; Reed's cvpr2016_flowers.tar.gz its 8,189 caption files beside
# Torch files.
MAX_MEMBERS = 50_000  # entries read from one archive (nested ones included)
MAX_MEMBER_BYTES = {"images": 256 << 20, "embeddings": 2 << 30, "captions": 1 << 20, "nested": 256 << 20}
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


def _junk(name):
    """macOS metadata that archives made on a Mac hold: __MACOSX/ folders, ._ AppleDouble files, .DS_Store."""
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def _archive_errors():
    import tarfile
    import zipfile
    import zlib

    return (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError)


def unpack_folder(path, archive, tmp, folder, holds=()):
    """Unpack the <folder>/ part of a local tar archive (`archive` says which one it should be) into tmp, macOS
    metadata left out; `holds` names what the folder must then have (a name ending in '/' a folder). Returns the
    number of entries unpacked."""
    import tarfile

    from tqdm import tqdm

    hint = f"it is not {archive.filename}: download it again ({archive.link})"
    budget = Budget(path, hint)
    count = files = 0
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tqdm(tar, desc=f"unpacking {archive.filename}", unit=" files", disable=None):
                name = member.name.removeprefix("./")
                budget.entry()
                if not (name == folder or name.startswith(folder + "/")) or not (member.isfile() or member.isdir()):
                    continue  # attributes.txt and the like
                if _junk(name):
                    continue
                budget.take(name, member.size if member.isfile() else 0, "images")
                if hasattr(tarfile, "data_filter"):
                    tar.extract(member, tmp, filter="data")
                elif _safe_member(member.name):  # pragma: no cover - Python < 3.11.4
                    tar.extract(member, tmp)
                count += 1
                files += member.isfile()
    except _archive_errors() as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(
            f"{path} is not a readable {archive.filename} ({_first_line(err)}); download it again ({archive.link})"
        ) from None
    src = os.path.join(tmp, folder)
    missing = [h for h in holds if not (os.path.isdir if h.endswith("/") else os.path.isfile)(os.path.join(src, h))]
    if missing or not files:
        what = f"{folder}/{missing[0].rstrip('/')}" if missing else f"file in {folder}/"
        raise UserError(
            f"{path} has no {what} ({count} entries under {folder}/): it is not {archive.filename}; download it "
            f"from {archive.link}"
        )
    return count


class _Members:
    """The regular files of a zip or tar archive, macOS metadata left out, each entry counted against `budget`:
    names (list), size(name) and open(name) (a binary file object). Opening tar members in `names` order reads the
    archive front to back."""

    def __init__(self, path, budget):
        import tarfile
        import zipfile

        self._zip = self._tar = None
        if zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            infos = self._zip.infolist()
            budget.entries(len(infos))
            self._infos = {i.filename: i for i in infos if not i.is_dir() and not _junk(i.filename)}
        else:
            self._tar = tarfile.open(path, "r:*")
            self._infos = {}
            for member in self._tar:
                budget.entry()
                if member.isfile() and not _junk(member.name):
                    self._infos[member.name] = member
        self.names = list(self._infos)

    def size(self, name):
        info = self._infos[name]
        return info.file_size if self._zip else info.size

    def open(self, name):
        return self._zip.open(self._infos[name]) if self._zip else self._tar.extractfile(self._infos[name])

    def in_archive_order(self, names):
        """names sorted as the archive holds them (a compressed tar read backwards starts over each time)."""
        order = {n: k for k, n in enumerate(self.names)}
        return sorted(names, key=order.__getitem__)

    def close(self):
        (self._zip or self._tar).close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def unpack_split_pickles(path, archive, tmp):
    """Copy <anything>/{train,test}/{filenames,class_info,char-CNN-RNN-embeddings}.pickle of a zip or tar archive to
    tmp/{train,test}/ (the shallowest copy of each)."""
    hint = f"it is not {archive.title}; download it again from {archive.link}"
    budget = Budget(path, hint)
    try:
        with _Members(path, budget) as members:
            chosen, missing = {}, []
            for split in SPLITS:
                for f in (FILENAMES_FILE, CLASS_INFO_FILE, EMBEDDINGS_FILE):
                    found = [n for n in members.names if n == f"{split}/{f}" or n.endswith(f"/{split}/{f}")]
                    if found:
                        chosen[min(found, key=lambda n: (n.count("/"), n))] = (split, f)
                    else:
                        missing.append(f"{split}/{f}")
            if missing:
                raise UserError(
                    f"{path} has no {missing[0]} ({len(missing)} of the 6 pickles missing): "
                    f"it is not {archive.title}; download it from {archive.link}"
                )
            for member in members.in_archive_order(chosen):
                split, f = chosen[member]
                budget.take(member, members.size(member), "embeddings")
                os.makedirs(os.path.join(tmp, split), exist_ok=True)
                with open(os.path.join(tmp, split, f), "wb") as out, members.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)  # checks a zip member's CRC
    except _archive_errors() as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(
            f"{path} is not a readable {archive.filename} ({_first_line(err)}); download it again from {archive.link}"
        ) from None


CAPTION_MEMBER = re.compile(r"(?:^|/)(?:text|text_c10)/([^/]+)/([^/]+)\.txt$")
NESTED_CAPTIONS = ("text.zip", "text_c10.zip")


def _caption_members(names):
    """{'<class>/<image>': member} for the caption files among an archive's member names (AttnGAN's birds/text/,
    Reed's text_c10/), skipping macOS metadata; the shallowest copy wins."""
    found = {}
    for n in sorted(names, key=lambda n: (n.count("/"), n)):
        m = CAPTION_MEMBER.search(n.replace("\\", "/"))
        if m is None or _junk(n):
            continue
        key = f"{m.group(1)}/{m.group(2)}"
        if ".." not in (m.group(1), m.group(2)):
            found.setdefault(key, n)
    return found


def unpack_captions(path, archive, tmp, text_folder):
    """Copy every text/<class>/<image>.txt (or text_c10/...) of a zip or tar archive to tmp/<text_folder>/; a
    text.zip inside the archive (as AttnGAN's birds.zip ships them) is opened too, but no archive inside that. Returns
    the number of files."""
    import zipfile

    out_root = os.path.join(tmp, text_folder)
    hint = f"it is not {archive.title} ({archive.link})"
    budget = Budget(path, hint)

    def write(key, src, size):
        budget.take(key, size, "captions")
        target = os.path.join(out_root, *key.split("/")) + ".txt"
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)

    def from_members(members, depth):
        found = _caption_members(members.names)
        by_member = {member: key for key, member in found.items()}
        for member in members.in_archive_order(by_member):
            with members.open(member) as src:
                write(by_member[member], src, members.size(member))
        if found or depth >= MAX_NESTING:
            return len(found)
        for inner in [n for n in members.names if os.path.basename(n) in NESTED_CAPTIONS]:
            budget.take(inner, members.size(inner), "nested")
            with members.open(inner) as raw, tempfile.NamedTemporaryFile(dir=tmp, suffix=".zip") as copy:
                shutil.copyfileobj(raw, copy, 1 << 20)
                copy.flush()
                if not zipfile.is_zipfile(copy.name):
                    continue
                with _Members(copy.name, budget) as nested:
                    count = from_members(nested, depth + 1)
            if count:
                return count
        return 0

    try:
        with _Members(path, budget) as members:
            count = from_members(members, 0)
    except _archive_errors() as err:
        _raise_if_unwritable(err, tmp)
        raise UserError(f"{path} is not a readable captions archive ({_first_line(err)}); {hint}") from None
    if not count:
        raise UserError(f"{path} holds no text/<class>/<image>.txt or text_c10/<class>/<image>.txt file; {hint}")
    return count


def _replace(staged, dest, trash):
    """Put the staged file or folder at dest; what was there goes into trash (deleted with it)."""
    if os.path.lexists(dest):
        os.replace(dest, os.path.join(trash, f"old-{len(os.listdir(trash))}"))
    os.replace(staged, dest)


def prepare(images_archive, embeddings_archive, data_dir=DATA_DIR, captions_archive=None, dataset=None):
    """Unpack local copies of a dataset's archives into the layout training reads: the images archive
    (CUB_200_2011.tgz, 102flowers.tgz) and StackGAN's embeddings archive (birds.zip, the flowers archive) together,
    and/or the captions (AttnGAN's birds.zip or Reed's text_c10 archives) into the dataset's text folder. The dataset
    is `dataset` (a name), or the one data_dir holds, or birds. Everything is unpacked into a folder inside data_dir
    and verified there (the pickles through the loaders, the images folder, a sample of the images, the captions)
    before anything in data_dir is replaced: a damaged or wrong archive leaves data_dir as it was."""
    dataset = dataset_of(data_dir, dataset)
    images, embeddings, captions = (dataset.archive(role) for role in ROLES)
    if images_archive is None and embeddings_archive is None and captions_archive is None:
        raise UserError(f"give {images.flag} and {embeddings.flag}, and/or {captions.flag}")
    if (images_archive is None) != (embeddings_archive is None):
        raise UserError(f"{images.flag} and {embeddings.flag} go together; give both (or only {captions.flag})")
    for archive, path in ((images, images_archive), (embeddings, embeddings_archive), (captions, captions_archive)):
        if path is not None and not os.path.isfile(path):
            raise UserError(
                f"{archive.flag} {path} not found; {prepare_hint(dataset, data_dir)} (or `python data.py "
                f"download{_dataset_flag(dataset)} --data-dir {data_dir}`)"
            )
    tmp = io.staging_folder(data_dir, "prepare")
    try:
        staged = _stage(dataset, images_archive, embeddings_archive, captions_archive, data_dir, tmp)
        _install(dataset, staged, data_dir, tmp)
    except OSError as err:  # a full disk, a read-only folder
        raise io.WriteError(data_dir, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check(data_dir, image_sample=IMAGE_SAMPLE, dataset=dataset)


def _stage(dataset, images_archive, embeddings_archive, captions_archive, data_dir, tmp):
    """Unpack and verify everything in tmp; returns the names (in tmp and data_dir) to install."""
    staged = []
    if images_archive is not None:
        unpack_split_pickles(embeddings_archive, dataset.archive("embeddings"), tmp)
        images = dataset.archive("images")
        count = unpack_folder(images_archive, images, tmp, dataset.images_folder, dataset.images_folder_holds)
        print(
            f"Unpacked {count} entries of {images_archive} and the split pickles of {embeddings_archive}; "
            "verifying them"
        )
        verify(tmp, f"the data unpacked from {images_archive} and {embeddings_archive}", IMAGE_SAMPLE, dataset)
        staged += [os.path.join(split, f) for split in SPLITS for f in os.listdir(os.path.join(tmp, split))]
        staged.append(dataset.images_folder)
    if captions_archive:
        text_folder = os.path.relpath(dataset.text_dir(tmp), tmp)
        n_captions = unpack_captions(captions_archive, dataset.archive("captions"), tmp, text_folder)
        joined = (tmp, f"{images_archive}") if images_archive is not None else (data_dir, data_dir)
        _verify_captions(dataset, tmp, *joined, captions_archive)
        staged.append(text_folder)
        print(f"Unpacked {n_captions} caption files of {captions_archive}")
    return staged


def _install(dataset, staged, data_dir, tmp):
    """Move the verified files and folders into data_dir; real data replaces a synthetic set's marker."""
    trash = os.path.join(tmp, "replaced")
    os.makedirs(trash, exist_ok=True)
    if dataset.images_folder in staged:
        io.remove_quietly(os.path.join(data_dir, SYNTHETIC_MARKER))
    for name in staged:
        os.makedirs(os.path.dirname(os.path.join(data_dir, name)), exist_ok=True)
        _replace(os.path.join(tmp, name), os.path.join(data_dir, name), trash)
    print(f"Installed them in {data_dir}")


def _verify_captions(dataset, tmp, split_dir, split_name, archive):
    """The staged captions must decode and name images of the data they join (the train split in split_dir, if
    there is one; split_name names it in the message)."""
    from stackgan.datasets.captions import read_captions

    files = [os.path.join(d, f) for d, _, fs in os.walk(dataset.text_dir(tmp)) for f in fs]
    for path in files[:: max(1, len(files) // IMAGE_SAMPLE)]:
        read_captions(path)
    paths = layout.split_files(split_dir, "train")
    if os.path.isfile(paths.filenames) and os.path.isfile(paths.class_info):
        names, class_ids = loaders.load_filenames(paths.filenames), loaders.load_class_ids(paths.class_info)
        if names and not any(os.path.isfile(dataset.caption_path(tmp, n, c)) for n, c in zip(names, class_ids)):
            raise UserError(
                f"{archive} holds captions of none of the {len(names)} training images in {split_name}; "
                f"it belongs to another dataset"
            )


def verify(data_dir, what, image_sample, dataset=None):
    """Load what training reads from data_dir (a staged copy): the pickles, the dataset's own files (CUB's tables),
    image_sample images per split; a UserError naming `what` if any of it is unusable."""
    try:
        inspect(data_dir, image_sample, quiet=True, dataset=dataset)
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
            f"{' ...' if len(missing) > 3 else ''}{_sources(dataset, data_dir, missing)}; {dataset.data_hint(data_dir)}"
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


def _sources(dataset, data_dir, missing):
    """', from <archive> (<link>) and ...' for the archives that hold the missing files: the split pickles come from
    the embeddings archive, the rest from the images archive."""
    if not dataset.archives:
        return ""
    pickles = {path for split in SPLITS for path in layout.split_files(data_dir, split)}
    roles = [
        role for role, needed in (("images", set(missing) - pickles), ("embeddings", set(missing) & pickles)) if needed
    ]
    return ", from " + " and ".join(f"{a.filename} ({a.link})" for a in map(dataset.archive, roles))


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
