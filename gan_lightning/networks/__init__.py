"""Plain ``nn.Module`` networks; the LightningModules in ``gan_lightning.models`` train them."""

from gan_lightning.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_lightning.networks.mlp import MLPDiscriminator, MLPGenerator
from gan_lightning.networks.resnet import ResNetDiscriminator, ResNetGenerator
from gan_lightning.networks.utils import apply_spectral_norm

__all__ = [
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "apply_spectral_norm",
]
