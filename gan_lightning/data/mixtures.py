"""Mixtures of 2-D Gaussians: the ring and grid toys on which mode collapse is counted.

Paper: Lin, Khetan, Fanti, Oh, "PacGAN: The power of two samples in generative adversarial
networks", arXiv:1712.04086 (the 2D-ring and 2D-grid benchmarks, after VEEGAN,
arXiv:1705.07761).

Differences from the paper:
- Mode weights are equal but each point's mode is drawn at random, so the counts per mode
  vary slightly around ``num_train / K``.
- The ring radius and the standard deviation are options; the defaults are the paper's.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch.utils.data import TensorDataset

from gan_lightning.data.base import GANDataModule
from gan_lightning.errors import ConfigurationError

# Standard deviation of every mode when ``std`` is None, per kind.
DEFAULT_STD = {"ring": 0.01, "grid": 0.05}


def mixture_modes(kind: str, radius: float = 1.0) -> torch.Tensor:
    """Mode means ``(K, 2)`` in float32.

    ``ring``: 8 means ``radius * (cos(2 pi k / 8), sin(2 pi k / 8))`` for ``k = 0..7``.
    ``grid``: 25 means ``(-4 + 2 i, -4 + 2 j)`` for ``i, j = 0..4``, mode ``5 i + j``.
    """
    if kind == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        modes = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    elif kind == "grid":
        axis = torch.arange(-4.0, 5.0, 2.0, dtype=torch.float64)
        modes = torch.cartesian_prod(axis, axis)
    else:
        raise ConfigurationError(f"data.kind must be 'ring' or 'grid', got {kind!r}.")
    return modes.float()


def sample_mixture(
    modes: torch.Tensor, std: float, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``(n, 2)`` float32 and their mode indices ``(n,)``, equal mode weights."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(modes), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    points = modes.double()[labels] + std * noise
    return points.float(), labels


class GaussianMixtureDataModule(GANDataModule):
    """Points from an equal-weight mixture of 2-D Gaussians with a shared isotropic std.

    Batches are ``(points, modes)``: points ``(B, 2)`` float32, unscaled (use a generator with
    a linear output), and the index of the mode each point was drawn from. Training and
    validation points come from two independent random streams derived from ``seed``, so
    either set is the same whatever the size of the other.

    Args:
        kind: ``"ring"``: 8 modes evenly spaced on a circle of radius ``radius``;
            ``"grid"``: 25 modes at ``{-4, -2, 0, 2, 4}^2``.
        num_train: Training points (>= 1).
        num_val: Validation points (>= 1).
        std: Standard deviation of each mode per coordinate (> 0); None means the paper's
            value, 0.01 for the ring and 0.05 for the grid.
        radius: Radius of the ring (> 0); the grid ignores it.
        seed: Seed of the points (>= 0), independent of the global seed.
        batch_size, num_workers, drop_last, pin_memory: See :class:`GANDataModule`.
    """

    def __init__(
        self,
        kind: Literal["ring", "grid"] = "ring",
        num_train: int = 100_000,
        num_val: int = 2500,
        std: float | None = None,
        radius: float = 1.0,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last, pin_memory)
        if kind not in DEFAULT_STD:
            raise ConfigurationError(f"data.kind must be 'ring' or 'grid', got {kind!r}.")
        for name, value in [("num_train", num_train), ("num_val", num_val)]:
            if value < 1:
                raise ConfigurationError(f"data.{name} must be at least 1, got {value}.")
        if std is not None and not std > 0:
            raise ConfigurationError(
                f"data.std must be positive, got {std}. Use null for the paper's value "
                f"({DEFAULT_STD[kind]} for the {kind})."
            )
        if not radius > 0:
            raise ConfigurationError(f"data.radius must be positive, got {radius}. Use 1.0.")
        if seed < 0:
            raise ConfigurationError(f"data.seed must be 0 or more, got {seed}.")
        self.kind = kind
        self.num_train = num_train
        self.num_val = num_val
        self.std = std
        self.radius = radius
        self.seed = seed

    @property
    def sample_shape(self) -> tuple[int]:
        return (2,)

    @property
    def cache_key(self) -> str:
        """Names the validation points (kind, ring radius, resolved std, count, seed).

        ``num_train`` is left out: the validation points come from their own random stream;
        so is the radius of the grid, which ignores it.
        """
        radius = self.radius if self.kind == "ring" else None
        return (
            f"gaussian-mixture(kind={self.kind}, radius={radius}, std={self.mode_std}, "
            f"num_val={self.num_val}, seed={self.seed})"
        )

    @property
    def modes(self) -> torch.Tensor:
        """Mode means ``(K, 2)`` float32: K = 8 for the ring, 25 for the grid."""
        return mixture_modes(self.kind, self.radius)

    @property
    def mode_std(self) -> float:
        """Standard deviation of every mode per coordinate, with None resolved."""
        return float(self.std if self.std is not None else DEFAULT_STD[self.kind])

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return

        # Two independent streams from one seed: train and validation never share draws.
        # Each child's 64-bit state is halved to a non-negative int64 torch seed.
        train_seed, val_seed = (
            int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            for child in np.random.SeedSequence(self.seed).spawn(2)
        )
        modes = self.modes
        self.train_set = TensorDataset(
            *sample_mixture(modes, self.mode_std, self.num_train, train_seed)
        )
        self.val_set = TensorDataset(*sample_mixture(modes, self.mode_std, self.num_val, val_seed))
