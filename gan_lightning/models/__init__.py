"""GAN variants as LightningModules; all share the loop in :mod:`gan_lightning.models.base`."""

from gan_lightning.models.base import GANModule
from gan_lightning.models.dcgan import DCGAN

__all__ = ["DCGAN", "GANModule"]
