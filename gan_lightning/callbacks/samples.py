"""A grid of samples from fixed latents, saved as PNG and sent to the logger during training."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid

from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_uint8


class SampleGrid(pl.Callback):
    """Save and log a grid of generated images from the same latents throughout training.

    The latents are drawn once from ``seed``, so grids of different steps (and of runs with the
    same seed and latent size) show the same samples. Each grid is written to
    ``<log_dir>/<dirname>/step_{global_step:06d}.png``, where ``log_dir`` is ``trainer.log_dir``
    (the logger's folder, or ``default_root_dir`` without a logger). Its pixels are exactly
    ``make_grid(to_uint8(pl_module.generate(z)), nrow)``. The grid also goes to
    TensorBoard (``add_image("samples", ...)``) and Weights & Biases (``log_image(key="samples")``);
    other loggers only get the file.

    A grid is made when ``global_step`` reaches a new multiple of ``every_n_steps`` (with a GAN
    that steps several optimizers per batch, ``global_step`` can jump past the exact multiple)
    and once more at the end of training, unless that step already has one. Only global rank 0
    generates and writes; ``pl_module.generate`` must therefore not run collective operations.
    The model must provide ``sample_latent(n, generator)`` and ``generate(z)``.

    Args:
        num_samples: Images in the grid (>= 1).
        nrow: Images per grid row (>= 1); None means ``ceil(sqrt(num_samples))``, a square grid.
        every_n_steps: Interval in optimizer steps (``trainer.global_step``) between grids (>= 1).
        seed: Seed of the fixed latents (>= 0).
        dirname: Folder for the PNG files, relative to the log folder; must not be absolute.
    """

    def __init__(
        self,
        num_samples: int = 64,
        nrow: int | None = None,
        every_n_steps: int = 500,
        seed: int = 0,
        dirname: str = "samples",
    ) -> None:
        super().__init__()
        checks = [("num_samples", num_samples, 1), ("every_n_steps", every_n_steps, 1)]
        checks += [("seed", seed, 0)] + ([("nrow", nrow, 1)] if nrow is not None else [])
        for name, value, minimum in checks:
            if value < minimum:
                raise ConfigurationError(
                    f"SampleGrid.{name} must be at least {minimum}, got {value}."
                )
        if not dirname or Path(dirname).is_absolute():
            raise ConfigurationError(
                "SampleGrid.dirname must be a non-empty folder name relative to the log folder, "
                f"such as 'samples', got {dirname!r}."
            )
        self.num_samples = num_samples
        self.nrow = nrow if nrow is not None else math.ceil(math.sqrt(num_samples))
        self.every_n_steps = every_n_steps
        self.seed = seed
        self.dirname = dirname
        self.dirpath: Path | None = None
        self._latents: Tensor | None = None
        self._last_step = 0
        self._last_written: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # trainer.log_dir broadcasts from rank 0, so every rank has to ask for it here.
        log_dir = trainer.log_dir
        self.dirpath = Path(log_dir if log_dir is not None else trainer.default_root_dir)
        self.dirpath = self.dirpath / self.dirname

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After a resume, count the interval from the restored step.
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step
        if step // self.every_n_steps > self._last_step // self.every_n_steps:
            self._save(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_written:
            self._save(trainer, pl_module)

    def render_grid(self, pl_module: pl.LightningModule) -> Tensor:
        """The current grid: uint8 ``(3, H, W)`` on the CPU, from the fixed latents."""
        if self._latents is None:
            generator = torch.Generator().manual_seed(self.seed)
            self._latents = pl_module.sample_latent(self.num_samples, generator=generator)
        images = pl_module.generate(self._latents.to(pl_module.device))
        return make_grid(to_uint8(images), nrow=self.nrow).cpu()

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the grid of the current step and send it to the loggers (rank 0 only)."""
        step = trainer.global_step
        self._last_step = step
        self._last_written = step
        if not trainer.is_global_zero:
            return
        assert self.dirpath is not None, "setup() sets the folder before training starts"

        grid = self.render_grid(pl_module)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        pixels = grid.permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(self.dirpath / f"step_{step:06d}.png")

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[pixels], step=step)
