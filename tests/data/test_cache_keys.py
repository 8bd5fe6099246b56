"""``cache_key`` of the data modules: it changes with what the validation data depends on only.

The key names the real validation samples whose features the metrics cache on disk, so a key
that missed an option would serve features of other data, and a key that followed an
unrelated option would only waste the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from gan_lightning.data import (
    GaussianMixtureDataModule,
    ImageFolderDataModule,
    TorchvisionDataModule,
)


def _keys_for_changes(make, base: dict, changes: dict) -> dict[str, str]:
    return {name: make(**{**base, name: value}).cache_key for name, value in changes.items()}


def _assert_key_follows(make, base: dict, changes: dict, unrelated: dict) -> None:
    key = make(**base).cache_key
    assert make(**base).cache_key == key
    changed = _keys_for_changes(make, base, changes)
    for name, other in changed.items():
        assert other != key, f"cache_key ignores {name}"
    assert len(set(changed.values())) == len(changed)
    for name, other in _keys_for_changes(make, base, unrelated).items():
        assert other == key, f"cache_key follows {name}, which the validation data ignores"


def test_torchvision_key(tmp_path: Path) -> None:
    base = {"name": "mnist", "root": str(tmp_path), "image_size": 32, "channels": 1}
    changes = {
        "name": "fashion_mnist",
        "root": str(tmp_path / "elsewhere"),
        "image_size": 28,
        "channels": 3,
        "val_split": "train",
    }
    unrelated = {"batch_size": 8, "num_workers": 1, "download": True}
    _assert_key_follows(TorchvisionDataModule, base, changes, unrelated)
    # The native channel count (None) and its explicit value name the same images.
    assert TorchvisionDataModule("cifar10", str(tmp_path)).cache_key == (
        TorchvisionDataModule("cifar10", str(tmp_path), channels=3).cache_key
    )
    key = TorchvisionDataModule(**base).cache_key
    assert "Resize(size=32" in key and "Normalize(mean=[0.5]" in key and "\n" not in key


def _write_image(path: Path, size: int = 8, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for i in range(4):
        _write_image(root / "cats" / f"{i}.png", value=10 * i)
        _write_image(root / "dogs" / f"{i}.png", value=200 - 10 * i)
    return root


def test_image_folder_key_follows_the_options(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "copy"
    for path in folder.rglob("*.png"):
        _write_image(other / path.relative_to(folder), value=0)
    base = {"root": str(folder), "image_size": 32, "channels": 3}
    changes = {
        "root": str(other),
        "image_size": 16,
        "channels": 1,
        "val_fraction": 0.5,
        "split_seed": 1,
    }
    _assert_key_follows(ImageFolderDataModule, base, changes, {"batch_size": 8})


def test_image_folder_key_follows_the_files(folder: Path) -> None:
    def key() -> str:
        return ImageFolderDataModule(str(folder), image_size=16).cache_key

    first = key()
    assert key() == first
    # A file the loader skips (not an image, or hidden) leaves the key alone.
    (folder / "notes.txt").write_text("not an image")
    _write_image(folder / ".hidden.png")
    assert key() == first

    keys = {first}
    _write_image(folder / "cats" / "4.png")  # Added.
    keys.add(key())
    (folder / "cats" / "4.png").unlink()
    assert key() == first  # Back to the same files.
    (folder / "dogs" / "0.png").rename(folder / "dogs" / "9.png")  # Renamed.
    keys.add(key())
    _write_image(folder / "dogs" / "1.png", size=64)  # Same name, new size in bytes.
    keys.add(key())
    (folder / "dogs" / "2.png").unlink()  # Removed.
    keys.add(key())
    assert len(keys) == 5


def test_gaussian_mixture_key() -> None:
    base = {"kind": "ring", "num_val": 2500, "seed": 0}
    changes = {"kind": "grid", "num_val": 100, "seed": 1, "std": 0.02, "radius": 2.0}
    unrelated = {"num_train": 10, "batch_size": 8}
    _assert_key_follows(GaussianMixtureDataModule, base, changes, unrelated)
    # std None is the paper's value: the same points as writing it out.
    assert GaussianMixtureDataModule(std=None).cache_key == (
        GaussianMixtureDataModule(std=0.01).cache_key
    )
    # The grid ignores the radius, and so does its key.
    assert GaussianMixtureDataModule(kind="grid", radius=3.0).cache_key == (
        GaussianMixtureDataModule(kind="grid").cache_key
    )
