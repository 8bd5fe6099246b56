"""Training callbacks: sample grids, FID and the other sample-quality metrics, mode coverage."""

from gan_lightning.callbacks.coverage import ModeCoverage
from gan_lightning.callbacks.fid import FID, FrechetInceptionDistanceCallback
from gan_lightning.callbacks.metrics import Metrics
from gan_lightning.callbacks.samples import SampleGrid

__all__ = ["FID", "FrechetInceptionDistanceCallback", "Metrics", "ModeCoverage", "SampleGrid"]
