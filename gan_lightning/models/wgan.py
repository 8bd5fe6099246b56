"""WGAN and WGAN-GP: a critic estimating the Wasserstein-1 distance.

Papers: Arjovsky, Chintala, Bottou, "Wasserstein GAN", arXiv:1701.07875; Gulrajani et
al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.

Differences from the papers:
- The WGAN paper trains the critic 100 times per generator step for the first 25 steps
  and every 500th step; here every step uses ``n_critic`` (5).
- The gradient penalty is computed on the critic's inputs after any DiffAugment, noise or
  packing the module applies, since those are what the critic sees.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_lightning import losses
from gan_lightning.models.base import GANModule


class WassersteinGAN(GANModule):
    """WGAN: critic loss ``E[D(G(z))] - E[D(x)]``, Lipschitz through weight clipping.

    Args:
        generator: See :class:`~gan_lightning.models.base.GANModule`.
        discriminator: The critic; outputs unbounded scores ``(N,)``. Avoid BatchNorm with
            a gradient penalty (the penalty is per sample).
        n_critic: Critic updates per generator update (the paper's 5).
        clip_value: Clamp critic weights to ``[-clip_value, clip_value]`` (the paper's 0.01).
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule`.
    """

    supports_label_smoothing = False

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        n_critic: int = 5,
        clip_value: float | None = 0.01,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            generator, discriminator, n_critic=n_critic, clip_value=clip_value, **kwargs
        )

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return losses.wasserstein_critic_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return losses.wasserstein_generator_loss(fake_logits)

    def default_optimizer(self, params, network: str) -> Optimizer:
        """The paper's RMSprop(lr=5e-5): momentum-based optimizers made WGAN unstable."""
        return torch.optim.RMSprop(params, lr=5e-5)


class WassersteinGANGP(WassersteinGAN):
    """WGAN-GP: the WGAN losses with a gradient penalty instead of weight clipping.

    Args:
        generator: See :class:`~gan_lightning.models.base.GANModule`.
        discriminator: The critic, without BatchNorm (the paper uses none or LayerNorm).
        n_critic: Critic updates per generator update (the paper's 5).
        gp_weight: Penalty weight lambda (the paper's 10).
        **kwargs: Options of :class:`~gan_lightning.models.base.GANModule`; ``clip_value``
            defaults to null here and cannot be combined with the penalty.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        clip_value: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            generator,
            discriminator,
            n_critic=n_critic,
            clip_value=clip_value,
            gp_weight=gp_weight,
            **kwargs,
        )

    def default_optimizer(self, params, network: str) -> Optimizer:
        """The paper's Adam(lr=1e-4, betas=(0.0, 0.9))."""
        return torch.optim.Adam(params, lr=1e-4, betas=(0.0, 0.9))
