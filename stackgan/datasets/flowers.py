"""Oxford-102 flowers, the paper's second dataset: where StackGAN's flowers data keeps its images and captions. It
has no boxes: the whole image is resized (StackGAN's misc/preprocess_flowers.py), where birds take the box crop.

    data/flowers/train/, test/                        StackGAN's split files (class-disjoint: 82 and 20 classes)
    data/flowers/jpg/image_XXXXX.jpg                  the images of 102flowers.tgz
    data/flowers/text_c10/class_XXXXX/image_XXXXX.txt ten captions per image (Reed's cvpr2016_flowers)

filenames.pickle names an image by its key in the jpg folder ('jpg/image_06734'; a bare 'image_06734' is read the
same way).
"""

import os

from stackgan.datasets import Archive, Dataset

IMAGES_DIR = "jpg"
TEXT_DIR = "text_c10"
IMAGES_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz"
IMAGES_MD5 = "52808999861908f626f3c1f4e79d11fa"  # as torchvision's Flowers102 checks it
EMBEDDINGS_DRIVE_ID = "0B3y_msrWZaXLaUc0UXpmcnhaVmM"  # StackGAN's flowers archive (its README's link)
CAPTIONS_DRIVE_ID = "0B0ywwgffWnLLcms2WWJQRFNSWXM"  # Reed's cvpr2016_flowers.tar.gz (text_c10/)
ARCHIVES = (
    Archive(
        "images",
        "--images-archive",
        "102flowers.tgz",
        "Oxford-102's 102flowers.tgz",
        url=IMAGES_URL,
        md5=IMAGES_MD5,
        size="about 330 MB",
    ),
    Archive(
        "embeddings", "--embeddings-archive", "flowers.zip", "StackGAN's flowers archive", drive_id=EMBEDDINGS_DRIVE_ID
    ),
    Archive(
        "captions",
        "--captions-archive",
        "cvpr2016_flowers.tar.gz",
        "Reed's cvpr2016_flowers.tar.gz",
        drive_id=CAPTIONS_DRIVE_ID,
        optional=True,
    ),
)


class Flowers(Dataset):
    name = "flowers"
    title = "Oxford-102 flowers"
    thing = "flower"
    markers = (IMAGES_DIR, TEXT_DIR)
    layout_names = (f"{IMAGES_DIR}/",)
    example_captions = (
        "this flower has rounded pink petals and a dark center",
        "a flower with long and narrow purple petals",
        "the petals of this flower are yellow and pointed",
    )
    synthetic_module = "stackgan.datasets.synthetic_flowers"
    attributes_module = "stackgan.metrics.petals"
    archives = ARCHIVES
    images_folder = IMAGES_DIR

    def image_path(self, data_dir, name):
        key = name.strip()
        folder = data_dir if os.path.dirname(key) else os.path.join(data_dir, IMAGES_DIR)
        return os.path.join(folder, key + ".jpg")

    def text_dir(self, data_dir):
        return os.path.join(data_dir, TEXT_DIR)

    def caption_path(self, data_dir, name, class_id):
        image = os.path.basename(name.strip())
        return os.path.join(self.text_dir(data_dir), f"class_{int(class_id):05d}", image + ".txt")

    def data_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the flowers with `python data.py download --dataset flowers --data-dir {d}` (or `python data.py "
            f"prepare --dataset flowers --images-archive 102flowers.tgz --embeddings-archive flowers.zip --data-dir "
            f"{d}` from local files, or `python data.py synthetic --dataset flowers --out {d}` for the synthetic "
            f"flowers)"
        )

    def captions_hint(self, data_dir=None):
        d = data_dir or self.default_dir
        return (
            f"get the captions with `python data.py prepare --dataset flowers --captions-archive "
            f"cvpr2016_flowers.tar.gz --data-dir {d}` (Reed's text_c10/, "
            f"https://drive.google.com/uc?id={CAPTIONS_DRIVE_ID}), or `python data.py synthetic --dataset flowers "
            f"--out {d}` for the synthetic flowers"
        )


DATASET = Flowers()
