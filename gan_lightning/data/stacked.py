"""Stacked digits: three bundled digits, one per color channel, for counting 1,000 modes.

Papers: Metz, Poole, Pfau, Sohl-Dickstein, "Unrolled Generative Adversarial Networks",
arXiv:1611.02163 (stacked MNIST); Srivastava et al., "VEEGAN", arXiv:1705.07761; Lin et al.,
"PacGAN", arXiv:1712.04086 (the 1,000-mode protocol counted by a digit classifier).

Differences from the papers:
- The digits are scikit-learn's 1,797 bundled 8x8 digits (no download) instead of MNIST,
  resized bilinearly to ``image_size``; a training stack only holds training digits and a
  validation stack only held-out digits, using :class:`DigitsDataModule`'s fixed split, so
  the mode classifier (:mod:`gan_lightning.metrics.digit_classifier`) never saw a digit of
  the validation stacks.
- Each channel's digit is drawn uniformly from its split, so the 1,000 modes have equal
  weights but the number of samples per mode varies around ``num_train / 1000``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gan_lightning.data.base import GANDataModule
from gan_lightning.data.digits import DigitsDataModule
from gan_lightning.errors import ConfigurationError

NUM_MODES = 1000
"""Modes of stacked digits: one per ordered triple of digits 0..9."""

_PLACE_VALUES = torch.tensor([100, 10, 1])


def stack_labels(digits: Tensor) -> Tensor:
    """Mode indices ``(N,)`` = ``100 d0 + 10 d1 + d2`` of per-channel digits ``(N, 3)``."""
    return (digits.long() * _PLACE_VALUES.to(digits.device)).sum(dim=1)


class StackedDigitsDataset(Dataset):
    """Stacks of three digit images, built on access from a table of index triples.

    Only the digits and the ``(N, 3)`` index table are stored (a few MB instead of
    ``N x 3 x S x S`` floats).

    Args:
        images: ``(M, 1, S, S)`` digit images in [-1, 1].
        labels: ``(M,)`` their digits 0..9.
        triples: ``(N, 3)`` long indices into ``images``; row ``i`` gives the red, green and
            blue digit of sample ``i``.
    """

    def __init__(self, images: Tensor, labels: Tensor, triples: Tensor) -> None:
        self.images = images
        self.triples = triples
        self.labels = stack_labels(labels[triples])

    def __len__(self) -> int:
        return len(self.triples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # (3, 1, S, S) -> (3, S, S): one digit per channel.
        return self.images[self.triples[index]].squeeze(1), self.labels[index]


class StackedDigitsDataModule(GANDataModule):
    """Three-channel images of three stacked digits; the label is the mode 0..999.

    Batches are ``(images, labels)`` with images ``(B, 3, S, S)`` in [-1, 1] (channel c holds
    one digit) and labels ``100 d0 + 10 d1 + d2`` for the digits ``d0, d1, d2`` of channels 0,
    1 and 2. Training stacks take their digits from :class:`DigitsDataModule`'s training split
    and validation stacks from its held-out split (``val_fraction``, ``split_seed``). The
    stacks are a function of ``seed`` only (training and validation use two independent
    random streams), whatever the global seed.

    Args:
        image_size: Side length S in pixels (8 to 256); the 8x8 digits are resized bilinearly.
        num_train: Training stacks (>= 1).
        num_val: Validation stacks (>= 1).
        seed: Seed of the stacks (>= 0).
        val_fraction: Fraction of the digits held out for validation stacks, in (0, 1).
        split_seed: Seed of the digits' train/validation permutation.
        batch_size, num_workers, drop_last, pin_memory: See :class:`GANDataModule`.
    """

    def __init__(
        self,
        image_size: int = 32,
        num_train: int = 25_600,
        num_val: int = 1000,
        seed: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, drop_last, pin_memory)
        for name, value in (("num_train", num_train), ("num_val", num_val)):
            if value < 1:
                raise ConfigurationError(f"data.{name} must be at least 1, got {value}.")
        if seed < 0:
            raise ConfigurationError(f"data.seed must be 0 or more, got {seed}.")
        # DigitsDataModule checks image_size, val_fraction and the batch options.
        self.digits = DigitsDataModule(
            image_size=image_size, val_fraction=val_fraction, split_seed=split_seed
        )
        self.image_size = image_size
        self.num_train = num_train
        self.num_val = num_val
        self.seed = seed
        self.val_fraction = val_fraction
        self.split_seed = split_seed

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    @property
    def num_modes(self) -> int:
        """Number of modes, 1,000 (ordered digit triples)."""
        return NUM_MODES

    @property
    def cache_key(self) -> str:
        """Names the validation stacks for cached real features (digits, split, seed, count)."""
        digits = self.digits.cache_key
        return f"stacked-digits(digits={digits}, num_val={self.num_val}, seed={self.seed})"

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.digits.setup()
        # Two independent streams from one seed: either set is the same whatever the
        # size of the other. Each child's 64-bit state is halved to a valid torch seed.
        train_seed, val_seed = (
            int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
            for child in np.random.SeedSequence(self.seed).spawn(2)
        )
        self.train_set = _stacks(self.digits.train_set.tensors, self.num_train, train_seed)
        self.val_set = _stacks(self.digits.val_set.tensors, self.num_val, val_seed)


def _stacks(digits: tuple[Tensor, Tensor], count: int, seed: int) -> StackedDigitsDataset:
    """``count`` stacks of three digits drawn uniformly, with replacement, from ``digits``."""
    images, labels = digits
    generator = torch.Generator().manual_seed(seed)
    triples = torch.randint(len(images), (count, 3), generator=generator)
    return StackedDigitsDataset(images, labels, triples)
