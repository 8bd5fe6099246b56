"""Training callbacks: sample grids for any logger and FID on the validation loop."""

from gan_lightning.callbacks.fid import FID, FrechetInceptionDistanceCallback
from gan_lightning.callbacks.samples import SampleGrid

__all__ = ["FID", "FrechetInceptionDistanceCallback", "SampleGrid"]
