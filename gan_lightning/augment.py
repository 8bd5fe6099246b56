"""Differentiable augmentation of real and generated images before the discriminator.

Paper: Zhao, Liu, Lin, Zhu, Han, "Differentiable Augmentation for Data-Efficient GAN
Training", arXiv:2006.10738.

The same policy augments real and fake images (each batch with its own random draws) every
time the discriminator sees them, in both the discriminator and the generator phase; since
every operation is differentiable in the pixels, the generator still receives gradients.

Differences from the paper:
- Cutout squares lie entirely inside the image, so every sample loses exactly the same area
  (the authors' code centres the square anywhere, letting it hang off the border).
- Random parameters can come from an explicit ``torch.Generator`` for reproducible tests.
- Translation and cutout sizes are computed per axis, so non-square images work.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lightning.errors import ConfigurationError

# Fractions of the image side: largest shift of ``translation``, side of the ``cutout`` square.
TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2


def _uniform(x: Tensor, generator: torch.Generator | None, *shape: int) -> Tensor:
    """Uniform [0, 1) numbers on ``x``'s device, drawn from ``generator`` when given."""
    device = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=device).to(x.device, x.dtype)


def _randint(x: Tensor, generator: torch.Generator | None, low: int, high: int, n: int) -> Tensor:
    """``n`` integers in ``[low, high)`` on ``x``'s device."""
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=device).to(x.device)


def _color(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Random brightness, saturation and contrast, one draw per sample."""
    n = x.shape[0]

    # Brightness: add a uniform offset in [-0.5, 0.5).
    x = x + (_uniform(x, generator, n, 1, 1, 1) - 0.5)

    # Saturation: scale the deviation from the per-pixel channel mean by a factor in [0, 2).
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * _uniform(x, generator, n, 1, 1, 1)) + mean

    # Contrast: scale the deviation from the per-image mean by a factor in [0.5, 1.5).
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator, n, 1, 1, 1) + 0.5) + mean


def _translation(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Shift each image by up to 1/8 of its side per axis, filling with zeros."""
    n, _, h, w = x.shape
    pad_h, pad_w = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    shift_h = _randint(x, generator, -pad_h, pad_h + 1, n)
    shift_w = _randint(x, generator, -pad_w, pad_w + 1, n)

    # Output pixel (i, j) reads input pixel (i - shift_h, j - shift_w) of the zero-padded image.
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h)).permute(0, 2, 3, 1)  # (N, H', W', C)
    rows = torch.arange(h, device=x.device)[None] - shift_h[:, None] + pad_h  # (N, H)
    cols = torch.arange(w, device=x.device)[None] - shift_w[:, None] + pad_w  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _cutout(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Zero one square of half the image side per sample, placed uniformly inside the image."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = _randint(x, generator, 0, h - size_h + 1, n)[:, None, None]
    left = _randint(x, generator, 0, w - size_w + 1, n)[:, None, None]

    # Mask (N, 1, H, W): 0 inside the square, 1 elsewhere.
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTATIONS: dict[str, Callable[[Tensor, torch.Generator | None], Tensor]] = {
    "color": _color,
    "translation": _translation,
    "cutout": _cutout,
}


def parse_policy(policy: str, name: str = "policy") -> tuple[str, ...]:
    """Split a comma-separated policy into operation names, checking each one.

    Args:
        policy: E.g. ``"color,translation,cutout"``; whitespace and empty entries are ignored,
            and ``""`` means no augmentation.
        name: How the caller's argument is called, for the error message
            (e.g. ``"model.diff_augment"``).

    Returns:
        The operations in the order they are applied.
    """
    ops = tuple(op.strip() for op in policy.split(",") if op.strip())
    unknown = [op for op in ops if op not in AUGMENTATIONS]
    if unknown:
        raise ConfigurationError(
            f"{name} must be a comma-separated list of {', '.join(AUGMENTATIONS)} (or empty for "
            f"none), got {policy!r} with unknown operation(s) {', '.join(map(repr, unknown))}. "
            "Use for example 'color,translation,cutout'."
        )
    return ops


def diff_augment(
    x: Tensor,
    policy: str = "color,translation,cutout",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Augment a batch with fresh random parameters per sample, differentiably in ``x``.

    Args:
        x: Images ``(N, C, H, W)`` in [-1, 1]; the result may leave that range (brightness).
        policy: Comma-separated operations from ``color``, ``translation``, ``cutout``,
            applied in the given order; ``""`` returns ``x`` unchanged.
        generator: Source of the random parameters; None uses PyTorch's global generator.

    Returns:
        Augmented images ``(N, C, H, W)``.
    """
    ops = parse_policy(policy)
    if ops and x.dim() != 4:
        raise ConfigurationError(
            f"DiffAugment works on image batches (N, C, H, W), got shape {tuple(x.shape)}. "
            "Use an empty policy for non-image data."
        )
    for op in ops:
        x = AUGMENTATIONS[op](x, generator)
    return x


class DiffAugment:
    """A validated policy that augments batches when called, e.g. ``DiffAugment("color")(x)``.

    Args:
        policy: See :func:`diff_augment`; checked here, at construction.
    """

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        self.ops = parse_policy(policy)
        self.policy = ",".join(self.ops)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment images ``(N, C, H, W)``; see :func:`diff_augment`."""
        return diff_augment(x, self.policy, generator)

    def __repr__(self) -> str:
        return f"DiffAugment(policy={self.policy!r})"
