"""The datasets StackGAN trains on. Each is one small module with a Dataset subclass that says where its images,
boxes (optional), captions and split files are, how an image is cropped, and how to get the data; the rest of the
package asks the dataset of a data folder (`dataset_of`) and never spells a dataset's paths itself. Adding a
dataset (COCO, say: StackGAN's layout without boxes) is a new module and a line in MODULES.

Every dataset keeps StackGAN's split files in <data_dir>/{train,test}/ (filenames.pickle, class_info.pickle,
char-CNN-RNN-embeddings.pickle; stackgan.layout.split_files).
"""

import importlib
import os
from typing import NamedTuple

from stackgan import layout
from stackgan.cli import UserError

MODULES = {"birds": "stackgan.datasets.birds", "flowers": "stackgan.datasets.flowers"}
NAMES = tuple(MODULES)


class Archive(NamedTuple):
    """One archive of a dataset: what `python data.py download` fetches and `python data.py prepare` unpacks
    (stackgan.datasets.prepare). `role` is what it brings: 'images' (the dataset's images folder), 'embeddings'
    (StackGAN's split pickles) or 'captions' (Reed's text_c10 files)."""

    role: str
    flag: str  # data.py prepare's flag for a local copy: '--cub-archive'
    filename: str  # its name in <data_dir>/downloads and in messages: 'CUB_200_2011.tgz'
    title: str  # what it is: "StackGAN's birds.zip"
    url: str = ""  # a direct link (MD5-checked when md5 is given) ...
    md5: str = ""
    drive_id: str = ""  # ... or a Google Drive id (fetched with gdown)
    size: str = ""  # 'about 1.1 GB', said before the download
    optional: bool = False  # only text_encoder.py needs it: a failed download is a note, not an error

    @property
    def link(self):
        """Where to get it by hand: the URL (and MD5), or the Google Drive link."""
        if self.url:
            return f"{self.url}, MD5 {self.md5}" if self.md5 else self.url
        return f"https://drive.google.com/uc?id={self.drive_id}"


class Dataset:
    """What a dataset module fills in. `name` is the --dataset value, `thing` what one image shows ('bird')."""

    name = ""
    title = ""  # the dataset's own name, for start-up lines: 'CUB-200-2011 birds'
    thing = ""
    example_captions = ()  # for the page and the notebook
    # Paths inside the data folder, as data: folders end in "/".
    markers = ()  # folders only this dataset's layout has (how a data folder's dataset is found)
    layout_names = ()  # what training needs beside the split files
    key_names = ()  # files whose contents decide how the images are cropped: a change rebuilds the image cache
    # The synthetic set of this dataset's --demo (write_synthetic, ensure_synthetic, PALETTE) and the module that reads
    # its attributes back from generated images (WHAT, EVAL_KEYS, split_attributes, attribute_report, describe,
    # describe_mistakes), by module name: imported when asked for.
    synthetic_module = ""
    attributes_module = ""
    archives = ()  # its Archives: images, embeddings, captions, in download order
    # The folder (in the data folder) that `data.py prepare` unpacks from the images archive, a tar: 'CUB_200_2011',
    # 'jpg'; and what must be in it then (a name ending in '/' is a folder).
    images_folder = ""
    images_folder_holds = ()

    @property
    def default_dir(self):
        """Where its data goes unless --data-dir says otherwise."""
        return layout.dataset_dir(self.name)

    def archive(self, role):
        """The Archive of a role ('images', 'embeddings', 'captions')."""
        return next(a for a in self.archives if a.role == role)

    def synthetic(self):
        """The module that writes this dataset's synthetic set."""
        return importlib.import_module(self.synthetic_module)

    def attributes(self):
        """The module that reads the synthetic set's attributes (the colour asked for) back from generated images."""
        return importlib.import_module(self.attributes_module)

    def image_path(self, data_dir, name):
        """The image file of a filenames.pickle name."""
        raise NotImplementedError

    def boxes(self, data_dir):
        """{name: [x, y, w, h]} to crop around, or None when the dataset has no boxes (the whole image is used)."""
        return None

    def caption_path(self, data_dir, name, class_id):
        """The caption file (Reed's text_c10: ten lines) of an image."""
        raise NotImplementedError

    def text_dir(self, data_dir):
        """The folder that holds the caption files."""
        raise NotImplementedError

    def layout_files(self, data_dir):
        """Files and folders (ending in os.sep) beside the split files that training needs."""
        return [_path(data_dir, name) for name in self.layout_names]

    def key_files(self, data_dir):
        return [_path(data_dir, name) for name in self.key_names]

    def looks_like(self, data_dir):
        """True when data_dir holds this dataset's layout (a folder only it has)."""
        return any(os.path.isdir(os.path.join(data_dir, name)) for name in self.markers)

    def data_hint(self, data_dir):
        """How to get the data into data_dir, for a message about missing files."""
        raise NotImplementedError

    def captions_hint(self, data_dir):
        """How to get the captions into data_dir."""
        raise NotImplementedError


def _path(data_dir, name):
    """data_dir/name in the system's spelling, a folder keeping its trailing separator."""
    return os.path.join(data_dir, *name.rstrip("/").split("/")) + (os.sep if name.endswith("/") else "")


def get_dataset(name):
    """The Dataset called `name` ('birds', 'flowers'); a UserError for another name."""
    if name not in MODULES:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(NAMES)}")
    return importlib.import_module(MODULES[name]).DATASET


def dataset_of(data_dir, name=None):
    """The dataset of a data folder: `name` when given (a name or a Dataset; the folder, if it holds a dataset, must
    look like it), else the one whose layout the folder holds, else the one whose default or demo folder it is
    (data/flowers, data/synthetic_flowers), else birds (the chapter's)."""
    if isinstance(name, Dataset):
        return name
    found = [n for n in NAMES if data_dir and os.path.isdir(data_dir) and get_dataset(n).looks_like(data_dir)]
    if name is not None:
        dataset = get_dataset(name)
        if found and name not in found:
            raise UserError(
                f"{data_dir} holds {get_dataset(found[0]).title} (its layout), not {dataset.title}; pass "
                f"--dataset {found[0]}, or give the --data-dir of the {name}"
            )
        return dataset
    if not found and data_dir:
        found = [n for n in NAMES if os.path.normpath(data_dir) in _home_folders(n)]
    return get_dataset(found[0] if found else layout.DEFAULT_DATASET)


def _home_folders(name):
    return {os.path.normpath(layout.dataset_dir(name)), os.path.normpath(layout.demo_dirs(name)["data_dir"])}
