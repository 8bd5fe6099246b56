"""Plain ``nn.Module`` networks; the LightningModules in ``gan_lightning.models`` train them."""

from gan_lightning.networks.dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]
