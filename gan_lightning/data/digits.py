"""The default dataset: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gan_lightning.data.base import GANDataModule
from gan_lightning.errors import ConfigurationError


def load_digits_tensors(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``(N, 1, image_size, image_size)`` in [-1, 1] and labels ``(N,)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16 from a 4x4 grid of the original 32x32 bitmaps.
    images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        images = F.interpolate(images, size=image_size, mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 2 - 1).contiguous()
    return images, torch.as_tensor(digits.target, dtype=torch.long)


class DigitsDataModule(GANDataModule):
    """scikit-learn's 1,797 handwritten digits, upsampled and scaled to [-1, 1].

    Batches are ``(images, labels)`` with images ``(B, 1, S, S)`` in [-1, 1] and labels in
    0..9. The train/validation split is a fixed permutation drawn from ``split_seed``, so it is
    the same in every run whatever the global seed.

    Args:
        image_size: Side length S in pixels (8 to 256); the 8x8 originals are resized
            bilinearly.
        val_fraction: Fraction of the digits held out for validation, in (0, 1).
        split_seed: Seed of the train/validation permutation.
        batch_size, num_workers, drop_last, pin_memory: See :class:`GANDataModule`.
    """

    def __init__(
        self,
        image_size: int = 32,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last, pin_memory)
        if not 8 <= image_size <= 256:
            raise ConfigurationError(
                f"data.image_size must be between 8 and 256 pixels, got {image_size}."
            )
        if not 0 < val_fraction < 1:
            raise ConfigurationError(
                f"data.val_fraction must lie strictly between 0 and 1, got {val_fraction}."
            )
        self.image_size = image_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (1, self.image_size, self.image_size)

    @property
    def cache_key(self) -> str:
        """Names the validation images for cached real features (data, size, resize, split)."""
        return (
            f"sklearn-digits(image_size={self.image_size}, resize=bilinear-align_corners-false, "
            f"val_fraction={self.val_fraction}, split_seed={self.split_seed})"
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_digits_tensors(self.image_size)
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(self.split_seed)
        )
        n_val = max(1, round(len(images) * self.val_fraction))
        val, train = order[:n_val], order[n_val:]
        self.train_set = TensorDataset(images[train], labels[train])
        self.val_set = TensorDataset(images[val], labels[val])
