"""Dataset names, split names and the published class lists of the supported datasets."""
from __future__ import annotations

from robustnas.errors import RobustnasError

SPLITS: tuple[str, ...] = ("train", "test")

CIFAR10 = "cifar10"
CIFAR100 = "cifar100"
SVHN = "svhn"
TINY_IMAGENET = "tiny-imagenet-200"
IMAGENET16_120 = "imagenet16-120"
IMAGENET16_PREFIX = "imagenet16-"

# Label order of the official CIFAR-10 python batches (batches.meta 'label_names').
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Fine label order of the official CIFAR-100 python files (meta 'fine_label_names').
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
# SVHN digits; the .mat files store digit 0 as label 10 (we map it back to 0).
SVHN_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

_ALIASES = {
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
    "svhn": SVHN,
    "tinyimagenet": TINY_IMAGENET,
    "tinyimagenet200": TINY_IMAGENET,
}


def canonical_dataset(name: str) -> str:
    """Map user spellings ('CIFAR-10', 'ImageNet16-120', 'tiny_imagenet') to one canonical name.

    Unknown names are kept (lower-cased) so that a user's own ImageFolder dataset can be named.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("imagenet16"):
        return IMAGENET16_PREFIX + str(imagenet16_num_classes(key.removeprefix("imagenet16") or "120"))
    return name.strip().lower()


def imagenet16_num_classes(text: str) -> int:
    """The class count N of 'ImageNet16-N' (the N smallest labels kept, as in NB201's loader)."""
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise RobustnasError(f"ImageNet16 subset must be 'imagenet16-N' with N in 1..1000, got N={text!r}")
    return int(text)


def known_classes(dataset: str) -> tuple[str, ...] | None:
    """Published class names of a dataset, or None where the source must supply them."""
    return {CIFAR10: CIFAR10_CLASSES, CIFAR100: CIFAR100_CLASSES, SVHN: SVHN_CLASSES}.get(dataset)


def class_count(dataset: str) -> int | None:
    """Number of classes of a known dataset (ImageNet16-N: N), or None for a user's own dataset."""
    subset = dataset.removeprefix(IMAGENET16_PREFIX)
    if dataset.startswith(IMAGENET16_PREFIX) and subset.isdigit():
        return int(subset)
    if dataset == TINY_IMAGENET:
        return 200
    known = known_classes(dataset)
    return len(known) if known else None


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise RobustnasError(
            f"split must be one of {', '.join(SPLITS)}, got {split!r} "
            "(Tiny-ImageNet 'val' and ImageNet16 'val_data' are read as 'test')"
        )
    return split
