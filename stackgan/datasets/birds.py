"""CUB-200-2011 birds: where StackGAN's birds data keeps its images and boxes, and the chapter's crop (1.5x the
box's longer side around its centre).

    data/birds/CUB_200_2011/images.txt, bounding_boxes.txt, images/<class>/<image>.jpg
"""

import math
import os

from stackgan.cli import UserError
from stackgan.datasets.loaders import require_file


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
