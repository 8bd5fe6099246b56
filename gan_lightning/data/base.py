"""Shared behaviour of the data modules: loaders sized for one GAN training step."""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from gan_lightning.data.resumable import ResumableDataLoader, ResumableSampler
from gan_lightning.errors import ConfigurationError


class GANDataModule(pl.LightningDataModule):
    """Base class for image (and point) data modules used by the GAN models.

    One training step of a GAN makes ``n_critic`` discriminator updates, each on a fresh real
    batch of ``batch_size`` samples. The training loader therefore yields
    ``batch_size * n_critic`` samples per step; the model asks for this through its
    ``real_batches_per_step`` attribute and splits the loaded batch itself. Subclasses set
    ``train_set`` and ``val_set`` in ``setup`` and describe their samples in ``sample_shape``.

    The training order is a function of a seed and the epoch, and the training loader's
    position is saved in checkpoints, so a run resumed in the middle of an epoch continues
    with exactly the next batch (see :mod:`gan_lightning.data.resumable`). The seed is the
    global one (``seed_everything``, the ``seed_everything:`` of a config); without one it
    is drawn from torch's random generator, except under DDP, where every process must use
    the same order and it is 0. Under DDP each process reads its own share of each epoch.

    Args:
        batch_size: Real samples per discriminator update (>= 1).
        num_workers: Worker processes per loader; 0 loads in the main process.
        drop_last: Drop the last incomplete training batch, so every update sees
            ``batch_size`` samples.
        pin_memory: Pin host memory for faster copies to a GPU.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigurationError(f"data.batch_size must be at least 1, got {batch_size}.")
        if num_workers < 0:
            raise ConfigurationError(f"data.num_workers must be 0 or more, got {num_workers}.")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample without the batch dimension, e.g. ``(C, H, W)``."""
        raise NotImplementedError

    def real_batches_per_step(self) -> int:
        """Real batches the attached model consumes per training step (1 without a model)."""
        trainer = getattr(self, "trainer", None)
        model = trainer.lightning_module if trainer is not None else None
        return int(getattr(model, "real_batches_per_step", 1))

    def train_dataloader(self) -> DataLoader:
        dataset = self._require("train_set")
        per_step = self.batch_size * self.real_batches_per_step()
        if self.drop_last and len(dataset) < per_step:
            raise ConfigurationError(
                f"the training set has {len(dataset)} samples, fewer than one training step needs "
                f"(batch_size={self.batch_size} x {self.real_batches_per_step()} discriminator "
                f"updates = {per_step}) with drop_last=True, so no step would ever run. "
                "Lower data.batch_size or model.n_critic, or use more data."
            )
        trainer = getattr(self, "trainer", None)
        world_size = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        sampler = ResumableSampler(dataset, _shuffle_seed(world_size), world_size, rank)
        return self._loader(dataset, per_step, sampler=sampler, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._require("val_set"), self.batch_size)

    def _loader(
        self,
        dataset: Dataset,
        batch_size: int,
        sampler: ResumableSampler | None = None,
        drop_last: bool = False,
    ) -> DataLoader:
        loader_class = DataLoader if sampler is None else ResumableDataLoader
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _require(self, name: str) -> Dataset:
        dataset = getattr(self, name)
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.{name} is not set: call setup() first")
        return dataset


def _shuffle_seed(world_size: int) -> int:
    """The seed of the training order: the global seed, else a draw (0 across processes)."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is not None:
        return int(seed)
    if world_size > 1:
        return 0
    return int(torch.randint(0, 2**31 - 1, ()).item())
