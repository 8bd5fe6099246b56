"""One evaluation protocol shared by the metrics callback and ``gan-lightning evaluate``.

Generated images pass through the feature extractor once; FID, KID, IS and precision/recall
all read those features. Real features come from a cache on disk when available.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics.features import (
    INCEPTION,
    LOGITS,
    POOL,
    FeatureExtractor,
    check_extractor_name,
)
from gan_lightning.metrics.real import CACHE_FORMAT
from gan_lightning.metrics.scores import (
    FeatureSet,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

METRICS = ("fid", "kid", "is", "pr")
"""Metric names accepted in ``metrics``."""


class Evaluator:
    """Options of an evaluation, the feature extractor, and the metrics from features.

    Args:
        metrics: Any of ``fid`` (Fréchet distance), ``kid`` (kernel distance, mean and std),
            ``is`` (Inception Score, mean and std; needs Inception weights with the
            classifier) and ``pr`` (improved precision and recall).
        feature_extractor: torch-fidelity extractor name; ``inception-v3-compat`` (default)
            is the paper protocol, ``clip-vit-b-32``, ``dinov2-vit-s-14``, ... are
            alternatives for the feature-distance metrics.
        weights_path: Extractor weights file; None: ``$GAN_LIGHTNING_FID_WEIGHTS`` for
            Inception, then torch-fidelity's download into the torch.hub cache.
        batch_size: Images per forward pass of the extractor (>= 1).
        kid_subsets: KID subsets (>= 1).
        kid_subset_size: Samples per KID subset (>= 2); clamped to the smaller set.
        isc_splits: Inception Score splits (>= 1, at most the number of generated images).
        prc_neighborhood: k of the k-NN radius in precision/recall (>= 1).
        metric_seed: Seed of KID's subsets and IS's shuffle (torch-fidelity's ``rng_seed``).
        owner: Name used in error messages, e.g. ``Metrics``.
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("fid", "kid", "pr"),
        feature_extractor: str = INCEPTION,
        weights_path: str | None = None,
        batch_size: int = 64,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        isc_splits: int = 10,
        prc_neighborhood: int = 3,
        metric_seed: int = 2020,
        owner: str = "Metrics",
    ) -> None:
        self.owner = owner
        unknown = [name for name in metrics if name not in METRICS]
        if not metrics or unknown or len(set(metrics)) != len(metrics):
            raise ConfigurationError(
                f"{owner}.metrics must be a non-empty list without repeats from "
                f"{', '.join(METRICS)}, got {list(metrics)}."
            )
        for name, value, minimum in (
            ("batch_size", batch_size, 1),
            ("kid_subsets", kid_subsets, 1),
            ("kid_subset_size", kid_subset_size, 2),
            ("isc_splits", isc_splits, 1),
            ("prc_neighborhood", prc_neighborhood, 1),
            ("metric_seed", metric_seed, 0),
        ):
            if value < minimum:
                raise ConfigurationError(f"{owner}.{name} must be at least {minimum}, got {value}.")
        check_extractor_name(feature_extractor, f"{owner}.feature_extractor")
        if "is" in metrics and feature_extractor != INCEPTION:
            raise ConfigurationError(
                f"{owner}.metrics has 'is', which needs the Inception classifier, but "
                f"feature_extractor is {feature_extractor!r}. Drop 'is' or use {INCEPTION}."
            )
        self.metrics = list(metrics)
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path
        self.batch_size = batch_size
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.isc_splits = isc_splits
        self.prc_neighborhood = prc_neighborhood
        self.metric_seed = metric_seed
        self.extractor: FeatureExtractor | None = None
        self._warned: set[str] = set()

    def check_counts(self, num_real: int, num_fake: int) -> None:
        """Raise before any work if the sample counts cannot give the requested metrics."""
        minimum = self.prc_neighborhood + 1 if "pr" in self.metrics else 2
        for name, value in (("num_real", num_real), ("num_fake", num_fake)):
            if value < minimum:
                raise ConfigurationError(
                    f"{self.owner}.{name} must be at least {minimum} for {self.metrics} "
                    f"(precision/recall needs more than prc_neighborhood samples), got {value}."
                )
        if "is" in self.metrics and self.isc_splits > num_fake:
            raise ConfigurationError(
                f"{self.owner}.isc_splits={self.isc_splits} is more than num_fake={num_fake}: "
                "every Inception Score split needs at least one sample. Lower isc_splits "
                "(10 is the usual value, with 50,000 samples) or raise num_fake."
            )

    def build(self, device: torch.device | str = "cpu") -> FeatureExtractor:
        """Load the extractor's weights (once); raises a ConfigurationError naming the file."""
        if self.extractor is None:
            self.extractor = FeatureExtractor(
                self.feature_extractor, self.weights_path, "is" in self.metrics, device
            )
        return self.extractor.to(device)

    def extract(self, images: Iterable[Tensor]) -> dict[str, Tensor]:
        """Features of batches of ``(N, C, H, W)`` images in [-1, 1] or uint8, concatenated.

        Batches larger than ``batch_size`` are split; features stay on the extractor's device.
        """
        extractor = self._require_extractor()
        parts: dict[str, list[Tensor]] = {}
        for batch in images:
            for chunk in batch.split(self.batch_size):
                for name, value in extractor(chunk).items():
                    parts.setdefault(name, []).append(value)
        if not parts:
            raise ValueError("Evaluator.extract got no images")
        return {name: torch.cat(values) for name, values in parts.items()}

    def cache_key(self, dataset_key: str, split: str, num_real: int) -> dict[str, Any]:
        """Everything cached real features depend on (see :mod:`gan_lightning.metrics.real`)."""
        extractor = self._require_extractor()
        return {
            "format": CACHE_FORMAT,
            "dataset": dataset_key,
            "split": split,
            "num_real": num_real,
            "extractor": extractor.name,
            "layer": extractor.layers[0],
            "weights_sha256": extractor.weights_id,
            "pixels": "uint8 as saved PNG, grayscale repeated to RGB",
        }

    def compute(
        self, real: FeatureSet, fake: dict[str, Tensor], warn: bool = True
    ) -> dict[str, float]:
        """Every requested metric from real features and generated features.

        Args:
            real: Real pool features; statistics derived from them are cached on the object.
            fake: ``{"pool": (N, D)}`` and, for IS, ``{"logits": (N, 1008)}``.
            warn: Warn (once per evaluator) about sample counts that bias the values.

        Returns:
            Keys ``fid``, ``kid_mean``, ``kid_std``, ``kid_subset_size``, ``is_mean``,
            ``is_std``, ``precision``, ``recall`` for the requested metrics.
        """
        fake_set = FeatureSet(fake[POOL])
        results: dict[str, float] = {}
        if "fid" in self.metrics:
            dim = fake_set.features.shape[1]
            if warn and min(len(real), len(fake_set)) < dim:
                self._warn_once(
                    "fid",
                    f"{self.owner}: FID from {len(real)} real and {len(fake_set)} generated "
                    f"samples, fewer than the {dim} feature dimensions: the covariances are "
                    "rank-deficient and FID is biased upwards. Compare values only at equal "
                    "counts; published FIDs use 50,000 generated samples.",
                )
            results["fid"] = frechet_distance(real, fake_set)
        if "kid" in self.metrics:
            size = min(self.kid_subset_size, len(real), len(fake_set))
            if warn and size < self.kid_subset_size:
                self._warn_once(
                    "kid",
                    f"{self.owner}: kid_subset_size={self.kid_subset_size} is clamped to {size}, "
                    "the smaller of the real and generated sets; logged as kid_subset_size.",
                )
            mean, std = kernel_inception_distance(
                real, fake_set, self.kid_subsets, size, seed=self.metric_seed
            )
            results.update(kid_mean=mean, kid_std=std, kid_subset_size=float(size))
        if "is" in self.metrics:
            mean, std = inception_score(fake[LOGITS], self.isc_splits, self.metric_seed)
            results.update(is_mean=mean, is_std=std)
        if "pr" in self.metrics:
            precision, recall = precision_recall(real, fake_set, self.prc_neighborhood)
            results.update(precision=precision, recall=recall)
        return results

    def protocol(self) -> dict[str, Any]:
        """The evaluation protocol, for logged metadata."""
        return {
            "metrics": self.metrics,
            "feature_extractor": self.feature_extractor,
            "weights_sha256": None if self.extractor is None else self.extractor.weights_id,
            "resize": "torch-fidelity TF1-compatible bilinear to the extractor's input size",
            "pixels": "generated images quantized to uint8 as a saved PNG; gray repeated to RGB",
            "features": "pool (2048-d for Inception) for FID/KID/PR, logits_unbiased for IS",
            "kid": {
                "subsets": self.kid_subsets,
                "subset_size": self.kid_subset_size,
                "kernel": "(x.y / D + 1)^3",
            },
            "is": {"splits": self.isc_splits, "order": "canonical, then seeded shuffle"},
            "pr": {"neighborhood": self.prc_neighborhood},
            "metric_seed": self.metric_seed,
        }

    def _require_extractor(self) -> FeatureExtractor:
        if self.extractor is None:
            raise RuntimeError("Evaluator.build() loads the extractor before features are read")
        return self.extractor

    def _warn_once(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            rank_zero_warn(message)
