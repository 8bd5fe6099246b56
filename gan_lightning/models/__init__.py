"""GAN variants as LightningModules; all share the loop in :mod:`gan_lightning.models.base`."""

from gan_lightning.models.base import GANModule
from gan_lightning.models.dcgan import DCGAN
from gan_lightning.models.gan import GAN
from gan_lightning.models.lsgan import LeastSquaresGAN
from gan_lightning.models.sngan import SpectralNormGAN
from gan_lightning.models.wgan import WassersteinGAN, WassersteinGANGP

# The names papers and users abbreviate them to.
LSGAN = LeastSquaresGAN
WGAN = WassersteinGAN
WGANGP = WassersteinGANGP
SNGAN = SpectralNormGAN

__all__ = [
    "DCGAN",
    "GAN",
    "GANModule",
    "LSGAN",
    "LeastSquaresGAN",
    "SNGAN",
    "SpectralNormGAN",
    "WGAN",
    "WGANGP",
    "WassersteinGAN",
    "WassersteinGANGP",
]
