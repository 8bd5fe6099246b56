"""Fréchet Inception Distance of generated samples, measured on the validation loop.

Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", arXiv:1706.08500. Features are the 2048-d pool features of the TensorFlow
Inception-v3 graph of 2015-12-05, computed by torchmetrics' ``FrechetInceptionDistance`` on top
of torch-fidelity's port, so the values match ``torch_fidelity.calculate_metrics(fid=True)``.

Differences from the protocol of the paper and of most published tables:

- Sample counts default to 2,048 real and 2,048 generated images, not 50,000: the value is
  comparable between runs of this project with the same counts, not with published numbers.
- Real statistics come from the validation split (the first ``num_real`` images the validation
  loader yields), not from the training set.
- Generated images are quantized to uint8 exactly as a saved PNG (``to_uint8``) and grayscale
  images are repeated to three channels before the network sees them.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torchmetrics.image.fid import FrechetInceptionDistance

from gan_lightning.callbacks.logging_utils import log_evaluation
from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_rgb, to_uint8
from gan_lightning.metrics.weights import (
    FIX_HINT,
    WEIGHTS_ENV_VAR,
    check_weights_file,
    download_cache_path,
    resolve_weights_path,
)

# Weights resolution is shared with the Metrics callback; the names stay importable from here.
_FIX_HINT = FIX_HINT
__all__ = [
    "FID",
    "WEIGHTS_ENV_VAR",
    "FrechetInceptionDistanceCallback",
    "build_fid_metric",
    "check_weights_file",
    "resolve_weights_path",
    "split_count",
    "to_fid_input",
]


def to_fid_input(images: Tensor) -> Tensor:
    """Convert images to what the FID metric takes: the pixels a saved PNG would hold, as RGB.

    Args:
        images: ``(N, C, H, W)`` in [-1, 1] with C = 1 or 3, any float dtype and device.

    Returns:
        ``(N, 3, H, W)`` uint8 in [0, 255] on the same device; one channel is repeated to three.
    """
    return to_rgb(to_uint8(images))


def split_count(total: int, world_size: int, rank: int) -> int:
    """This rank's share of ``total`` items split across ``world_size`` ranks.

    Every rank gets ``total // world_size`` items; the remainder goes one each to the lowest ranks.
    """
    base, remainder = divmod(total, world_size)
    return base + (1 if rank < remainder else 0)


def build_fid_metric(weights_path: str | None) -> FrechetInceptionDistance:
    """The FID metric with the TF1-compatible resize, keeping real statistics across resets.

    Args:
        weights_path: Inception weights file; None means ``GAN_LIGHTNING_FID_WEIGHTS``, and if
            that is unset too, torchmetrics' download into the torch.hub cache.

    Raises:
        ConfigurationError: The file is missing, unreadable or of another layout, or the
            download failed; the message names the path and how to provide the weights.
    """
    path, source = resolve_weights_path(weights_path)
    if path is not None:
        check_weights_file(path, source)
    try:
        # antialias=False selects torch-fidelity's TF1-compatible bilinear resize to 299x299.
        return FrechetInceptionDistance(
            feature=2048,
            reset_real_features=False,
            normalize=False,
            feature_extractor_weights_path=None if path is None else str(path),
            antialias=False,
        )
    except Exception as err:  # Download and state-dict errors come in many types.
        if path is not None:
            raise ConfigurationError(
                f"FID Inception weights file {str(path)!r} (from {source}) does not fit "
                f"torch-fidelity's Inception-v3 ({type(err).__name__}: {err}). {_FIX_HINT}"
            ) from err
        raise ConfigurationError(
            "could not get the FID Inception weights through torchmetrics' default download "
            f"({type(err).__name__}: {err}). Put the file at {str(download_cache_path())!r}, "
            f"or anywhere else and point to it: {_FIX_HINT}"
        ) from err


class FrechetInceptionDistanceCallback(pl.Callback):
    """Log the FID between generated and validation images after every validation epoch.

    Real statistics: the first ``num_real`` images of the validation loader (split across ranks)
    are added during the first validation epoch that is not a sanity check, then kept for the
    rest of the run and never recomputed. Generated statistics: ``num_fake`` images from
    ``pl_module.generate`` with latents from ``pl_module.sample_latent`` drawn with a
    ``torch.Generator`` seeded with ``seed + global_rank``, so every validation scores the same
    latents. Both go through :func:`to_fid_input` (uint8 as in a PNG, grayscale repeated to RGB);
    the metric resizes to 299x299 with torch-fidelity's TensorFlow-1-compatible bilinear
    interpolation (torchmetrics' ``antialias`` is set to False) and extracts the 2048-d pool
    features in float32, accumulating statistics in float64.

    Under DDP every rank adds its share of real and generated images (remainders to the low
    ranks); torchmetrics sums the statistics across ranks at ``compute``, so every rank computes
    and logs the same value. The metric lives on ``pl_module.device`` but is an attribute of this
    callback, so it never enters the model's ``state_dict`` or checkpoints. The weights file is
    resolved and loaded in ``setup``, before any training step. The model must provide
    ``sample_latent(n, generator)`` and ``generate(z)``; only the first validation loader is used.

    Args:
        num_real: Real images for the statistics (>= 2), over all ranks. If the validation loader
            yields fewer, all of them are used and a warning is logged once.
        num_fake: Generated images per validation (>= 2 and >= the number of ranks).
        batch_size: Images generated and passed through Inception at once (>= 1).
        weights_path: Inception weights (torch-fidelity's ``inception-v3-compat`` state dict).
            None: the environment variable ``GAN_LIGHTNING_FID_WEIGHTS``, and if that is unset,
            torchmetrics' download into the torch.hub cache (needs internet once).
        seed: Seed of the generated latents (>= 0); rank r uses ``seed + r``.
        log_name: Key the value is logged under; name the protocol if you change the counts.
    """

    def __init__(
        self,
        num_real: int = 2048,
        num_fake: int = 2048,
        batch_size: int = 100,
        weights_path: str | None = None,
        seed: int = 1234,
        log_name: str = "val/fid",
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("num_real", num_real, 2),
            ("num_fake", num_fake, 2),
            ("batch_size", batch_size, 1),
            ("seed", seed, 0),
        ):
            if value < minimum:
                raise ConfigurationError(
                    f"FrechetInceptionDistanceCallback.{name} must be at least {minimum}, "
                    f"got {value}."
                )
        if not log_name:
            raise ConfigurationError(
                "FrechetInceptionDistanceCallback.log_name must be a non-empty key such as "
                "'val/fid', got ''."
            )
        self.num_real = num_real
        self.num_fake = num_fake
        self.batch_size = batch_size
        self.weights_path = weights_path
        self.seed = seed
        self.log_name = log_name
        self.metric: FrechetInceptionDistance | None = None
        self.real_complete = False
        self._real_added = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        if self.num_fake < trainer.world_size:
            raise ConfigurationError(
                f"FrechetInceptionDistanceCallback.num_fake must be at least the number of "
                f"processes ({trainer.world_size}), got {self.num_fake}."
            )
        shape = getattr(getattr(trainer, "datamodule", None), "sample_shape", None)
        if shape is not None and len(shape) != 3:
            raise ConfigurationError(
                f"FID measures images, but the data module yields samples of shape "
                f"{tuple(shape)}. Use gan_lightning.callbacks.ModeCoverage for 2-D points."
            )
        if self.metric is None:
            self.metric = build_fid_metric(self.weights_path)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._require_metric().to(pl_module.device)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if _skipped(trainer) or self.real_complete or dataloader_idx != 0:
            return
        wanted = split_count(self.num_real, trainer.world_size, trainer.global_rank)
        remaining = wanted - self._real_added
        if remaining <= 0:
            return

        # Batches are images or (images, labels, ...); take at most what is still missing.
        images = _batch_images(batch)[:remaining]
        self._require_metric().update(to_fid_input(images), real=True)
        self._real_added += images.shape[0]

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if _skipped(trainer):
            if trainer.fast_dev_run:
                rank_zero_info(f"{self.log_name} is not computed under fast_dev_run.")
            return
        metric = self._require_metric()
        if not self.real_complete:
            self._finish_real(trainer)

        # Same latents every validation: a fresh generator seeded per rank.
        count = split_count(self.num_fake, trainer.world_size, trainer.global_rank)
        generator = torch.Generator().manual_seed(self.seed + trainer.global_rank)
        latents = pl_module.sample_latent(count, generator=generator)
        for chunk in latents.split(self.batch_size):
            metric.update(to_fid_input(pl_module.generate(chunk)), real=False)

        # compute() sums the statistics over ranks, so every rank gets and logs the same value;
        # sync_dist only averages identical scalars and keeps Lightning from warning.
        value = metric.compute()
        log_evaluation(pl_module, {self.log_name: value})
        metric.reset()  # Drops the generated statistics only (reset_real_features=False).

    def _finish_real(self, trainer: pl.Trainer) -> None:
        """Freeze the real statistics after the first validation epoch; warn if they are few."""
        self.real_complete = True
        wanted = split_count(self.num_real, trainer.world_size, trainer.global_rank)
        if self._real_added == 0:
            raise ConfigurationError(
                "FrechetInceptionDistanceCallback got no real images: the validation loader "
                f"yielded no batches on rank {trainer.global_rank}. Give the data module a "
                "validation split, or check limit_val_batches."
            )
        if self._real_added < wanted:
            rank_zero_warn(
                f"FrechetInceptionDistanceCallback: the validation loader yielded only "
                f"{self._real_added} images per process, fewer than num_real={self.num_real} asks "
                f"for ({wanted}); {self.log_name} uses the real images available. Lower num_real "
                "to make the protocol explicit."
            )

    def _require_metric(self) -> FrechetInceptionDistance:
        assert self.metric is not None, "setup() builds the metric before validation starts"
        return self.metric


def _batch_images(batch: object) -> Tensor:
    """The image tensor of a validation batch: the batch itself or its first element."""
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ConfigurationError(
            "FrechetInceptionDistanceCallback expects validation batches of images "
            "(N, C, H, W) in [-1, 1] with C = 1 or 3, or a tuple/list whose first element is "
            f"such a tensor; got {got}. Use a data module that yields (images, labels)."
        )
    return images


FID = FrechetInceptionDistanceCallback
"""Short alias, e.g. ``class_path: gan_lightning.callbacks.FID`` in a config."""


def _skipped(trainer: pl.Trainer) -> bool:
    """No FID during the sanity check or a fast_dev_run smoke test (like Lightning's loggers)."""
    return bool(trainer.sanity_checking or trainer.fast_dev_run)
