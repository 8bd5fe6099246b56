"""Adversarial losses on raw discriminator logits.

Every loss takes logits (unbounded scores) rather than probabilities, so the log-sigmoid terms
are computed with ``softplus`` and stay finite for large scores and under autocast. Logits
are cast to float32 first: half-precision softplus loses the small terms that matter here.

Conventions: ``real`` and ``fake`` are discriminator logits of shape ``(N,)`` for real and
generated samples; each function returns the scalar loss to *minimise*.
"""

import torch.nn.functional as F
from torch import Tensor


def minimax_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """``-log D(x) - log(1 - D(G(z)))``, the discriminator side of the original GAN game.

    With ``D = sigmoid(logit)``: ``-log D = softplus(-logit)`` and
    ``-log(1 - D) = softplus(logit)``. The non-saturating game uses the same loss for D.
    """
    return F.softplus(-real.float()).mean() + F.softplus(fake.float()).mean()


def minimax_generator_loss(fake: Tensor) -> Tensor:
    """``log(1 - D(G(z)))``, the saturating generator loss of the original minimax game.

    Its gradient vanishes when D confidently rejects the samples, which is why Goodfellow et
    al. (arXiv:1406.2661) suggest the non-saturating loss in practice.
    """
    return -F.softplus(fake.float()).mean()


def non_saturating_generator_loss(fake: Tensor) -> Tensor:
    """``-log D(G(z))``, the non-saturating generator loss (the usual default)."""
    return F.softplus(-fake.float()).mean()
