"""GAN: the original adversarial game of Goodfellow et al. and its non-saturating variant.

Paper: Goodfellow et al., "Generative Adversarial Networks", arXiv:1406.2661.

Differences from the paper:
- Adam(2e-4, betas=(0.5, 0.999)) by default instead of SGD with momentum; the paper's
  schedule was tuned for its maxout networks, not for the MLPs shipped here.
- Any generator and discriminator can be configured; the shipped configs use the MLPs of
  ``gan_lightning.networks.mlp``.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from gan_lightning import losses
from gan_lightning.errors import ConfigurationError
from gan_lightning.models.base import GANModule

AdversarialLoss = Literal["minimax", "non_saturating"]


class GAN(GANModule):
    """The original GAN game with a cross-entropy discriminator.

    Args:
        generator: See :class:`~gan_lightning.models.base.GANModule`.
        discriminator: See :class:`~gan_lightning.models.base.GANModule`.
        loss: The generator's loss. ``"minimax"`` is the game as written in the paper, the
            saturating ``log(1 - D(G(z)))``; ``"non_saturating"`` is the paper's practical
            recommendation, ``-log D(G(z))``. The discriminator's loss is the same for both.
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule` (optimizers,
            ``n_critic``, regularizers, EMA, ...).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss = "minimax",
        **kwargs: Any,
    ) -> None:
        super().__init__(generator, discriminator, **kwargs)
        if loss not in ("non_saturating", "minimax"):
            raise ConfigurationError(
                f"model.loss must be 'non_saturating' or 'minimax', got {loss!r}."
            )
        self.loss = loss

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        if self.loss == "minimax":
            return losses.minimax_generator_loss(fake_logits)
        return losses.non_saturating_generator_loss(fake_logits)
