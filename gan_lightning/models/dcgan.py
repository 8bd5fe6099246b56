"""DCGAN: the convolutional GAN of Radford et al. trained with the non-saturating loss.

Paper: Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", arXiv:1511.06434.

Differences from the paper:
- The networks are arguments (``DCGANGenerator`` / ``DCGANDiscriminator`` in the shipped
  configs), so the same schedule can train other architectures.
- ``loss: minimax`` switches to the saturating generator loss for comparison studies.
"""

from __future__ import annotations

from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from gan_lightning.models.base import AdversarialLoss, GANModule


class DCGAN(GANModule):
    """DCGAN training: Adam(lr=2e-4, betas=(0.5, 0.999)) for both networks, ``n_critic=1``.

    Args:
        generator: See :class:`GANModule`; typically ``DCGANGenerator``.
        discriminator: See :class:`GANModule`; typically ``DCGANDiscriminator``.
        optimizer_g: None means the paper's Adam(lr=2e-4, betas=(0.5, 0.999)).
        optimizer_d: None means the paper's Adam(lr=2e-4, betas=(0.5, 0.999)).
        n_critic: Discriminator updates per generator update (the paper uses 1).
        loss: ``"non_saturating"`` (default) or ``"minimax"``.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        n_critic: int = 1,
        loss: AdversarialLoss = "non_saturating",
    ) -> None:
        super().__init__(generator, discriminator, optimizer_g, optimizer_d, n_critic, loss)
