"""Image data modules: torchvision's MNIST, Fashion-MNIST and CIFAR-10, and folders of images.

Every module yields ``(images, labels)`` batches with images ``(B, C, S, S)`` in [-1, 1] and
labels ``(B,)`` long. Images are resized so the shorter side is S, center-cropped to S x S and
converted to grayscale (C = 1) or RGB (C = 3). Missing or unreadable data is reported as a
:class:`~gan_lightning.errors.ConfigurationError` in ``prepare_data`` / ``setup``, before any
training step runs.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST, VisionDataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from gan_lightning.data.base import GANDataModule
from gan_lightning.errors import ConfigurationError

_MODES = {1: "L", 3: "RGB"}
_DOWNLOAD_ERRORS = (OSError, RuntimeError, http.client.HTTPException)
_PIL_ERRORS = (OSError, ValueError, Image.DecompressionBombError)
# torchvision checks the layout of MNIST's idx files with assert statements.
_LOAD_ERRORS = (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError, AssertionError)


@dataclass(frozen=True)
class _DatasetSpec:
    """A torchvision dataset class, its native channel count and its printable title."""

    cls: type[VisionDataset]
    channels: int
    title: str


DATASETS: dict[str, _DatasetSpec] = {
    "mnist": _DatasetSpec(MNIST, 1, "MNIST"),
    "fashion_mnist": _DatasetSpec(FashionMNIST, 1, "Fashion-MNIST"),
    "cifar10": _DatasetSpec(CIFAR10, 3, "CIFAR-10"),
}
VAL_SPLITS = ("test", "train")


class ConvertMode:
    """Convert a PIL image to a mode, e.g. ``"L"`` or ``"RGB"`` (picklable for workers).

    Args:
        mode: Target PIL mode.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, image: Image.Image) -> Image.Image:
        return image if image.mode == self.mode else image.convert(self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r})"


def image_transform(image_size: int, channels: int) -> transforms.Compose:
    """PIL image -> ``(channels, image_size, image_size)`` float tensor in [-1, 1].

    Args:
        image_size: Side length S in pixels; the shorter side is resized to S, then the
            center S x S crop is kept.
        channels: 1 (grayscale, ITU-R 601-2 luma) or 3 (RGB).
    """
    return transforms.Compose(
        [
            ConvertMode(_MODES[channels]),
            transforms.Resize(image_size, antialias=True),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            # [0, 1] -> [-1, 1]: (x - 0.5) / 0.5.
            transforms.Normalize([0.5] * channels, [0.5] * channels),
        ]
    )


def _check_image_size(image_size: int) -> None:
    if not 8 <= image_size <= 256:
        raise ConfigurationError(
            f"data.image_size must be between 8 and 256 pixels, got {image_size}."
        )


def _check_channels(channels: int | None, allow_none: bool) -> None:
    if channels is None and allow_none:
        return
    if channels not in _MODES:
        allowed = "1 (grayscale), 3 (RGB) or null (native)" if allow_none else "1 or 3"
        raise ConfigurationError(f"data.channels must be {allowed}, got {channels!r}.")


def _absolute(root: str | os.PathLike) -> Path:
    """``root`` with ``~`` expanded, made absolute without resolving symbolic links."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(root))))


def _describe(transform: transforms.Compose) -> str:
    """The transform's ``repr`` on one line, e.g. for a cache key."""
    return " ".join(repr(transform).split())


def _short(error: BaseException, limit: int = 300) -> str:
    """One-line, length-limited text of an exception for an error message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Torchvision datasets.


def _dataset_folder(spec: _DatasetSpec, root: Path) -> Path:
    """The folder in which torchvision looks for the dataset's files."""
    if issubclass(spec.cls, MNIST):
        return root / spec.cls.__name__ / "raw"
    return root / spec.cls.base_folder


def _dataset_files(spec: _DatasetSpec) -> list[str]:
    """The file names torchvision needs in :func:`_dataset_folder` (uncompressed for MNIST)."""
    if issubclass(spec.cls, MNIST):
        return [name.removesuffix(".gz") for name, _ in spec.cls.resources]
    batches = spec.cls.train_list + spec.cls.test_list
    return [name for name, _ in batches] + [spec.cls.meta["filename"]]


def _unpack_gz_copies(folder: Path, names: list[str]) -> None:
    """Decompress ``name.gz`` into ``name`` for each missing ``name`` whose archive is there."""
    for name in names:
        target, archive = folder / name, folder / f"{name}.gz"
        if target.is_file() or not archive.is_file():
            continue
        try:
            with gzip.open(archive, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as err:
            target.unlink(missing_ok=True)
            raise ConfigurationError(
                f"data: could not unpack {archive} ({_short(err)}). Replace it with an intact "
                f"copy, or put the uncompressed file {name} in {folder}."
            ) from err


class TorchvisionDataModule(GANDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10 through torchvision, scaled to [-1, 1].

    Batches are ``(images, labels)`` with images ``(B, C, S, S)`` in [-1, 1] and labels long
    in 0..9. Training uses torchvision's training split (60,000 or 50,000 images).

    Nothing is downloaded unless ``download`` is true. Without it the files must already be
    in ``<root>/MNIST/raw/``, ``<root>/FashionMNIST/raw/`` or ``<root>/cifar-10-batches-py/``;
    ``prepare_data`` and ``setup`` raise a :class:`ConfigurationError` naming the folder and
    the files when they are not.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: Folder that holds (or receives) the dataset folders; ``~`` is expanded.
        download: Download missing files in ``prepare_data`` (needs internet access).
        image_size: Side length S in pixels (8 to 256); 28x28 or 32x32 originals are resized.
        channels: 1 (grayscale) or 3 (RGB); ``None`` keeps the dataset's own (1 for MNIST and
            Fashion-MNIST, 3 for CIFAR-10).
        val_split: Real images for validation: ``"test"`` (the 10,000 test images) or
            ``"train"`` (the training images, as FID against the training set uses).
        batch_size, num_workers, drop_last, pin_memory: See :class:`GANDataModule`.
    """

    def __init__(
        self,
        name: str,
        root: str = "data",
        download: bool = False,
        image_size: int = 32,
        channels: int | None = None,
        val_split: str = "test",
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last, pin_memory)
        if name not in DATASETS:
            raise ConfigurationError(
                f"data.name must be one of {', '.join(DATASETS)}, got {name!r}. For other "
                "images use gan_lightning.data.ImageFolderDataModule."
            )
        if val_split not in VAL_SPLITS:
            raise ConfigurationError(
                f"data.val_split must be one of {', '.join(VAL_SPLITS)}, got {val_split!r}."
            )
        _check_image_size(image_size)
        _check_channels(channels, allow_none=True)
        self.name = name
        self.root = root
        self.download = download
        self.image_size = image_size
        self.channels = DATASETS[name].channels if channels is None else channels
        self.val_split = val_split

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def cache_key(self) -> str:
        """Names the validation images for cached real features (data, size, transform, split)."""
        transform = _describe(image_transform(self.image_size, self.channels))
        return (
            f"torchvision-{self.name}(root={_absolute(self.root)}, image_size={self.image_size}, "
            f"channels={self.channels}, transform={transform}, val_split={self.val_split})"
        )

    @property
    def folder(self) -> Path:
        """Absolute folder where torchvision expects this dataset's files."""
        return _dataset_folder(DATASETS[self.name], _absolute(self.root))

    def prepare_data(self) -> None:
        """Download the files if asked to, then check that they are all in place."""
        if self.download:
            self._download()
        elif issubclass(DATASETS[self.name].cls, MNIST):
            _unpack_gz_copies(self.folder, _dataset_files(DATASETS[self.name]))
        self._check_files()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._check_files()
        self.train_set = self._load(train=True)
        self.val_set = self._load(train=False) if self.val_split == "test" else self.train_set

    def _download(self) -> None:
        spec = DATASETS[self.name]
        try:
            spec.cls(str(_absolute(self.root)), train=False, download=True)
        except _DOWNLOAD_ERRORS as err:
            raise ConfigurationError(
                f"data.download=true: downloading {spec.title} into {self.folder} failed "
                f"({_short(err)}). Fetch the files on a machine with internet, put "
                f"{self._wanted_files()} in {self.folder} and set data.init_args.download: false."
            ) from err

    def _wanted_files(self) -> str:
        """The files to put in :attr:`folder` and where they come from, for error messages."""
        cls = DATASETS[self.name].cls
        names = ", ".join(_dataset_files(DATASETS[self.name]))
        if issubclass(cls, MNIST):
            source = f"or their .gz archives from {cls.mirrors[0]}"
            return f"{names} ({source}; prepare_data() unpacks them)"
        return f"{names} (the folder {cls.base_folder}/ inside {cls.filename} from {cls.url})"

    def _check_files(self) -> None:
        spec, folder, names = DATASETS[self.name], self.folder, _dataset_files(DATASETS[self.name])
        missing = [name for name in names if not (folder / name).is_file()]
        if not missing:
            return
        which = "" if len(missing) == len(names) else f" (missing: {', '.join(missing)})"
        raise ConfigurationError(
            f"data.name={self.name!r}: the {spec.title} files are not in {folder}{which}. Put "
            f"{self._wanted_files()} in {folder}, or set data.init_args.download: true on a "
            "machine with internet."
        )

    def _load(self, train: bool) -> VisionDataset:
        spec = DATASETS[self.name]
        transform = image_transform(self.image_size, self.channels)
        try:
            return spec.cls(str(_absolute(self.root)), train=train, transform=transform)
        except _LOAD_ERRORS as err:
            raise ConfigurationError(
                f"data.name={self.name!r}: could not read the {spec.title} files in "
                f"{self.folder} ({_short(err)}). They are corrupt or incomplete: delete them and "
                "set data.init_args.download: true, or copy intact files there."
            ) from err


# ---------------------------------------------------------------------------------------------
# Folders of image files.


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)


def find_image_files(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """All image files under ``root`` with labels, and the class names.

    Hidden files and folders (names starting with ``.``) are skipped; symbolic links to
    folders are followed.

    Args:
        root: Folder to search recursively.

    Returns:
        ``(samples, classes)``: ``samples`` is a list of ``(path, label)`` sorted by path,
        ``classes`` the sorted first-level subfolders that hold images. An image's label is
        the index of its first-level subfolder in ``classes``; images directly in ``root``
        get label 0.
    """
    relative_paths = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        base = Path(folder).relative_to(root)
        relative_paths += [base / name for name in files if _is_image(name)]
    relative_paths.sort()
    classes = sorted({path.parts[0] for path in relative_paths if len(path.parts) > 1})
    index = {name: i for i, name in enumerate(classes)}
    samples = [
        (str(root / path), index[path.parts[0]] if len(path.parts) > 1 else 0)
        for path in relative_paths
    ]
    return samples, classes


class ImageFileDataset(Dataset):
    """Image files with integer labels, loaded with PIL and transformed.

    Args:
        samples: ``(path, label)`` pairs.
        transform: Maps a PIL image to the returned tensor, e.g. :func:`image_transform`.
        mode: PIL mode each image is converted to before ``transform``, e.g. ``"RGB"``.
    """

    def __init__(
        self, samples: list[tuple[str, int]], transform: transforms.Compose, mode: str = "RGB"
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            # convert() decodes the whole file, so truncated images fail here too.
            with Image.open(path) as file:
                image = file.convert(self.mode)
        except _PIL_ERRORS as err:
            raise ConfigurationError(
                f"data: the image file {path} cannot be read ({_short(err)}). It is corrupt or "
                "not an image: remove it from the folder (or replace it) and start again."
            ) from err
        return self.transform(image), label


class ImageFolderDataModule(GANDataModule):
    """Every image file under a folder, e.g. FFHQ or CelebA, scaled to [-1, 1].

    Files with the extensions in ``torchvision.datasets.folder.IMG_EXTENSIONS`` are found
    recursively. With class subfolders (``root/cat/x.png``, ``root/dog/y.png``) the label is
    the index of the first-level subfolder in sorted order; images directly in ``root`` get
    label 0 (a flat folder is one class). Batches are ``(images, labels)`` with images
    ``(B, C, S, S)`` in [-1, 1] and labels long. The train/validation split is a fixed
    permutation drawn from ``split_seed``, the same in every run whatever the global seed.

    Files are only opened when loaded: a corrupt file stops training with a
    :class:`ConfigurationError` that names it.

    Args:
        root: Folder of images; ``~`` is expanded.
        image_size: Side length S in pixels (8 to 256); the shorter side is resized to S and
            the center S x S crop is kept.
        channels: 1 (grayscale) or 3 (RGB; an alpha channel is dropped).
        val_fraction: Fraction of the images held out for validation, in (0, 1); at least
            one image.
        split_seed: Seed of the train/validation permutation.
        verify_files: Check every file's header and checksums (PIL ``verify``) in ``setup``,
            so a corrupt or non-image file stops the run before training rather than when its
            batch loads. Costs one read of the folder; truncated JPEG data is still only
            found when decoded.
        batch_size, num_workers, drop_last, pin_memory: See :class:`GANDataModule`.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 64,
        channels: int = 3,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        verify_files: bool = True,
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last, pin_memory)
        _check_image_size(image_size)
        _check_channels(channels, allow_none=False)
        if not 0 < val_fraction < 1:
            raise ConfigurationError(
                f"data.val_fraction must lie strictly between 0 and 1, got {val_fraction}."
            )
        self.root = root
        self.image_size = image_size
        self.channels = channels
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.verify_files = verify_files
        self.classes: list[str] = []

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def cache_key(self) -> str:
        """Names the validation images for cached real features.

        Holds the folder, image size, channels, transform, split parameters and a SHA-256
        fingerprint of every image file's relative path and size in bytes, so adding,
        removing, renaming or resizing a file changes it. It lists the folder on every call;
        an edit that keeps a file's name and size is not noticed.
        """
        root = self._check_root()
        listing = hashlib.sha256()
        for path, _ in find_image_files(root)[0]:
            relative = Path(path).relative_to(root).as_posix()
            listing.update(f"{relative}\0{os.path.getsize(path)}\n".encode())
        transform = _describe(image_transform(self.image_size, self.channels))
        return (
            f"image-folder(root={root}, files={listing.hexdigest()[:16]}, "
            f"image_size={self.image_size}, channels={self.channels}, transform={transform}, "
            f"val_fraction={self.val_fraction}, split_seed={self.split_seed})"
        )

    def prepare_data(self) -> None:
        """Check that ``root`` is a folder (the files are listed in ``setup``)."""
        self._check_root()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        samples, self.classes = self._find_samples()
        if self.verify_files:
            _verify_image_files([path for path, _ in samples])
        order = torch.randperm(
            len(samples), generator=torch.Generator().manual_seed(self.split_seed)
        )
        n_val = max(1, round(len(samples) * self.val_fraction))
        transform, mode = image_transform(self.image_size, self.channels), _MODES[self.channels]
        self.val_set = ImageFileDataset([samples[i] for i in order[:n_val]], transform, mode)
        self.train_set = ImageFileDataset([samples[i] for i in order[n_val:]], transform, mode)

    def _check_root(self) -> Path:
        root = _absolute(self.root)
        if not root.exists():
            raise ConfigurationError(
                f"data.root: the image folder {root} does not exist. Set data.init_args.root to "
                "the folder that holds your images."
            )
        if not root.is_dir():
            raise ConfigurationError(
                f"data.root must be a folder of images, got the file {root}. Set "
                "data.init_args.root to the folder that holds it."
            )
        return root

    def _find_samples(self) -> tuple[list[tuple[str, int]], list[str]]:
        root = self._check_root()
        samples, classes = find_image_files(root)
        if not samples:
            raise ConfigurationError(
                f"data.root: found no image files in {root} or its subfolders. Accepted "
                f"extensions (any case): {', '.join(IMG_EXTENSIONS)}."
            )
        if len(samples) < 2:
            raise ConfigurationError(
                f"data.root: found only 1 image file in {root}; the train/validation split "
                "needs at least 2. Add more images."
            )
        return samples, classes


def _verify_image_files(paths: list[str]) -> None:
    """Raise one error listing the files PIL cannot identify or whose data fails its checks."""
    bad = []
    for path in paths:
        try:
            with Image.open(path) as file:
                file.verify()
        except _PIL_ERRORS + (SyntaxError,) as err:  # PIL raises SyntaxError for bad chunks
            bad.append(f"{path} ({_short(err)})")
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ConfigurationError(
            f"data: {len(bad)} of {len(paths)} files in the image folder cannot be read, they are "
            f"corrupt or not images: {shown}. Remove them from the folder (or set "
            "data.init_args.verify_files: false to find them only when loaded)."
        )
