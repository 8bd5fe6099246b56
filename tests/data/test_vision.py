"""Torchvision and image-folder data modules, on tiny datasets written to a temporary folder.

No test reaches the network: downloads go to ``file://`` mirrors made here, and any other URL
fails the test.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import pickle
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR10, MNIST

from gan_lightning.data import ImageFolderDataModule, TorchvisionDataModule
from gan_lightning.data.vision import find_image_files
from gan_lightning.errors import ConfigurationError

MNIST_FILES = {
    "train-images-idx3-ubyte": "train_images",
    "train-labels-idx1-ubyte": "train_labels",
    "t10k-images-idx3-ubyte": "test_images",
    "t10k-labels-idx1-ubyte": "test_labels",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a URL other than ``file://``.

    torchvision's downloader reads ``response.length``, which only HTTP responses have, so
    file responses get it from their Content-Length header.
    """
    real_urlopen = urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if not url.startswith("file:"):
            raise AssertionError(f"the test tried to open {url}")
        response = real_urlopen(request, *args, **kwargs)
        response.length = int(response.headers["Content-Length"])
        return response

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


# ---------------------------------------------------------------------------------------------
# Tiny datasets in the real file formats.


def mnist_arrays() -> dict[str, np.ndarray]:
    """20 train and 10 test 28x28 images; image i is constant, train 0 white, train 1 black."""
    values = np.array([255, 0] + [10 * i for i in range(2, 20)], dtype=np.uint8)
    train = np.broadcast_to(values[:, None, None], (20, 28, 28)).copy()
    test = np.broadcast_to((values[:10] // 2)[:, None, None], (10, 28, 28)).copy()
    return {
        "train_images": train,
        "train_labels": np.arange(20, dtype=np.uint8) % 10,
        "test_images": test,
        "test_labels": (9 - np.arange(10)).astype(np.uint8),
    }


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the idx format: magic 0x08 0x<ndim>, big-endian sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_mnist(folder: Path, gz: bool = False) -> dict[str, str]:
    """Write the four idx files (gzipped if ``gz``) into ``folder``; return name -> md5."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays, md5s = mnist_arrays(), {}
    for name, key in MNIST_FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            name, data = f"{name}.gz", gzip.compress(data)
        (folder / name).write_bytes(data)
        md5s[name] = hashlib.md5(data).hexdigest()
    return md5s


def cifar_row(red: int, green: int, blue: int) -> np.ndarray:
    """One CIFAR-10 row of 3072 bytes: 1024 red, 1024 green, 1024 blue values."""
    return np.repeat(np.array([red, green, blue], dtype=np.uint8), 1024)


def write_cifar(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Five 2-image training batches, a 3-image test batch, the meta file; register md5s."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    red, green = cifar_row(255, 0, 0), cifar_row(0, 255, 0)
    batches = {f"data_batch_{i}": ([red, green], [2 * i - 2, 2 * i - 1]) for i in range(1, 6)}
    batches["test_batch"] = ([green, red, green], [7, 8, 9])
    md5s = {}
    for name, (rows, labels) in batches.items():
        md5s[name] = write_pickle(folder / name, {"data": np.stack(rows), "labels": labels})
    meta_md5 = write_pickle(folder / "batches.meta", {"label_names": [str(i) for i in range(10)]})
    train_list = [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})


def write_pickle(path: Path, obj: object) -> str:
    data = pickle.dumps(obj)
    path.write_bytes(data)
    return hashlib.md5(data).hexdigest()


def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (32, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def to_unit(value: int) -> float:
    """The [-1, 1] value that a uint8 pixel value becomes."""
    return value / 255 * 2 - 1


# ---------------------------------------------------------------------------------------------
# TorchvisionDataModule.


def test_mnist_from_local_files(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    data = TorchvisionDataModule("mnist", root=str(tmp_path), image_size=32, batch_size=4)
    data.prepare_data()
    data.setup("fit")

    arrays = mnist_arrays()
    assert data.sample_shape == (1, 32, 32)
    assert (len(data.train_set), len(data.val_set)) == (20, 10)
    assert [data.train_set[i][1] for i in range(20)] == arrays["train_labels"].tolist()
    white, black, gray = (data.train_set[i][0] for i in range(3))
    assert white.shape == (1, 32, 32) and white.dtype == torch.float32
    assert torch.equal(white, torch.ones(1, 32, 32))
    assert torch.equal(black, -torch.ones(1, 32, 32))
    assert torch.allclose(gray, torch.full((1, 32, 32), to_unit(20)), atol=1e-6)

    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (4, 1, 32, 32)
    assert labels.dtype == torch.long
    assert labels.tolist() == [9, 8, 7, 6]
    assert images.min() >= -1 and images.max() <= 1
    assert torch.allclose(images[:, 0, 0, 0], torch.tensor([to_unit(v) for v in (127, 0, 10, 15)]))


def test_mnist_as_rgb_repeats_the_gray_value(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    data = TorchvisionDataModule("mnist", root=str(tmp_path), image_size=16, channels=3)
    data.setup()

    image, _ = data.train_set[2]
    assert data.sample_shape == (3, 16, 16)
    assert torch.allclose(image, torch.full((3, 16, 16), to_unit(20)), atol=1e-6)


def test_mnist_gz_files_are_unpacked_without_download(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=True)
    data = TorchvisionDataModule("mnist", root=str(tmp_path), image_size=8)
    data.prepare_data()
    data.setup()

    assert all((raw / name).is_file() for name in MNIST_FILES)
    assert [data.val_set[i][1] for i in range(10)] == list(range(9, -1, -1))


def test_mnist_download_from_a_file_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    md5s = write_mnist(mirror, gz=True)
    monkeypatch.setattr(MNIST, "mirrors", [mirror.as_uri() + "/"])
    monkeypatch.setattr(MNIST, "resources", list(md5s.items()))
    root = tmp_path / "data"
    data = TorchvisionDataModule("mnist", root=str(root), download=True, image_size=8)
    data.prepare_data()
    data.setup()

    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(
        list(MNIST_FILES) + list(md5s)
    )
    assert [data.train_set[i][1] for i in range(20)] == [i % 10 for i in range(20)]
    assert torch.equal(data.train_set[0][0], torch.ones(1, 8, 8))


def test_mnist_download_failure_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_mirror = tmp_path / "empty_mirror"
    empty_mirror.mkdir()
    monkeypatch.setattr(MNIST, "mirrors", [empty_mirror.as_uri() + "/"])
    data = TorchvisionDataModule("mnist", root=str(tmp_path / "data"), download=True)

    with pytest.raises(ConfigurationError) as error:
        data.prepare_data()
    message = str(error.value)
    assert "downloading MNIST" in message and "failed" in message
    assert str(tmp_path / "data" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


@pytest.mark.parametrize(
    ("name", "folder", "file_name"),
    [
        ("mnist", "MNIST/raw", "train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw", "t10k-labels-idx1-ubyte"),
        ("cifar10", "cifar-10-batches-py", "data_batch_5"),
    ],
)
def test_missing_files_name_the_folder(
    tmp_path: Path, name: str, folder: str, file_name: str
) -> None:
    data = TorchvisionDataModule(name, root=str(tmp_path))

    for step in (data.prepare_data, data.setup):
        with pytest.raises(ConfigurationError) as error:
            step()
        message = str(error.value)
        assert str(tmp_path / folder) in message
        assert file_name in message
        assert "or set data.init_args.download: true on a machine with internet" in message
    assert data.train_set is None


def test_partly_missing_mnist_lists_only_the_missing_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw)
    (raw / "t10k-images-idx3-ubyte").unlink()

    with pytest.raises(ConfigurationError, match=r"missing: t10k-images-idx3-ubyte\)"):
        TorchvisionDataModule("mnist", root=str(tmp_path)).prepare_data()


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(ConfigurationError) as error:
        TorchvisionDataModule("svhn")
    assert "mnist, fashion_mnist, cifar10" in str(error.value)
    assert "'svhn'" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"image_size": 7}, "data.image_size"),
        ({"image_size": 257}, "data.image_size"),
        ({"channels": 2}, "data.channels"),
        ({"val_split": "val"}, "data.val_split"),
        ({"batch_size": 0}, "data.batch_size"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        TorchvisionDataModule("mnist", **kwargs)


def test_cifar10_from_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, monkeypatch)
    data = TorchvisionDataModule("cifar10", root=str(tmp_path), batch_size=2)
    data.prepare_data()
    data.setup()

    assert data.sample_shape == (3, 32, 32)
    assert (len(data.train_set), len(data.val_set)) == (10, 3)
    image, label = data.train_set[0]
    assert image.shape == (3, 32, 32) and label == 0
    assert torch.equal(image[0], torch.ones(32, 32))
    assert torch.equal(image[1:], -torch.ones(2, 32, 32))
    assert [data.train_set[i][1] for i in range(10)] == list(range(10))
    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [7, 8]


def test_cifar10_as_grayscale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, monkeypatch)
    data = TorchvisionDataModule("cifar10", root=str(tmp_path), channels=1, image_size=16)
    data.setup()

    red, _ = data.train_set[0]
    assert data.sample_shape == (1, 16, 16) and red.shape == (1, 16, 16)
    # PIL's luma: L = 0.299 R + 0.587 G + 0.114 B, so pure red becomes 76.
    assert torch.allclose(red, torch.full((1, 16, 16), to_unit(76)), atol=1.5 / 255)


def test_cifar10_corrupt_files_raise_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_cifar(tmp_path, monkeypatch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")

    with pytest.raises(ConfigurationError) as error:
        TorchvisionDataModule("cifar10", root=str(tmp_path)).setup()
    assert str(tmp_path / "cifar-10-batches-py") in str(error.value)
    assert "corrupt" in str(error.value)


def test_val_split_train_validates_on_the_training_images(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    data = TorchvisionDataModule("mnist", root=str(tmp_path), val_split="train")
    data.setup()

    assert data.val_set is data.train_set and len(data.val_set) == 20


@pytest.mark.parametrize("cls", [TorchvisionDataModule, ImageFolderDataModule])
def test_init_is_fully_annotated_for_the_cli(cls: type) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert parameters and all(p.annotation is not inspect.Parameter.empty for p in parameters)


# ---------------------------------------------------------------------------------------------
# ImageFolderDataModule.


def test_labels_come_from_first_level_subfolders(tmp_path: Path) -> None:
    write_png(tmp_path / "dog" / "d.jpg", (0, 0, 0))
    write_png(tmp_path / "cat" / "b.PNG", (0, 0, 0))
    write_png(tmp_path / "cat" / "deeper" / "c.png", (0, 0, 0))
    write_png(tmp_path / "root.png", (0, 0, 0))
    write_png(tmp_path / ".cache" / "hidden.png", (0, 0, 0))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")

    samples, classes = find_image_files(tmp_path)

    assert classes == ["cat", "dog"]
    relative = [(str(Path(path).relative_to(tmp_path)), label) for path, label in samples]
    assert relative == [
        ("cat/b.PNG", 0),
        ("cat/deeper/c.png", 0),
        ("dog/d.jpg", 1),
        ("root.png", 0),
    ]


def test_image_folder_split_shapes_and_values(tmp_path: Path) -> None:
    for i in range(12):
        write_png(tmp_path / "a_red" / f"{i:02d}.png", (255, 0, 0))
        write_png(tmp_path / "b_blue" / f"{i:02d}.png", (0, 0, 255))
    data = ImageFolderDataModule(str(tmp_path), image_size=16, val_fraction=0.25, batch_size=4)
    data.prepare_data()
    data.setup()

    assert data.classes == ["a_red", "b_blue"]
    assert (len(data.train_set), len(data.val_set)) == (18, 6)
    train, val = set(data.train_set.samples), set(data.val_set.samples)
    assert not train & val and len(train | val) == 24
    for image, label in (data.train_set[i] for i in range(18)):
        assert image.shape == (3, 16, 16)
        assert torch.equal(image[0 if label == 0 else 2], torch.ones(16, 16))
        assert torch.equal(image[1], -torch.ones(16, 16))
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 16, 16) and labels.dtype == torch.long


def test_image_folder_split_depends_only_on_split_seed(tmp_path: Path) -> None:
    for i in range(20):
        write_png(tmp_path / f"{i:02d}.png", (i, i, i), size=(8, 8))

    def val_paths(seed: int) -> list[str]:
        data = ImageFolderDataModule(str(tmp_path), image_size=8, split_seed=seed)
        data.setup()
        return [path for path, _ in data.val_set.samples]

    torch.manual_seed(123)
    first = val_paths(0)
    torch.manual_seed(456)
    assert val_paths(0) == first and len(first) == 1
    assert any(val_paths(seed) != first for seed in (1, 2, 3))


def test_flat_folder_as_grayscale(tmp_path: Path) -> None:
    for i in range(4):
        write_png(tmp_path / f"face_{i}.png", (255, 255, 255), size=(20, 40))
    data = ImageFolderDataModule(str(tmp_path), image_size=8, channels=1, val_fraction=0.5)
    data.setup()

    assert data.classes == [] and data.sample_shape == (1, 8, 8)
    assert (len(data.train_set), len(data.val_set)) == (2, 2)
    image, label = data.train_set[0]
    assert label == 0 and torch.equal(image, torch.ones(1, 8, 8))


def test_empty_folder_names_the_accepted_extensions(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    data = ImageFolderDataModule(str(tmp_path))

    with pytest.raises(ConfigurationError) as error:
        data.setup()
    assert str(tmp_path) in str(error.value)
    assert ".png" in str(error.value) and ".jpg" in str(error.value)


def test_single_image_is_too_few_to_split(tmp_path: Path) -> None:
    write_png(tmp_path / "only.png", (0, 0, 0))

    with pytest.raises(ConfigurationError, match="at least 2"):
        ImageFolderDataModule(str(tmp_path)).setup()


def test_missing_root_and_file_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError, match="does not exist") as error:
        ImageFolderDataModule(str(missing)).prepare_data()
    assert str(missing) in str(error.value)

    a_file = tmp_path / "image.png"
    write_png(a_file, (0, 0, 0))
    with pytest.raises(ConfigurationError, match="must be a folder") as error:
        ImageFolderDataModule(str(a_file)).setup()
    assert str(a_file) in str(error.value)


@pytest.mark.parametrize("kind", ["random_bytes", "truncated_png"])
def test_corrupt_file_error_names_the_file(tmp_path: Path, kind: str) -> None:
    write_png(tmp_path / "good.png", (0, 0, 0))
    bad = tmp_path / "x.png"
    if kind == "random_bytes":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    else:
        write_png(bad, (255, 0, 0), size=(64, 64))
        bad.write_bytes(bad.read_bytes()[:60])
    # With verify_files (the default) setup already refuses the folder (tested below); here
    # the check at load time, which also catches what PIL's verify() lets through.
    data = ImageFolderDataModule(
        str(tmp_path), image_size=8, val_fraction=0.5, batch_size=1, verify_files=False
    )
    data.setup()
    dataset = data.train_set if str(bad) in dict(data.train_set.samples) else data.val_set
    index = [path for path, _ in dataset.samples].index(str(bad))

    with pytest.raises(ConfigurationError) as error:
        dataset[index]
    assert str(bad) in str(error.value) and "remove it" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"image_size": 4}, "data.image_size"),
        ({"channels": 4}, "data.channels"),
        ({"val_fraction": 1.0}, "data.val_fraction"),
        ({"num_workers": -1}, "data.num_workers"),
    ],
)
def test_bad_image_folder_arguments_are_rejected(kwargs: dict, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        ImageFolderDataModule("anywhere", **kwargs)


def test_image_folder_finds_a_corrupt_file_among_good_ones_in_setup(tmp_path):
    from gan_lightning.data import ImageFolderDataModule

    for i in range(6):
        Image.new("L", (8, 8), color=i * 30).save(tmp_path / f"{i}.png")
    good = (tmp_path / "3.png").read_bytes()
    (tmp_path / "3.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    (tmp_path / "notes.png").write_text("not an image")

    data = ImageFolderDataModule(root=str(tmp_path), image_size=8, channels=1, batch_size=2)
    with pytest.raises(ConfigurationError, match=r"2 of 7 files .* cannot be read") as info:
        data.setup("fit")
    assert "3.png" in str(info.value) and "notes.png" in str(info.value)

    # Without the check the folder is accepted; the bad files fail when they are loaded.
    unchecked = ImageFolderDataModule(
        root=str(tmp_path), image_size=8, channels=1, batch_size=2, verify_files=False
    )
    unchecked.setup("fit")
    assert len(unchecked.train_set) + len(unchecked.val_set) == 7
