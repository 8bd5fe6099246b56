"""Sample-quality and mode-coverage metrics, computed from features or samples.

The callbacks in :mod:`gan_lightning.callbacks` and ``gan-lightning evaluate`` are built on
these functions; they can also be used directly on tensors.
"""

from gan_lightning.metrics.evaluator import METRICS, Evaluator
from gan_lightning.metrics.features import INCEPTION, FeatureExtractor, to_extractor_input
from gan_lightning.metrics.scores import (
    FeatureSet,
    frechet_distance,
    inception_score,
    intra_class_frechet_distance,
    kernel_inception_distance,
    precision_recall,
)

__all__ = [
    "INCEPTION",
    "METRICS",
    "Evaluator",
    "FeatureExtractor",
    "FeatureSet",
    "frechet_distance",
    "inception_score",
    "intra_class_frechet_distance",
    "kernel_inception_distance",
    "precision_recall",
    "to_extractor_input",
]
