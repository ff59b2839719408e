"""CUB-200-2011 birds, the chapter's dataset: where StackGAN's birds data keeps its images, boxes and captions, and
the chapter's crop (1.5x the box's longer side around its centre, stackgan.datasets.loaders.crop_box).

    data/birds/train/, test/                              StackGAN's split files (birds.zip)
    data/birds/CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<image>.jpg
    data/birds/text/<class>/<image>.txt                   ten captions per image (optional: the caption encoder)
"""

import math
import os

from stackgan.cli import UserError
from stackgan.datasets import Archive, Dataset
from stackgan.datasets.loaders import require_file

CUB_DIR = "CUB_200_2011"
TEXT_DIR = "text"
ATTRIBUTE_NAMES_FILE = "attributes.txt"  # beside CUB_200_2011/, as CUB's archive has it
TABLES = ("images.txt", "bounding_boxes.txt")
# The old vision.caltech.edu/visipedia-data link is dead.
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
EMBEDDINGS_DRIVE_ID = "0B3y_msrWZaXLT1BZdVdycDY5TEE"  # StackGAN's birds.zip (its README's link)
CAPTIONS_DRIVE_ID = "1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ"  # AttnGAN's birds metadata archive, holds birds/text/
ARCHIVES = (
    Archive(
        "images", "--cub-archive", "CUB_200_2011.tgz", "CUB-200-2011", url=CUB_URL, md5=CUB_MD5, size="about 1.1 GB"
    ),
    Archive("embeddings", "--embeddings-archive", "birds.zip", "StackGAN's birds.zip", drive_id=EMBEDDINGS_DRIVE_ID),
    Archive(
        "captions",
        "--captions-archive",
        "attngan_birds.zip",
        "AttnGAN's birds.zip (or Reed's CUB archive with text_c10/)",
        drive_id=CAPTIONS_DRIVE_ID,
        optional=True,
    ),
)


class Birds(Dataset):
    name = "birds"
    title = "CUB-200-2011 birds"
    thing = "bird"
    markers = (CUB_DIR,)
    key_names = (f"{CUB_DIR}/{TABLES[0]}", f"{CUB_DIR}/{TABLES[1]}")
    layout_names = key_names + (f"{CUB_DIR}/images/",)
    example_captions = (
        "this bird has a bright yellow body with black wings and a short pointed beak",
        "a small red bird with dark wings and a black crown",
        "a blue bird with white wings and a long tail",
    )
    synthetic_module = "stackgan.datasets.synthetic"
    attributes_module = "stackgan.metrics.attributes"
    archives = ARCHIVES
    images_folder = CUB_DIR
    images_folder_holds = TABLES + ("images/",)

    def cub_dir(self, data_dir):
        return os.path.join(data_dir, CUB_DIR)

    def tables(self, data_dir):
        """(images.txt, bounding_boxes.txt) of the CUB folder."""
        return tuple(os.path.join(self.cub_dir(data_dir), name) for name in TABLES)

    def images_dir(self, data_dir):
        return os.path.join(self.cub_dir(data_dir), "images")

    def image_path(self, data_dir, name):
        return os.path.join(self.images_dir(data_dir), name + ".jpg")

    def boxes(self, data_dir):
        return load_bounding_boxes(self.cub_dir(data_dir))

    def text_dir(self, data_dir):
        return os.path.join(data_dir, TEXT_DIR)

    def attribute_files(self, data_dir):
        """(attributes.txt, image_attribute_labels.txt): the attribute names ('1 has_primary_color::red') and every
        image's labels ('<image id> <attribute id> <present> ...'), as CUB's archive has them; the synthetic birds
        write them, their attribute metric reads them, training never does."""
        return (
            os.path.join(data_dir, ATTRIBUTE_NAMES_FILE),
            os.path.join(self.cub_dir(data_dir), "attributes", "image_attribute_labels.txt"),
        )

    def caption_path(self, data_dir, name, class_id=None):
        return os.path.join(self.text_dir(data_dir), name.strip() + ".txt")

    def data_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the data with `python data.py download --data-dir {d}` (or `python data.py prepare "
            f"--cub-archive CUB_200_2011.tgz --embeddings-archive birds.zip --data-dir {d}` from local files, "
            f"or `python data.py synthetic --out {d}` for the synthetic birds)"
        )

    def captions_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the captions with `python data.py prepare --captions-archive birds.zip --data-dir {d}` (AttnGAN's "
            f"birds.zip, https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}, or Reed's CUB archive with text_c10/), "
            f"or `python data.py synthetic --out {d}` for the synthetic birds"
        )


DATASET = Birds()


def _read_table(path, n_values, data_dir=None):
    """One of CUB's whitespace tables, 'id v1 v2 ...' per line, read with pandas as the chapter does
    -> {id: [v1, ...]} (strings)."""
    import pandas as pd

    require_file(path, data_dir)
    fix = "download or prepare the data again"
    try:
        # Every field a string as written ('nan' stays 'nan'): a missing field is then the only empty one.
        table = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            names=range(n_values + 1),
            dtype=str,
            index_col=False,
            keep_default_na=False,
            na_values=[],
        )
    except pd.errors.ParserError as err:  # a line with too many fields
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: {first} (expected {n_values + 1} fields); {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} is not a readable table ({type(err).__name__}); {fix}") from None
    short = table[(table == "").any(axis=1)]
    if len(short):
        line = " ".join(v for v in short.iloc[0] if v)
        raise UserError(f"{path}: the line '{line[:60]}' has fewer than {n_values + 1} fields; {fix}")
    return dict(zip(table[0], table.iloc[:, 1:].values.tolist()))


def load_bounding_boxes(dataset_dir):
    """{'class/name' (no .jpg): [x, y, w, h] floats} for every image of CUB_200_2011 (images.txt + bounding_boxes.txt)."""
    data_dir = os.path.dirname(os.path.normpath(dataset_dir))
    names = _read_table(os.path.join(dataset_dir, "images.txt"), 1, data_dir)
    boxes_path = os.path.join(dataset_dir, "bounding_boxes.txt")
    boxes = _read_table(boxes_path, 4, data_dir)
    result = {}
    for image_id, (name,) in names.items():
        box = boxes.get(image_id)
        if box is None:
            continue  # an image without a box: load_dataset reports it when the image is used
        try:
            values = [float(v) for v in box]
        except ValueError:
            raise UserError(
                f"{boxes_path}: the box of image {image_id} is not numeric ({' '.join(box)}); "
                f"download or prepare the data again"
            ) from None
        if not (all(math.isfinite(v) for v in values) and values[2] > 0 and values[3] > 0):
            raise UserError(
                f"{boxes_path}: the box of image {image_id} ({' '.join(box)}) is not a finite box of positive width "
                f"and height; download or prepare the data again"
            )
        result[os.path.splitext(name)[0]] = values
    return result
