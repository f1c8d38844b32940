"""robustnas.data: readers for every format, embedded sample, batches, normalisation, errors.

Values asserted against the real files in ../shared/data (see its README) or exact round trips
through the official on-disk formats, which the tests write themselves where no copy exists.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from robustnas.data import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    NORMALIZATION,
    ImageSet,
    NormalizedModel,
    crop_padding,
    describe,
    iterate_batches,
    load_dataset,
    normalization,
    sample_batch,
)
from robustnas.data._folders import ZipContainer
from robustnas.data._loader import EMBEDDED_SAMPLE
from robustnas.data._safe_npz import read_npz
from robustnas.errors import RobustnasError

RAW_CIFAR10 = "cifar10/cifar10-raw-subset.npz"
RAW_CIFAR100 = "cifar100/cifar100-raw-subset.npz"
JPEG_CIFAR10 = "cifar10/cifar10-jpeg.zip"
TINY = "tiny-imagenet-200/tiny-imagenet-200-subset.zip"
_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's multiarray._reconstruct, whatever its module


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test decodes into its own cache, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ROBUSTNAS_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def raw10(shared_data: Path) -> dict[str, np.ndarray]:
    with np.load(shared_data / RAW_CIFAR10) as raw:
        return {key: raw[key] for key in raw.files}


@pytest.fixture(scope="module")
def sample() -> tuple[ImageSet, ImageSet]:
    return load_dataset(), load_dataset(split="test")


# ---- helpers writing the official formats -------------------------------------------------------
def planar_rows(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] -> [N, 3*H*W] rows: all red, then green, then blue (CIFAR / ImageNet16 layout)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


class Python2StylePickler(pickle.Pickler):
    """Writes arrays as Python 2 numpy did (the official CIFAR files): the buffer as a latin-1 str."""

    def reducer_override(self, obj: object) -> object:
        if type(obj) is np.ndarray:
            state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
            return _RECONSTRUCT, (np.ndarray, (0,), "b"), state
        return NotImplemented


def write_python2_pickle(path: Path, content: dict) -> None:
    with open(path, "wb") as file:
        Python2StylePickler(file, protocol=2).dump(content)
    legacy = path.read_bytes().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.write_bytes(legacy)


def write_cifar10_batches(root: Path, train: ImageSet, test: ImageSet) -> None:
    root.mkdir(parents=True)
    for number, part in enumerate(np.array_split(np.arange(len(train)), 5), start=1):
        write_python2_pickle(
            root / f"data_batch_{number}",
            {
                "batch_label": f"training batch {number} of 5",
                "data": planar_rows(train.images[part]),
                "labels": train.labels[part].tolist(),
                "filenames": [f"{i}.png" for i in part],
            },
        )
    write_python2_pickle(
        root / "test_batch", {"data": planar_rows(test.images), "labels": test.labels.tolist()}
    )


def write_png_folder(root: Path, images: ImageSet, split_folder: str) -> None:
    for position, (pixels, label) in enumerate(zip(images.images, images.labels)):
        folder = root / split_folder / images.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{position}.png")


def one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


# ---- embedded sample and the raw subsets --------------------------------------------------------
def test_embedded_sample_is_exact_raw_cifar10(sample: tuple[ImageSet, ImageSet], raw10: dict) -> None:
    train, test = sample
    assert (len(train), len(test)) == (2000, 1017)
    assert train.class_counts() == [200] * 10
    assert test.class_counts() == [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]
    assert train.classes == CIFAR10_CLASSES and train.dataset == "cifar10"
    positions = np.searchsorted(raw10["train_index"], train.index)
    assert np.array_equal(raw10["train_index"][positions], train.index)
    assert np.array_equal(raw10["x_train"][positions], train.images)
    assert np.array_equal(raw10["y_train"][positions], train.labels)
    assert np.array_equal(raw10["x_test"], test.images) and np.array_equal(raw10["y_test"], test.labels)
    assert np.array_equal(test.index, np.arange(1017))
    # The first original training image (a frog) starts with pixel (59, 62, 63).
    assert train.index[0] == 0 and train.labels[0] == 6 and train.images[0, 0, 0].tolist() == [59, 62, 63]
    assert test.labels[:5].tolist() == [3, 8, 8, 0, 6]
    assert train.index.max() == 20075 and int(train.images.astype(np.int64).sum()) == 745370500


def test_embedded_file_size_and_read_only(sample: tuple[ImageSet, ImageSet]) -> None:
    path = Path(__file__).resolve().parents[1] / "src" / "robustnas" / "_embedded" / EMBEDDED_SAMPLE
    assert path.stat().st_size <= 10_000_000
    with pytest.raises(ValueError):
        sample[0].images[0, 0, 0, 0] = 0
    assert load_dataset(dataset="CIFAR-10", limit_per_class=3).class_counts() == [3] * 10
    with pytest.raises(RobustnasError, match="cifar10"):
        load_dataset(dataset="cifar100")


def test_raw_cifar10_npz(shared_data: Path, raw10: dict) -> None:
    train = load_dataset(shared_data / RAW_CIFAR10)
    assert train.dataset == "cifar10" and train.classes == CIFAR10_CLASSES
    assert train.class_counts() == [521, 534, 497, 505, 540, 484, 515, 524, 537, 513]
    assert np.array_equal(train.index, raw10["train_index"]) and train.index[-1] == 41016
    assert int(train.images.astype(np.int64).sum()) == 1926509726
    info = describe(shared_data / RAW_CIFAR10)
    assert json.loads(json.dumps(info)) == info
    assert info["format"] == "npz" and info["splits"]["test"]["images"] == 1017


def test_raw_cifar100_labels_follow_the_fine_label_list(shared_data: Path) -> None:
    with np.load(shared_data / RAW_CIFAR100) as raw:
        fine = raw["y_train_fine_all"]
        first_test = raw["x_test"][0]
    train = load_dataset(shared_data / RAW_CIFAR100)
    test = load_dataset(shared_data / RAW_CIFAR100, split="test")
    assert train.dataset == "cifar100" and train.classes == CIFAR100_CLASSES
    assert (len(train), len(test)) == (486, 916)
    assert np.array_equal(train.labels, fine[:486]) and train.labels[:5].tolist() == [19, 29, 0, 11, 1]
    assert test.labels[:5].tolist() == [49, 33, 72, 51, 71] and np.array_equal(test.images[0], first_test)
    with pytest.raises(RobustnasError, match="holds cifar100, not cifar10"):
        load_dataset(shared_data / RAW_CIFAR100, "cifar10")


@pytest.mark.parametrize(
    "dataset, raw_file, tolerance", [("cifar10", RAW_CIFAR10, 0.005), ("cifar100", RAW_CIFAR100, 0.015)]
)
def test_normalisation_constants_match_real_pixels(
    shared_data: Path, dataset: str, raw_file: str, tolerance: float
) -> None:
    pixels = load_dataset(shared_data / raw_file).images.reshape(-1, 3) / 255.0
    mean, std = normalization(dataset)
    assert np.allclose(pixels.mean(0), mean, atol=tolerance)
    assert np.allclose(pixels.std(0), std, atol=tolerance)  # global std, not the 0.20 per-image variant


# ---- image archives ------------------------------------------------------------------------------
def test_jpeg_zip_listing_counts(shared_data: Path) -> None:
    info = describe(shared_data / JPEG_CIFAR10)
    assert info["format"] == "imagefolder-zip" and info["dataset"] == "cifar10"
    assert info["classes"] == list(CIFAR10_CLASSES)
    assert info["splits"]["train"] == {"images": 50000, "per_class": [5000] * 10, "image_shape": [32, 32, 3]}
    assert info["splits"]["test"] == {"images": 10000, "per_class": [1000] * 10, "image_shape": [32, 32, 3]}


@pytest.mark.parametrize("split", ["train", "test"])
def test_jpeg_zip_matches_raw_pixels_in_original_order(
    shared_data: Path, split: str, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File NNNN of class c is the NNNN-th image of class c in original order (checked on the raw
    prefix, which starts at original index 0); JPEG error is about 6/255 per pixel."""
    jpeg = load_dataset(shared_data / JPEG_CIFAR10, split=split, limit_per_class=20)
    raw = load_dataset(shared_data / RAW_CIFAR10, split=split, limit_per_class=20)
    assert len(jpeg) == 200 and jpeg.class_counts() == [20] * 10
    assert np.array_equal(jpeg.labels, np.sort(raw.labels))
    assert jpeg.index[20] == {"train": 5000, "test": 1000}[split]  # class 1 starts after 5000 / 1000 files
    matched_errors = []
    for cls in range(10):
        jpegs = jpeg.images[jpeg.labels == cls].astype(np.float64)
        raws = raw.images[raw.labels == cls].astype(np.float64)
        errors = np.abs(jpegs[:, None] - raws[None]).mean(axis=(2, 3, 4))  # [jpeg k, raw j]
        assert np.array_equal(errors.argmin(axis=1), np.arange(20))  # file k is nearest to the k-th raw image
        matched_errors.append(np.diag(errors))
    assert 4.5 < np.mean(matched_errors) < 7.5 and np.max(matched_errors) < 12
    monkeypatch.setattr(
        ZipContainer, "_list", lambda self: pytest.fail("a cached load must not list the zip")
    )
    again = load_dataset(shared_data / JPEG_CIFAR10, split=split, limit_per_class=20)
    assert np.array_equal(again.images, jpeg.images)
    assert len(list((private_cache / "decoded").glob("*.npy"))) == 1


def test_tiny_imagenet_zip(shared_data: Path) -> None:
    info = describe(shared_data / TINY)
    assert info["format"] == "tiny-imagenet-zip" and info["dataset"] == "tiny-imagenet-200"
    assert len(info["classes"]) == 200 and info["classes"] == sorted(info["classes"])
    assert info["splits"]["train"] == {"images": 20000, "per_class": [100] * 200, "image_shape": [64, 64, 3]}
    assert info["splits"]["test"]["images"] == 10000 and info["splits"]["test"]["per_class"] == [50] * 200
    val = load_dataset(shared_data / TINY, split="test", limit_per_class=1)
    assert val.images.shape == (200, 64, 64, 3) and val.class_counts() == [1] * 200
    # val_annotations.txt: val_0.JPEG is n03444034, val_1.JPEG is n04067472.
    first_two = {int(i): val.classes[label] for i, label in zip(val.index, val.labels) if i < 2}
    assert first_two == {0: "n03444034", 1: "n04067472"}


def test_tiny_imagenet_constants_near_subset_statistics(shared_data: Path) -> None:
    pixels = load_dataset(shared_data / TINY, limit_per_class=10).images.reshape(-1, 3) / 255.0
    mean, std = normalization("Tiny-ImageNet")
    assert np.allclose(pixels.mean(0), mean, atol=0.02) and np.allclose(pixels.std(0), std, atol=0.02)


def test_png_image_folder_exact_with_cache(
    tmp_path: Path, sample: tuple[ImageSet, ImageSet], private_cache: Path
) -> None:
    train, test = (part.subset(np.flatnonzero(part.index % 50 == 0)) for part in sample)
    root = tmp_path / "folder"
    write_png_folder(root, train, "train")
    write_png_folder(root, test, "val")  # 'val' stands in for a missing 'test'
    loaded = load_dataset(root, split="train")
    order = np.lexsort((np.arange(len(train)), train.labels))  # class, then file number
    assert loaded.classes == CIFAR10_CLASSES and loaded.dataset == "cifar10"
    assert np.array_equal(loaded.images, train.images[order])
    assert np.array_equal(loaded.labels, train.labels[order])
    test_order = np.lexsort((np.arange(len(test)), test.labels))
    assert np.array_equal(load_dataset(root, split="test").images, test.images[test_order])
    assert describe(root)["format"] == "imagefolder-dir"
    # A cached second load; a changed file changes the key and is decoded afresh.
    assert np.array_equal(load_dataset(root, split="train").images, loaded.images)
    changed = root / "train" / CIFAR10_CLASSES[train.labels[order[0]]] / f"{order[0]}.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(changed)
    os.utime(changed, ns=(10**18, 10**18))
    assert load_dataset(root, split="train").images[0].max() == 0
    assert len(list((private_cache / "decoded").glob("*-train-*.npy"))) == 2


# ---- pickled batches ----------------------------------------------------------------------------
def test_cifar10_python2_pickles_round_trip(tmp_path: Path, sample: tuple[ImageSet, ImageSet]) -> None:
    train, test = sample
    write_cifar10_batches(tmp_path / "cifar-10-batches-py", train, test)
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        loaded = load_dataset(path, split="train")
        assert loaded.dataset == "cifar10" and np.array_equal(loaded.images, train.images)
        assert np.array_equal(loaded.labels, train.labels)
    assert np.array_equal(load_dataset(tmp_path, "cifar10", "test").images, test.images)
    assert describe(tmp_path)["splits"]["train"]["per_class"] == [200] * 10


def test_cifar100_modern_pickles_round_trip(tmp_path: Path, shared_data: Path) -> None:
    train = load_dataset(shared_data / RAW_CIFAR100)
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    for name in ("train", "test"):
        with open(root / name, "wb") as file:
            pickle.dump(
                {
                    b"data": planar_rows(train.images),
                    b"fine_labels": train.labels.tolist(),
                    b"coarse_labels": [0] * len(train),
                },
                file,
                protocol=5,
            )
    loaded = load_dataset(tmp_path, "cifar100", "test")
    assert np.array_equal(loaded.images, train.images) and np.array_equal(loaded.labels, train.labels)


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class RunsShell:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {marker}",)

    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    with open(root / "data_batch_1", "wb") as file:
        pickle.dump({"data": RunsShell(), "labels": []}, file, protocol=2)
    with pytest.raises(RobustnasError) as excinfo:
        load_dataset(root)
    one_line_error(excinfo, "data_batch_1", "refusing to unpickle", "system")
    assert not marker.exists()


def test_imagenet16_batches_keep_the_first_120_classes(tmp_path: Path) -> None:
    """NB201's ImageNet16 files: rows CHW-planar 16x16, labels 1..1000; ImageNet16-120 keeps 1..120 -> 0..119."""
    rng = np.random.default_rng(0)
    batches = []
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        images = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
        labels = [1, 120, 121, 1000, int(rng.integers(1, 121)), int(rng.integers(121, 1001))]
        with open(tmp_path / name, "wb") as file:
            pickle.dump({"data": planar_rows(images), "labels": labels, "mean": images.mean(0)}, file)
        batches.append((images, np.array(labels)))
    train = load_dataset(tmp_path, "ImageNet16-120")
    images = np.concatenate([b[0] for b in batches[:10]])
    labels = np.concatenate([b[1] for b in batches[:10]])
    keep = labels <= 120
    assert train.dataset == "imagenet16-120" and train.num_classes == 120
    assert np.array_equal(train.images, images[keep]) and np.array_equal(train.labels, labels[keep] - 1)
    assert np.array_equal(train.index, np.flatnonzero(keep)) and train.labels[:2].tolist() == [0, 119]
    test = load_dataset(tmp_path, split="test")
    assert np.array_equal(test.images, batches[10][0][batches[10][1] <= 120])
    assert len(load_dataset(tmp_path, "imagenet16-1000")) == 60


# ---- SVHN -----------------------------------------------------------------------------------------
def test_svhn_mat_maps_label_10_to_digit_0(tmp_path: Path, sample: tuple[ImageSet, ImageSet]) -> None:
    images = sample[1].images[:30]
    digits = np.arange(30) % 10
    stored = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": stored})
    for path in (tmp_path, tmp_path / "test_32x32.mat"):
        loaded = load_dataset(path, split="test")
        assert loaded.dataset == "svhn" and loaded.classes == tuple("0123456789")
        assert np.array_equal(loaded.images, images) and np.array_equal(loaded.labels, digits)
    with pytest.raises(RobustnasError, match="no 'train' split"):
        load_dataset(tmp_path / "test_32x32.mat")


# ---- batches ----------------------------------------------------------------------------------------
def test_sample_batch_is_deterministic_and_exact(sample: tuple[ImageSet, ImageSet]) -> None:
    train = sample[0]
    x, y = sample_batch(train, 16, seed=7)
    x2, y2 = sample_batch(load_dataset(), 16, seed=7)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (16, 3, 32, 32)
    assert not torch.equal(sample_batch(train, 16, seed=8)[0], x)
    pixels = (x.permute(0, 2, 3, 1) * 255).round().byte().numpy()
    positions = [int(np.flatnonzero((train.images == image).all(axis=(1, 2, 3)))[0]) for image in pixels]
    assert len(set(positions)) == 16 and np.array_equal(train.labels[positions], y.numpy())
    assert torch.equal(x, torch.from_numpy(train.images[positions].transpose(0, 3, 1, 2) / np.float32(255)))


def test_augmentation_is_a_padded_crop_with_optional_flip(sample: tuple[ImageSet, ImageSet]) -> None:
    assert (crop_padding(16), crop_padding(32), crop_padding(64)) == (2, 4, 4)
    plain, labels = sample_batch(sample[0], 8, seed=3)
    augmented, same_labels = sample_batch(sample[0], 8, seed=3, augment=True)
    assert torch.equal(labels, same_labels)
    assert torch.equal(augmented, sample_batch(sample[0], 8, 3, augment=True)[0])
    padded = torch.nn.functional.pad(plain, (4, 4, 4, 4))
    transforms = []
    for image, original in zip(augmented, padded):
        matches = []
        for dy in range(9):
            for dx in range(9):
                crop = original[:, dy : dy + 32, dx : dx + 32]
                matches += [
                    (dy, dx, flip)
                    for flip in (False, True)
                    if torch.equal(image, crop.flip(-1) if flip else crop)
                ]
        assert len(matches) == 1  # exactly one offset and flip explains each output
        transforms.append(matches[0])
    assert {flip for _, _, flip in transforms} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in transforms}) > 4


def test_iterate_batches_covers_each_image_once(sample: tuple[ImageSet, ImageSet]) -> None:
    test = sample[1]
    batches = list(iterate_batches(test, 100, seed=1))
    assert [len(y) for _, y in batches] == [100] * 10 + [17]
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == sorted(test.labels.tolist())
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, iterate_batches(test, 100, seed=1)))
    assert [len(y) for _, y in iterate_batches(test, 100, seed=1, drop_last=True)] == [100] * 10


# ---- normalisation --------------------------------------------------------------------------------
def test_normalized_model_normalises_inside() -> None:
    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    mean, std = normalization("ImageNet16-120")
    assert mean == pytest.approx((122.68 / 255, 116.66 / 255, 104.01 / 255))
    assert std == pytest.approx((63.22 / 255, 61.26 / 255, 65.09 / 255))
    model = NormalizedModel.for_dataset(inner, "ImageNet16-120")
    expected = inner((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert torch.allclose(model(x), expected, atol=1e-6)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert set(model.state_dict()) == {f"model.{k}" for k in inner.state_dict()}
    assert NORMALIZATION["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    with pytest.raises(RobustnasError, match="no normalisation constants"):
        normalization("mnist")


# ---- errors ----------------------------------------------------------------------------------------
def test_unusable_inputs_raise_one_clear_error(tmp_path: Path, sample: tuple[ImageSet, ImageSet]) -> None:
    images = sample[1].images[:4]
    labels = sample[1].labels[:4]

    good_npz = tmp_path / "good.npz"
    np.savez(good_npz, x_train=images, y_train=labels)
    truncated_npz = tmp_path / "truncated.npz"
    truncated_npz.write_bytes(good_npz.read_bytes()[: good_npz.stat().st_size // 2])
    channels_first = tmp_path / "chw.npz"
    np.savez(channels_first, x_train=images.transpose(0, 3, 1, 2), y_train=labels)

    archive = tmp_path / "folder.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for i, pixels in enumerate(images):
            buffer = tmp_path / f"{i}.png"
            Image.fromarray(pixels).save(buffer)
            zipped.write(buffer, f"train/c{i % 2}/{i}.png")
    truncated_zip = tmp_path / "truncated.zip"
    truncated_zip.write_bytes(archive.read_bytes()[:-40])

    no_data = tmp_path / "cifar-10-batches-py"
    no_data.mkdir()
    with open(no_data / "data_batch_1", "wb") as file:
        pickle.dump({"labels": [1, 2]}, file)

    bad_mat = tmp_path / "train_32x32.mat"
    scipy.io.savemat(bad_mat, {"X": images[..., 0].transpose(1, 2, 0), "y": np.ones((4, 1), np.uint8)})

    no_classes = tmp_path / "empty-folder"
    no_classes.mkdir()
    (no_classes / "readme.txt").write_text("no images")

    cases = [
        (truncated_npz, "not a readable .npz"),
        (channels_first, "channels last"),
        (truncated_zip, "not a readable zip"),
        (no_data, "no 'data' entry"),
        (bad_mat, "'X' must be uint8 [32,32,3,N]"),
        (no_classes, "no class folders"),
        (tmp_path / "missing.npz", "no such file"),
        (tmp_path / "batches.tar.gz", "no such file"),
    ]
    for path, problem in cases:
        with pytest.raises(RobustnasError) as excinfo:
            load_dataset(path)
        one_line_error(excinfo, str(path.name), problem)
    (tmp_path / "batches.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(RobustnasError, match="extract .tar.gz"):
        load_dataset(tmp_path / "batches.tar.gz")
    assert len(load_dataset(archive)) == 4 and load_dataset(archive).classes == ("c0", "c1")
    with pytest.raises(RobustnasError, match="split must be one of train, test"):
        load_dataset(good_npz, split="validation")
    with pytest.raises(RobustnasError, match="limit_per_class"):
        load_dataset(archive, limit_per_class=0)
    with pytest.raises(RobustnasError, match="batch_size"):
        sample_batch(load_dataset(good_npz), 5, seed=0)


# ---- hostile or inconsistent files: one RobustnasError each, never a traceback or a hang -----------
IMAGES = np.zeros((4, 8, 8, 3), np.uint8)


def raises_one_line(call, *fragments: str) -> str:
    with pytest.raises(RobustnasError) as excinfo:
        call()
    one_line_error(excinfo, *fragments)
    return str(excinfo.value)


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **{"x_train": IMAGES, **arrays})
    return path


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ([0, 0, 0, 10**9], "label 1000000000 in the 'train' labels would mean 1,000,000,001 classes for 4"),
        ([0, 0, 0, 40], "label 40 in the 'train' labels would mean 41 classes for 4 images"),
        ([0, -1, 0, 0], "label -1 in 'y_train' is not a class index"),
    ],
)
def test_implausible_labels_are_refused_before_naming_classes(
    tmp_path: Path, labels: list, fragment: str
) -> None:
    path = write_npz(tmp_path / "labels.npz", y_train=np.array(labels))
    raises_one_line(lambda: describe(path), "labels.npz", fragment)
    raises_one_line(lambda: load_dataset(path), "labels.npz", fragment)


def test_labels_up_to_ten_per_image_are_numbered(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "labels.npz", y_train=np.array([0, 0, 0, 39]))
    assert load_dataset(path).classes == tuple(str(k) for k in range(40))


def test_non_npz_file_never_suggests_unsafe_loading(tmp_path: Path) -> None:
    text = tmp_path / "x.npz"
    text.write_text("not an archive\n")
    message = raises_one_line(lambda: describe(text), "x.npz: not a readable .npz file (not a zip archive")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x_train=np.array([{"a": 1}], dtype=object))
    message += raises_one_line(
        lambda: load_dataset(objects), "array 'x_train' holds Python objects", "will not unpickle"
    )
    assert "allow_pickle" not in message and "unsafe" not in message


def encrypted_copy(source: Path, target: Path) -> Path:
    """``source`` with every member flagged as encrypted (general purpose bit 0), as zip -e sets it."""
    data = bytearray(source.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            data[start + flag_offset] |= 1
            start = data.find(signature, start + 4)
    target.write_bytes(bytes(data))
    return target


def test_encrypted_archives_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "plain.zip"
    with zipfile.ZipFile(folder, "w") as zipped:
        for i in range(2):
            buffer = io.BytesIO()
            Image.fromarray(IMAGES[i]).save(buffer, format="PNG")
            zipped.writestr(f"train/c{i}/{i}.png", buffer.getvalue())
    locked = encrypted_copy(folder, tmp_path / "locked.zip")
    raises_one_line(lambda: load_dataset(locked), "locked.zip: member 'train/c0/0.png' is encrypted")
    raises_one_line(lambda: describe(locked), "password-protected")
    plain_npz = write_npz(tmp_path / "plain.npz", y_train=np.zeros(4, np.int64))
    npz = encrypted_copy(plain_npz, tmp_path / "locked.npz")
    raises_one_line(lambda: describe(npz), "locked.npz: member 'x_train.npy' is encrypted")


def npz_with_header(path: Path, name: str, header: dict, payload: bytes) -> Path:
    """An .npz whose member ``name``.npy has the given header (shape, descr) over ``payload``."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    member.write(payload)
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr(f"{name}.npy", member.getvalue())
    return path


def test_npz_header_shapes_are_checked_before_allocating(tmp_path: Path) -> None:
    huge = {"descr": "|u1", "fortran_order": False, "shape": (10**13, 8, 8, 3)}
    path = npz_with_header(tmp_path / "huge.npz", "x_train", huge, IMAGES.tobytes())
    raises_one_line(
        lambda: describe(path),
        "huge.npz: array 'x_train': its header claims shape [10000000000000, 8, 8, 3] of uint8 "
        "(1,920,000,000,000,000 bytes) but the file holds 768 bytes",
    )
    negative = {"descr": "|u1", "fortran_order": False, "shape": (-4, -8, 8, 3)}
    path = npz_with_header(tmp_path / "negative.npz", "x_train", negative, IMAGES.tobytes())
    raises_one_line(lambda: load_dataset(path), "array 'x_train': its header claims an impossible shape")


def test_npz_arrays_larger_than_memory_are_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    # 4 MB of zeros compress to a few kB: the zip's own sizes are consistent, only the total is too big.
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x_train=np.zeros((4, 1000, 1000), np.uint8), y_train=np.zeros(4, np.int64))
    assert path.stat().st_size < 50_000
    monkeypatch.setattr("robustnas.data._safe_npz.physical_memory", lambda: 4_000_031)
    raises_one_line(
        lambda: describe(path),
        "bomb.npz: its arrays need 4,000,032 bytes but this machine has 4,000,031 bytes of memory; split the file",
    )
    monkeypatch.setattr("robustnas.data._safe_npz.physical_memory", lambda: 4_000_032)
    assert read_npz(path)["x_train"].shape == (4, 1000, 1000)


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"class_names": np.array("cat")}, "'class_names' must be a 1-D array of class-name strings"),
        ({"class_names": np.arange(2)}, "'class_names' must be a 1-D array of class-name strings, got int64"),
        ({"train_index": np.array(list("abcd"))}, "'train_index' must hold 4 non-negative integers"),
        ({"train_index": np.array([0, 1, -2, 3])}, "'train_index' must hold 4 non-negative integers"),
        ({"train_index": np.arange(3)}, "'train_index' must hold 4 non-negative integers"),
        ({"y_train_fine_all": np.array(3)}, "'y_train_fine_all' must hold 4 integer labels"),
    ],
)
def test_npz_arrays_of_the_wrong_kind(tmp_path: Path, arrays: dict, fragment: str) -> None:
    labels = {} if "y_train_fine_all" in arrays else {"y_train": np.array([0, 1, 0, 1])}
    path = write_npz(tmp_path / "kinds.npz", **labels, **arrays)
    raises_one_line(lambda: load_dataset(path), "kinds.npz", fragment)


def test_bytes_class_names_are_decoded(tmp_path: Path) -> None:
    names = np.array([b"ant", b"bee"])
    path = write_npz(tmp_path / "named.npz", y_train=np.array([0, 1, 0, 1]), class_names=names)
    assert describe(path)["classes"] == ["ant", "bee"]


def test_ragged_cifar_labels(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    with open(root / "data_batch_1", "wb") as file:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [[1, 2], [3]]}, file)
    raises_one_line(lambda: load_dataset(root), "data_batch_1: 'labels' must be 2 integers", "ragged")


def write_image_folder(root: Path, sizes: list[int]) -> Path:
    for position, size in enumerate(sizes):
        folder = root / "train" / f"c{position % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(folder / f"{position}.png")
    return root


def test_broken_entries_in_an_image_folder_stop_the_listing(tmp_path: Path) -> None:
    looping = write_image_folder(tmp_path / "looping", [8, 8])
    os.symlink(looping / "train/c0/loop.png", looping / "train/c0/loop.png")
    raises_one_line(lambda: describe(looping), "c0/loop.png: cannot read (Too many levels of symbolic links)")
    dangling = write_image_folder(tmp_path / "dangling", [8, 8])
    os.symlink(tmp_path / "missing.png", dangling / "train/c1/9.png")
    raises_one_line(lambda: load_dataset(dangling), "c1/9.png: cannot read", "broken or looping symlink")
    fifo = write_image_folder(tmp_path / "fifo", [8, 8])
    os.mkfifo(fifo / "train/c1/9.png")
    raises_one_line(lambda: load_dataset(fifo), "c1/9.png: not a regular file")


def test_describe_reports_the_size_all_images_share(tmp_path: Path) -> None:
    same = write_image_folder(tmp_path / "same", [8, 8, 8])
    assert describe(same)["splits"]["train"]["image_shape"] == [8, 8, 3]
    mixed = write_image_folder(tmp_path / "mixed", [8, 8, 9])
    expected = f"{mixed}/train/c0/2.png: image is 9x9 but {mixed}/train/c0/0.png is 8x8"
    raises_one_line(lambda: describe(mixed), expected)
    raises_one_line(lambda: load_dataset(mixed), expected)


def test_tiny_imagenet_layout_without_images(tmp_path: Path) -> None:
    root = tmp_path / "tiny-imagenet-200"
    (root / "train" / "n01").mkdir(parents=True)
    (root / "wnids.txt").write_text("n01\nn02\n")
    (root / "train" / "n01" / "n01_boxes.txt").write_text("")
    raises_one_line(lambda: describe(root), "tiny-imagenet-200: no images found")
    raises_one_line(lambda: load_dataset(root), "no 'train' split here (found: none)")
    (root / "val").mkdir()
    (root / "val" / "val_annotations.txt").write_text("")
    raises_one_line(lambda: describe(root), "tiny-imagenet-200: no images in the 'test' split")


def test_requested_dataset_must_agree_with_the_file(tmp_path: Path) -> None:
    labels = {"y_train": np.array([0, 1, 0, 57])}
    named = write_npz(tmp_path / "cifar10-mine.npz", y_train=np.array([0, 1, 0, 9]))
    raises_one_line(lambda: load_dataset(named, dataset="cifar100"), "holds cifar10, not cifar100")
    assert load_dataset(named, dataset="CIFAR-10").classes == CIFAR10_CLASSES
    unnamed = write_npz(tmp_path / "mine.npz", **labels)
    raises_one_line(
        lambda: load_dataset(unnamed, dataset="cifar10"),
        "label 57 in the 'train' labels is not a class of cifar10 (cifar10 has 10: 0..9)",
    )
    assert load_dataset(unnamed, dataset="cifar100").classes == CIFAR100_CLASSES
    assert load_dataset(unnamed, dataset="ImageNet16-120").num_classes == 120
    assert load_dataset(unnamed, dataset="tiny-imagenet-200").num_classes == 200
    imagenet16 = write_npz(tmp_path / "imagenet16-part.npz", **labels)
    assert load_dataset(imagenet16, dataset="imagenet16-200").num_classes == 200
    raises_one_line(lambda: load_dataset(imagenet16, dataset="imagenet16-50"), "not a class of imagenet16-50")
    raises_one_line(lambda: load_dataset(imagenet16, dataset="svhn"), "holds imagenet16-120, not svhn")


def test_raw_cifar10_subset_is_not_cifar100(shared_data: Path) -> None:
    raises_one_line(
        lambda: load_dataset(shared_data / RAW_CIFAR10, dataset="cifar100"),
        "cifar10-raw-subset.npz holds cifar10, not cifar100",
    )
