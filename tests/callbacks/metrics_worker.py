"""Stand-ins for the Metrics tests, also run as a script for the DDP comparison.

    python metrics_worker.py OUT_DIR WEIGHTS CACHE_DIR DEVICES

validates a :class:`BankGAN` with the ``Metrics`` callback on ``DEVICES`` CPU processes
(gloo) and writes each rank's results to ``OUT_DIR/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from gan_lightning.callbacks import Metrics
from gan_lightning.data.digits import load_digits_tensors

NUM_REAL = 16
NUM_FAKE = 16
BATCH = 4
SEED = 7
OPTIONS = {"kid_subsets": 10, "kid_subset_size": 10, "isc_splits": 4, "prc_neighborhood": 3}


def real_and_bank() -> tuple[Tensor, Tensor, Tensor]:
    """Real 8x8 digits with labels, and a bank of 12 other digits plus 12 noise images."""
    images, labels = load_digits_tensors(8)
    noise = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return images[:NUM_REAL], labels[:NUM_REAL], torch.cat([images[100:112], noise])


class BankGAN(pl.LightningModule):
    """A 'generator' that returns images of a fixed bank: latent ``z`` picks ``bank[z]``."""

    def __init__(self, bank: Tensor) -> None:
        super().__init__()
        self.register_buffer("bank", bank)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(len(self.bank), (n, 1), generator=generator).float().to(self.device)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        return self.bank[z[:, 0].long()]

    def validation_step(self, batch: object, batch_idx: int) -> None:
        return None

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


class BankData(pl.LightningDataModule):
    """Real images as a validation set, with a ``cache_key`` for the real-feature cache."""

    def __init__(self, images: Tensor, labels: Tensor, key: str = "bank-digits-8") -> None:
        super().__init__()
        self.images, self.labels, self.key = images, labels, key

    @property
    def cache_key(self) -> str:
        return self.key

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.images, self.labels), batch_size=BATCH)


def fake_images(model: BankGAN, num: int = NUM_FAKE, seed: int = SEED) -> Tensor:
    """The images the callback generates: its latents come from ``seed``."""
    return model.generate(model.sample_latent(num, generator=torch.Generator().manual_seed(seed)))


def make_callback(weights: str, cache_dir: str, **overrides: object) -> Metrics:
    options = {
        "metrics": ["fid", "kid", "is", "pr"],
        "num_real": NUM_REAL,
        "num_fake": NUM_FAKE,
        "batch_size": BATCH,
        "weights_path": weights,
        "cache_dir": cache_dir,
        "seed": SEED,
        **OPTIONS,
    }
    options.update(overrides)
    return Metrics(**options)


def main(out_dir: str, weights: str, cache_dir: str, devices: int) -> None:
    real, labels, bank = real_and_bank()
    callback = make_callback(weights, cache_dir)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir,
        callbacks=[callback],
    )
    trainer.validate(BankGAN(bank), datamodule=BankData(real, labels), verbose=False)
    record = {
        "results": callback.last_results,
        "world_size": trainer.world_size,
        "real_count": len(callback.real),
        "real_labels": callback.real.labels.tolist(),
        "images_seen": callback.evaluator.extractor.images_seen,
    }
    path = Path(out_dir) / f"rank{trainer.global_rank}.json"
    path.write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
