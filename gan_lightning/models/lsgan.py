"""LSGAN: least-squares losses instead of cross-entropy.

Paper: Mao et al., "Least Squares Generative Adversarial Networks", arXiv:1611.04076.

Differences from the paper:
- The targets default to the 0-1 coding (a=0, b=1, c=1); the paper's other choice
  (a=-1, b=1, c=0) is a configuration away.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_lightning import losses
from gan_lightning.models.base import GANModule


class LeastSquaresGAN(GANModule):
    """LSGAN: D regresses real samples to ``b`` and fakes to ``a``; G pushes fakes to ``c``.

    Args:
        generator: See :class:`~gan_lightning.models.base.GANModule`.
        discriminator: See :class:`~gan_lightning.models.base.GANModule`; its raw outputs are
            the regression values (no sigmoid).
        a: Target for generated samples in the discriminator's loss.
        b: Target for real samples in the discriminator's loss.
        c: Value the generator wants the discriminator to output for its samples.
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule`.
    """

    supports_label_smoothing = False

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        a: float = 0.0,
        b: float = 1.0,
        c: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, discriminator, **kwargs)
        self.a, self.b, self.c = a, b, c

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return losses.least_squares_discriminator_loss(real_logits, fake_logits, a=self.a, b=self.b)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return losses.least_squares_generator_loss(fake_logits, c=self.c)

    def default_optimizer(self, params, network: str) -> Optimizer:
        """The paper's Adam(lr=2e-4, betas=(0.5, 0.999))."""
        return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
