"""Mode coverage of a 2-D Gaussian mixture or of stacked digits, after every validation.

Protocol of PacGAN (Lin et al., arXiv:1712.04086) after VEEGAN (Srivastava et al.,
arXiv:1705.07761), and for stacked digits after Metz et al., "Unrolled Generative Adversarial
Networks", arXiv:1611.02163; see :mod:`gan_lightning.metrics.coverage` for the definitions.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from gan_lightning.callbacks.logging_utils import log_evaluation
from gan_lightning.data.stacked import StackedDigitsDataModule
from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.coverage import label_coverage, mixture_coverage, scatter_plot
from gan_lightning.metrics.digit_classifier import (
    DigitClassifier,
    classify_stacked,
    load_digit_classifier,
)

# Samples per evaluation when num_samples is None: PacGAN's 2,500 points for the 2-D
# mixtures; 25,600 images for stacked digits (about 26 per mode, as in the stacked-MNIST
# papers), so that a generator covering all 1,000 modes evenly is seen to cover them.
DEFAULT_NUM_SAMPLES = {"mixture": 2500, "stacked": 25_600}


class ModeCoverage(pl.Callback):
    """Log how many modes of a known mixture the generator reaches, and how evenly.

    After every validation epoch (not the sanity check, not under ``fast_dev_run``) the model
    generates ``num_samples`` samples from fixed latents drawn once from ``seed``. Every rank
    computes the same values from the same latents, with no collective operation. Values are
    logged through the model's ``log_at_step`` when it has one (x = completed training steps,
    like the losses), else through ``self.log``. Keys (``log_prefix`` +) depend on the data:

    - :class:`~gan_lightning.data.GaussianMixtureDataModule` (2-D points; any data module
      with ``modes`` and ``mode_std``): each point is assigned to its nearest mode.
      ``modes_covered`` (0..K), ``high_quality_pct`` (0..100, within 3 std of the nearest
      mode) and ``reverse_kl`` (nats, histogram of nearest modes against the uniform mode
      weights). Rank 0 also writes ``<log_dir>/<dirname>/step_XXXXXX.png`` (real validation
      points in blue, generated in red, modes as black crosses) and sends it to TensorBoard
      or W&B.
    - :class:`~gan_lightning.data.StackedDigitsDataModule` (images ``(N, 3, S, S)``): each
      channel is labelled by the cached digit classifier
      (:mod:`gan_lightning.metrics.digit_classifier`, trained on first use), giving a mode
      ``100 d0 + 10 d1 + d2``. ``modes_covered`` (0..1000) and ``kl_to_uniform`` (nats,
      histogram of predicted modes against the uniform weights). No plot is written.

    The model must provide ``sample_latent(n, generator)`` and ``generate(z)``.

    Args:
        num_samples: Generated samples per evaluation (>= 1); None: 2,500 points for a 2-D
            mixture (PacGAN's protocol) and 25,600 images for stacked digits (about 26 per
            mode, as in the stacked-MNIST papers).
        batch_size: Samples generated (and classified) at once (>= 1).
        seed: Seed of the fixed latents (>= 0).
        plot_points: Real and generated points drawn in the plot (>= 0; 0 writes no plot);
            2-D mixtures only.
        dirname: Folder of the plots, relative to the log folder.
        log_prefix: Prefix of the logged keys.
        cache_dir: Folder of the cached digit classifier (stacked digits only); None:
            ``$GAN_LIGHTNING_CACHE_DIR``, else ``~/.cache/gan-lightning``.
    """

    def __init__(
        self,
        num_samples: int | None = None,
        batch_size: int = 2500,
        seed: int = 0,
        plot_points: int = 2500,
        dirname: str = "coverage",
        log_prefix: str = "val/",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("num_samples", 1 if num_samples is None else num_samples, 1),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
            ("plot_points", plot_points, 0),
        ):
            if value < minimum:
                raise ConfigurationError(
                    f"ModeCoverage.{name} must be at least {minimum}, got {value}."
                )
        if not dirname or Path(dirname).is_absolute():
            raise ConfigurationError(
                "ModeCoverage.dirname must be a non-empty folder name relative to the log "
                f"folder, such as 'coverage', got {dirname!r}."
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.plot_points = plot_points
        self.dirname = dirname
        self.log_prefix = log_prefix
        self.cache_dir = cache_dir
        # The resolved num_samples; setup() sets it from the kind of data.
        self.sample_count = DEFAULT_NUM_SAMPLES["mixture"] if num_samples is None else num_samples
        self.last_results: dict[str, float] = {}
        self.dirpath: Path | None = None
        self.classifier_accuracy: float | None = None
        self._latents: Tensor | None = None
        self._classifier: DigitClassifier | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        datamodule = getattr(trainer, "datamodule", None)
        stacked = isinstance(datamodule, StackedDigitsDataModule)
        if not stacked and not (hasattr(datamodule, "modes") and hasattr(datamodule, "mode_std")):
            raise ConfigurationError(
                "ModeCoverage needs a data module with known modes: a 2-D mixture (modes and "
                "mode_std, such as gan_lightning.data.GaussianMixtureDataModule) or "
                "gan_lightning.data.StackedDigitsDataModule; got "
                f"{type(datamodule).__name__}. Remove ModeCoverage or change the data."
            )
        default = DEFAULT_NUM_SAMPLES["stacked" if stacked else "mixture"]
        self.sample_count = default if self.num_samples is None else self.num_samples
        if self._latents is not None and len(self._latents) != self.sample_count:
            self._latents = None
        # trainer.log_dir broadcasts from rank 0, so every rank asks for it here.
        log_dir = trainer.log_dir
        self.dirpath = Path(log_dir if log_dir is not None else trainer.default_root_dir)
        self.dirpath = self.dirpath / self.dirname

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            if trainer.fast_dev_run:
                rank_zero_info("ModeCoverage is not computed under fast_dev_run.")
            return
        datamodule = trainer.datamodule
        if isinstance(datamodule, StackedDigitsDataModule):
            modes = self.classify_samples(pl_module, datamodule)
            coverage = label_coverage(modes, datamodule.num_modes)
            self.last_results = {
                "modes_covered": coverage["modes_covered"],
                "kl_to_uniform": coverage["kl_uniform"],
            }
            self._log(pl_module)
            return
        points = self.generate_points(pl_module)
        self.last_results = mixture_coverage(points, datamodule.modes, datamodule.mode_std)
        self._log(pl_module)
        if trainer.is_global_zero and self.plot_points > 0:
            self._plot(trainer, datamodule, points)

    def _log(self, pl_module: pl.LightningModule) -> None:
        """Log :attr:`last_results` at x = global_step (``log_at_step``), else ``self.log``."""
        values = {self.log_prefix + name: value for name, value in self.last_results.items()}
        log_evaluation(pl_module, values)

    def _fixed_latents(self, pl_module: pl.LightningModule) -> Tensor:
        """The ``sample_count`` latents drawn once from ``seed``, on the CPU."""
        if self._latents is None:
            generator = torch.Generator().manual_seed(self.seed)
            latents = pl_module.sample_latent(self.sample_count, generator=generator)
            self._latents = latents.cpu()
        return self._latents

    def generate_points(self, pl_module: pl.LightningModule) -> Tensor:
        """The ``(num_samples, 2)`` points of the fixed latents, on the CPU."""
        chunks = self._fixed_latents(pl_module).to(pl_module.device).split(self.batch_size)
        points = torch.cat([pl_module.generate(chunk) for chunk in chunks]).cpu()
        if points.ndim != 2 or points.shape[1] != 2:
            raise ConfigurationError(
                f"ModeCoverage expects the generator to return 2-D points (N, 2), got shape "
                f"{tuple(points.shape)}. Use it with the ring and grid mixtures only."
            )
        return points

    def classify_samples(
        self, pl_module: pl.LightningModule, datamodule: StackedDigitsDataModule
    ) -> Tensor:
        """The predicted modes ``(num_samples,)`` in 0..999 of the fixed latents' images.

        Images are classified batch by batch, so only ``batch_size`` of them are in memory.
        """
        if self._classifier is None:
            size = datamodule.image_size
            self._classifier, self.classifier_accuracy = load_digit_classifier(size, self.cache_dir)
            rank_zero_info(
                f"ModeCoverage: digit classifier for {size}x{size} digits, held-out accuracy "
                f"{self.classifier_accuracy:.2%}."
            )
        modes = []
        for chunk in self._fixed_latents(pl_module).split(self.batch_size):
            images = pl_module.generate(chunk.to(pl_module.device))
            if tuple(images.shape[1:]) != datamodule.sample_shape:
                raise ConfigurationError(
                    "ModeCoverage on stacked digits expects generated images of shape "
                    f"(N, {', '.join(map(str, datamodule.sample_shape))}) like the data, got "
                    f"{tuple(images.shape)}. Set the generator's channels to 3 and its "
                    "image_size to data.image_size."
                )
            modes.append(classify_stacked(images, self._classifier).cpu())
        return torch.cat(modes)

    def _plot(self, trainer: pl.Trainer, datamodule: object, points: Tensor) -> None:
        assert self.dirpath is not None, "setup() sets the folder before validation"
        real = datamodule.val_set.tensors[0][: self.plot_points]
        image = scatter_plot(real, points[: self.plot_points], datamodule.modes)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        image.save(self.dirpath / f"step_{trainer.global_step:06d}.png")
        pixels = np.array(image)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                grid = torch.from_numpy(pixels).permute(2, 0, 1)
                logger.experiment.add_image("coverage", grid, global_step=trainer.global_step)
            elif isinstance(logger, WandbLogger):
                logger.log_image(key="coverage", images=[pixels], step=trainer.global_step)
