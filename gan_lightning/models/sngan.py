"""SNGAN: hinge loss with a spectrally normalized discriminator.

Paper: Miyato et al., "Spectral Normalization for Generative Adversarial Networks",
arXiv:1802.05957.

Differences from the paper:
- Spectral normalization belongs to the discriminator network (``spectral_norm: true`` on
  the shipped discriminators, through ``torch.nn.utils.parametrizations.spectral_norm``);
  this module checks that it is there rather than adding it behind the network's back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.optim import Optimizer

from gan_lightning import losses
from gan_lightning.errors import ConfigurationError
from gan_lightning.models.base import GANModule


class SpectralNormGAN(GANModule):
    """SNGAN: hinge losses; the discriminator must carry spectral normalization.

    Args:
        generator: See :class:`~gan_lightning.models.base.GANModule`.
        discriminator: A discriminator whose layers are spectrally normalized, e.g.
            ``ResNetDiscriminator`` or ``DCGANDiscriminator`` with ``spectral_norm: true``.
        n_critic: Discriminator updates per generator update (the paper's 5 for the ResNet).
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule`.
    """

    supports_label_smoothing = False

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        n_critic: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, discriminator, n_critic=n_critic, **kwargs)
        if not any(parametrize.is_parametrized(m) for m in discriminator.modules()):
            raise ConfigurationError(
                f"SpectralNormGAN needs a spectrally normalized discriminator, but "
                f"{type(discriminator).__name__} has no parametrized layers. Set "
                "spectral_norm: true in model.discriminator.init_args."
            )

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return losses.hinge_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return losses.hinge_generator_loss(fake_logits)

    def default_optimizer(self, params, network: str) -> Optimizer:
        """The paper's Adam(lr=2e-4, betas=(0.0, 0.9)) for the ResNet with hinge loss."""
        return torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.9))
