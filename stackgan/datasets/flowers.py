"""Oxford-102 flowers, the paper's second dataset: where StackGAN's flowers data keeps its images and captions. It
has no boxes: the whole image is resized (StackGAN's misc/preprocess_flowers.py), where birds take the box crop.

    data/flowers/train/, test/                        StackGAN's split files (class-disjoint: 82 and 20 classes)
    data/flowers/jpg/image_XXXXX.jpg                  the images of 102flowers.tgz
    data/flowers/text_c10/class_XXXXX/image_XXXXX.txt ten captions per image (Reed's cvpr2016_flowers)

filenames.pickle names an image by its key in the jpg folder ('jpg/image_06734'; a bare 'image_06734' is read the
same way).
"""

import os

from stackgan.datasets import Dataset

IMAGES_DIR = "jpg"
TEXT_DIR = "text_c10"


class Flowers(Dataset):
    name = "flowers"
    title = "Oxford-102 flowers"
    thing = "flower"
    example_captions = (
        "this flower has large pink petals with a yellow center",
        "a flower with white petals and a bright yellow stamen",
        "the petals of this flower are deep purple with dark veins",
    )

    def image_path(self, data_dir, name):
        key = name.strip()
        folder = data_dir if os.path.dirname(key) else os.path.join(data_dir, IMAGES_DIR)
        return os.path.join(folder, key + ".jpg")

    def text_dir(self, data_dir):
        return os.path.join(data_dir, TEXT_DIR)

    def caption_path(self, data_dir, name, class_id):
        image = os.path.basename(name.strip())
        return os.path.join(self.text_dir(data_dir), f"class_{int(class_id):05d}", image + ".txt")

    def layout_files(self, data_dir):
        return [os.path.join(data_dir, IMAGES_DIR) + os.sep]

    def looks_like(self, data_dir):
        return os.path.isdir(os.path.join(data_dir, IMAGES_DIR)) or os.path.isdir(self.text_dir(data_dir))

    def data_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the flowers with `python data.py download --dataset flowers --data-dir {d}` (or `python data.py "
            f"prepare --dataset flowers ...` from local archives; `python data.py check --data-dir {d}` says what "
            f"is missing)"
        )

    def captions_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the captions (Reed's cvpr2016_flowers.tar.gz, text_c10/) with `python data.py download --dataset "
            f"flowers --data-dir {d}` or `python data.py prepare --dataset flowers --captions-archive "
            f"cvpr2016_flowers.tar.gz --data-dir {d}`"
        )


DATASET = Flowers()
