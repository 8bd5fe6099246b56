"""FID, KID, Inception Score and precision/recall from one feature pass per validation.

Protocol (see :mod:`gan_lightning.metrics`): torch-fidelity's ``inception-v3-compat``
network with its TensorFlow-1-compatible bilinear resize, generated images quantized to uint8
exactly as a saved PNG, pool features for FID/KID/precision-recall and unbiased logits for IS.
Papers: Heusel et al. arXiv:1706.08500 (FID), Binkowski et al. arXiv:1801.01401 (KID),
Salimans et al. arXiv:1606.03498 (IS), Kynkaanniemi et al. arXiv:1904.06991 (precision and
recall).

Differences from the protocol of most published tables:

- Defaults are 2,048 real and 2,048 generated images, not 50,000: values are comparable
  between runs with the same counts, not with published numbers.
- Real images are the first ``num_real`` items of the validation dataset, not the training set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from gan_lightning.callbacks.logging_utils import log_evaluation
from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.evaluator import Evaluator
from gan_lightning.metrics.features import INCEPTION, POOL
from gan_lightning.metrics.real import (
    cache_file,
    check_images,
    load_cached,
    real_image_batches,
    resolve_cache_dir,
    save_cached,
)
from gan_lightning.metrics.scores import FeatureSet


def split_range(total: int, world_size: int, rank: int) -> tuple[int, int]:
    """This rank's contiguous block ``[start, stop)`` of ``total`` items.

    Blocks follow rank order and differ in size by at most one (the remainder goes to the
    lowest ranks), so concatenating the blocks of all ranks restores the global order.
    """
    base, remainder = divmod(total, world_size)
    start = rank * base + min(rank, remainder)
    return start, start + base + (1 if rank < remainder else 0)


def gather_rows(trainer: pl.Trainer, rows: Tensor, total: int) -> Tensor:
    """Every rank's block of ``total`` rows (:func:`split_range`) in global order, on all ranks.

    Blocks are padded to equal length for the collective and trimmed afterwards.
    """
    world = trainer.world_size
    if world == 1:
        return rows
    sizes = [stop - start for start, stop in (split_range(total, world, r) for r in range(world))]
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    gathered = trainer.strategy.all_gather(padded)
    return torch.cat([gathered[rank, :size] for rank, size in enumerate(sizes)])


class Metrics(pl.Callback):
    """Log FID, KID, IS and precision/recall of generated images after every validation epoch.

    Each evaluation generates ``num_fake`` images from fixed latents (drawn once from
    ``seed``), passes them through the feature extractor once and computes every requested
    metric from those features. Real features are the first ``num_real`` items of the first
    validation loader's dataset, extracted once per dataset and protocol and cached in
    ``cache_dir`` under a key made of the data module's ``cache_key`` (dataset, image size,
    transform, split), ``num_real``, the extractor and the SHA-256 of its weights; later runs
    and resumed runs load them instead of extracting again. Without a data module that has a
    ``cache_key``, real features are kept in memory for the callback's lifetime only.

    Under DDP every rank extracts a contiguous block of the real and generated images; the
    features are all-gathered in global order, so every rank computes the values of a
    single-process run on the same images, and logs them (``sync_dist`` over identical
    values). The model must provide ``sample_latent(n, generator)`` and ``generate(z)``.

    Logged keys (``log_prefix`` + name): ``fid``; ``kid_mean``, ``kid_std``,
    ``kid_subset_size``; ``is_mean``, ``is_std``; ``precision``, ``recall``. The protocol is
    written to ``<log_dir>/metrics_protocol.json`` and every evaluation appended to
    ``<log_dir>/metrics.jsonl`` (rank 0).

    Args:
        metrics: Any of ``fid``, ``kid``, ``is``, ``pr``. IS needs Inception weights with the
            classifier head (torch-fidelity's download has it; the FID-only file does not).
        num_real: Real images (>= 2, >= number of processes); fewer in the dataset: all are
            used, with a warning.
        num_fake: Generated images per evaluation (>= 2, >= number of processes).
        batch_size: Images generated and passed through the extractor at once (>= 1).
        feature_extractor: torch-fidelity extractor name; ``inception-v3-compat`` is the
            paper protocol, ``clip-vit-b-32`` or ``dinov2-vit-s-14`` (downloaded by
            torch-fidelity) are alternatives for FID/KID/PR.
        weights_path: Extractor weights; None: ``$GAN_LIGHTNING_FID_WEIGHTS`` (Inception),
            then torch-fidelity's download into the torch.hub cache.
        cache_dir: Folder of cached real features; None: ``$GAN_LIGHTNING_CACHE_DIR``, then
            ``~/.cache/gan-lightning``.
        seed: Seed of the generated latents (>= 0); the same latents every evaluation.
        kid_subsets: KID subsets (>= 1).
        kid_subset_size: Samples per KID subset (>= 2); clamped to the smaller set, logged.
        isc_splits: IS splits (1 to ``num_fake``).
        prc_neighborhood: k of the k-NN radius for precision/recall (>= 1).
        metric_seed: Seed of KID's subsets and IS's shuffle (torch-fidelity's default 2020).
        log_prefix: Prefix of the logged keys.
    """

    def __init__(
        self,
        metrics: list[str] | None = None,
        num_real: int = 2048,
        num_fake: int = 2048,
        batch_size: int = 64,
        feature_extractor: str = INCEPTION,
        weights_path: str | None = None,
        cache_dir: str | None = None,
        seed: int = 1234,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        isc_splits: int = 10,
        prc_neighborhood: int = 3,
        metric_seed: int = 2020,
        log_prefix: str = "val/",
    ) -> None:
        super().__init__()
        self.evaluator = Evaluator(
            ["fid", "kid", "pr"] if metrics is None else metrics,
            feature_extractor,
            weights_path,
            batch_size,
            kid_subsets,
            kid_subset_size,
            isc_splits,
            prc_neighborhood,
            metric_seed,
            owner="Metrics",
        )
        if seed < 0:
            raise ConfigurationError(f"Metrics.seed must be at least 0, got {seed}.")
        self.evaluator.check_counts(num_real, num_fake)
        self.num_real = num_real
        self.num_fake = num_fake
        self.cache_dir = cache_dir
        self.seed = seed
        self.log_prefix = log_prefix
        self.real: FeatureSet | None = None
        self.last_results: dict[str, float] = {}
        self._latents: Tensor | None = None
        self._log_dir: Path | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in ("fit", "validate"):
            return
        for name, value in (("num_fake", self.num_fake), ("num_real", self.num_real)):
            if value < trainer.world_size:
                raise ConfigurationError(
                    f"Metrics.{name} must be at least the number of processes "
                    f"({trainer.world_size}), got {value}."
                )
        shape = _sample_shape(trainer)
        if shape is not None and len(shape) != 3:
            raise ConfigurationError(
                f"Metrics measures images, but the data module yields samples of shape "
                f"{tuple(shape)}. Use gan_lightning.callbacks.ModeCoverage for 2-D points."
            )
        self.evaluator.build("cpu")
        # trainer.log_dir broadcasts from rank 0, so every rank asks for it here.
        log_dir = trainer.log_dir
        self._log_dir = Path(log_dir if log_dir is not None else trainer.default_root_dir)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            if trainer.fast_dev_run:
                rank_zero_info("Metrics are not computed under fast_dev_run.")
            return
        self.evaluator.build(pl_module.device)
        if self.real is None:
            self.real = self._real_features(trainer)
        fake = self._fake_features(trainer, pl_module)
        self.last_results = self.evaluator.compute(self.real, fake)
        log_evaluation(pl_module, {self.log_prefix + k: v for k, v in self.last_results.items()})
        self._write_records(trainer)

    # ------------------------------------------------------------------------- real side

    def _real_features(self, trainer: pl.Trainer) -> FeatureSet:
        """Load the real features from the cache, or extract them (collectively) and cache."""
        dataset = _validation_dataset(trainer)
        count = min(self.num_real, len(dataset))
        if count < self.num_real:
            rank_zero_warn(
                f"Metrics: the validation dataset has only {count} items, fewer than "
                f"num_real={self.num_real}; the metrics use all {count}. Lower num_real to make "
                "the protocol explicit."
            )
        dataset_key = getattr(getattr(trainer, "datamodule", None), "cache_key", None)
        path = key = None
        if dataset_key is not None:
            key = self.evaluator.cache_key(dataset_key, "val", count)
            path = cache_file(resolve_cache_dir(self.cache_dir), key)
            cached = load_cached(path, key)
            # Every rank must take the same branch, or the collectives below would hang.
            found = torch.tensor([cached is not None], device=trainer.strategy.root_device)
            if bool(trainer.strategy.all_gather(found).all()):
                rank_zero_info(f"Metrics: real features loaded from {path}")
                return FeatureSet(cached[0].to(trainer.strategy.root_device), cached[1])
        else:
            rank_zero_info(
                "Metrics: the data module has no cache_key, so real features are kept in "
                "memory for this run only."
            )

        start, stop = split_range(count, trainer.world_size, trainer.global_rank)
        features, labels = [], []
        for images, batch_labels in real_image_batches(
            dataset, start, stop, self.evaluator.batch_size
        ):
            check_images(images, "Metrics")
            features.append(self.evaluator.extract([images])[POOL])
            labels.append(batch_labels)
        pool = gather_rows(trainer, torch.cat(features), count)
        all_labels = None
        if all(part is not None for part in labels):
            local = torch.cat(labels).to(pool.device)
            all_labels = gather_rows(trainer, local, count).cpu()
        if path is not None and trainer.is_global_zero:
            save_cached(path, key, pool, all_labels)
            rank_zero_info(f"Metrics: real features of {count} images cached in {path}")
        return FeatureSet(pool, all_labels)

    # ------------------------------------------------------------------------- fake side

    def _fake_features(self, trainer: pl.Trainer, pl_module: pl.LightningModule):
        """Generate this rank's block of the fixed latents and gather every rank's features."""
        if self._latents is None:
            generator = torch.Generator().manual_seed(self.seed)
            self._latents = pl_module.sample_latent(self.num_fake, generator=generator).cpu()
        start, stop = split_range(self.num_fake, trainer.world_size, trainer.global_rank)
        latents = self._latents[start:stop].to(pl_module.device)
        chunks = latents.split(self.evaluator.batch_size)
        batches = (pl_module.generate(chunk) for chunk in chunks)
        features = self.evaluator.extract(_checked(batches))
        return {name: gather_rows(trainer, rows, self.num_fake) for name, rows in features.items()}

    # ------------------------------------------------------------------------- records

    def _write_records(self, trainer: pl.Trainer) -> None:
        """The protocol file and TensorBoard text once, then one JSON line per evaluation."""
        if not trainer.is_global_zero or self._log_dir is None:
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        protocol_path = self._log_dir / "metrics_protocol.json"
        if not protocol_path.exists():
            protocol_path.write_text(json.dumps(self.protocol(), indent=2) + "\n")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    text = json.dumps(self.protocol(), indent=2).replace("\n", "  \n")
                    logger.experiment.add_text("metrics/protocol", text, trainer.global_step)
        record = {"step": trainer.global_step, **self.last_results}
        with open(self._log_dir / "metrics.jsonl", "a") as file:
            file.write(json.dumps(record) + "\n")

    def protocol(self) -> dict[str, Any]:
        """What the logged values mean: counts, split, generator and extractor settings."""
        return {
            **self.evaluator.protocol(),
            "num_real": self.num_real if self.real is None else len(self.real),
            "real_split": "validation dataset, first num_real items",
            "num_fake": self.num_fake,
            "generator": "pl_module.generate (the EMA generator once it has started)",
            "latent_seed": self.seed,
        }


def _sample_shape(trainer: pl.Trainer) -> tuple[int, ...] | None:
    """The data module's ``sample_shape``, or None without a data module that declares one."""
    try:
        return tuple(trainer.datamodule.sample_shape)
    except (AttributeError, NotImplementedError):
        return None


def _checked(batches):
    for images in batches:
        check_images(images, "Metrics")
        yield images


def _validation_dataset(trainer: pl.Trainer) -> Any:
    """The dataset of the first validation loader."""
    loaders = trainer.val_dataloaders
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    dataset = getattr(loaders, "dataset", None)
    if dataset is None:
        raise ConfigurationError(
            "Metrics needs a validation loader with a dataset for its real images; got "
            f"{type(loaders).__name__}. Give the data module a validation split."
        )
    return dataset
