"""Conversions between the generator's value range and image formats.

Every place that turns generator output into pixels (PNG files, logged grids, metric inputs)
goes through :func:`to_uint8`, so metrics see exactly the pixels a saved PNG would hold.
"""

import torch
from torch import Tensor


def to_unit_range(images: Tensor) -> Tensor:
    """Map ``(N, C, H, W)`` images from [-1, 1] to [0, 1], clamping values outside."""
    return ((images + 1) / 2).clamp(0, 1)


def to_uint8(images: Tensor) -> Tensor:
    """Quantize ``(N, C, H, W)`` images in [-1, 1] to uint8 in [0, 255].

    Rounds half up, as ``torchvision.utils.save_image`` does, so the result equals what a
    PNG written from the same tensor holds.
    """
    scaled = to_unit_range(images.float()) * 255 + 0.5
    return scaled.clamp(0, 255).to(torch.uint8)


def to_rgb(images: Tensor) -> Tensor:
    """Repeat single-channel ``(N, 1, H, W)`` images to three channels; pass RGB through."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise ValueError(f"expected images with 1 or 3 channels, got shape {tuple(images.shape)}")
    return images
