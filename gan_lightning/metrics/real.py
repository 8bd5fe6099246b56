"""Real-image features: read from a dataset once, cached on disk, reused across runs.

A cache entry is one ``torch.save`` file of the real features (float32) and labels, named by
a hash of its key and holding the key itself, which is checked on load. The key names
everything the features depend on: the data module's ``cache_key`` (dataset, image size,
transform, split parameters), the split, the number of images, the extractor, its feature
layer and the SHA-256 of its weights file, and the pixel protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from gan_lightning.checkpointing import atomic_save
from gan_lightning.errors import ConfigurationError

CACHE_FORMAT = 1
"""Version of the cache layout and pixel protocol; bump it to invalidate old entries."""

CACHE_DIR_ENV_VAR = "GAN_LIGHTNING_CACHE_DIR"
"""Environment variable naming the cache folder when ``cache_dir`` is not given."""


def default_cache_dir() -> Path:
    """``$GAN_LIGHTNING_CACHE_DIR``, else ``~/.cache/gan-lightning``."""
    from_env = os.environ.get(CACHE_DIR_ENV_VAR, "")
    return Path(from_env).expanduser() if from_env else Path.home() / ".cache" / "gan-lightning"


def resolve_cache_dir(cache_dir: str | None) -> Path:
    """The folder for cached real features: the argument, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def cache_file(cache_dir: Path, key: dict[str, Any]) -> Path:
    """Path of the entry for ``key``: ``real-<16 hex digits of the key's SHA-256>.pt``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"real-{digest}.pt"


def load_cached(path: Path, key: dict[str, Any]) -> tuple[Tensor, Tensor | None] | None:
    """Features and labels stored under ``key`` at ``path``; None if absent or unusable.

    A file that cannot be read or holds another key is ignored (and later overwritten): the
    features are recomputed rather than trusted.
    """
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # A truncated or foreign file is treated as a cache miss.
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    return entry["features"], entry.get("labels")


def save_cached(path: Path, key: dict[str, Any], features: Tensor, labels: Tensor | None) -> None:
    """Write an entry atomically (temporary file, then rename), so readers never see half."""
    entry = {"key": key, "features": features.cpu(), "labels": labels}
    if labels is not None:
        entry["labels"] = labels.cpu()
    atomic_save(entry, path)


def split_item(item: Any) -> tuple[Tensor, int | None]:
    """The image and label of a dataset item: ``image`` or ``(image, label, ...)``."""
    if isinstance(item, (tuple, list)):
        label = item[1] if len(item) > 1 else None
        return item[0], (int(label) if label is not None else None)
    return item, None


def _collate(items: list[Any]) -> tuple[Tensor, Tensor | None]:
    pairs = [split_item(item) for item in items]
    images = torch.stack([image for image, _ in pairs])
    labels = [label for _, label in pairs]
    return images, (None if None in labels else torch.tensor(labels, dtype=torch.long))


def real_image_batches(dataset: Dataset, start: int, stop: int, batch_size: int) -> DataLoader:
    """Items ``start .. stop - 1`` of ``dataset`` in order, as ``(images, labels)`` batches.

    Images must be ``(C, H, W)`` tensors in [-1, 1] with C = 1 or 3; labels are None when the
    items carry none.
    """
    return DataLoader(
        Subset(dataset, range(start, stop)), batch_size=batch_size, collate_fn=_collate
    )


def check_images(images: Tensor, owner: str) -> None:
    """Raise :class:`ConfigurationError` unless ``images`` is ``(N, 1 or 3, H, W)``."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ConfigurationError(
            f"{owner} measures images (N, C, H, W) in [-1, 1] with C = 1 or 3, got {got}. "
            "For 2-D points use gan_lightning.callbacks.ModeCoverage instead."
        )
