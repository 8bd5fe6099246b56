"""DCGAN: the convolutional GAN of Radford et al. trained with the non-saturating loss.

Paper: Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", arXiv:1511.06434.

Differences from the paper:
- The networks are arguments (``DCGANGenerator`` / ``DCGANDiscriminator`` in the shipped
  configs), so the same schedule can train other architectures.
- ``loss: minimax`` switches to the saturating generator loss for comparison studies.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from gan_lightning.models.gan import GAN, AdversarialLoss


class DCGAN(GAN):
    """DCGAN training: Adam(lr=2e-4, betas=(0.5, 0.999)) for both networks, ``n_critic=1``.

    Args:
        generator: See :class:`GANModule`; typically ``DCGANGenerator``.
        discriminator: See :class:`GANModule`; typically ``DCGANDiscriminator``.
        loss: ``"non_saturating"`` (default, as in the paper) or ``"minimax"``.
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule` (optimizers,
            ``n_critic``, regularizers, EMA, ...).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss = "non_saturating",
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, discriminator, loss=loss, **kwargs)
