"""Adversarial losses on raw discriminator outputs.

Every loss takes logits (unbounded scores) rather than probabilities, so the log-sigmoid terms
are computed with ``softplus`` and stay finite for large scores and under autocast. Logits
are cast to float32 first: half-precision softplus loses the small terms that matter here.

Conventions: ``real`` and ``fake`` are discriminator outputs of shape ``(N,)`` for real and
generated samples; each function returns the float32 scalar loss to *minimise*.

Papers:
- Minimax and non-saturating: Goodfellow et al., "Generative Adversarial Networks",
  arXiv:1406.2661. One-sided label smoothing: Salimans et al., "Improved Techniques for
  Training GANs", arXiv:1606.03498.
- Least squares: Mao et al., "Least Squares Generative Adversarial Networks",
  arXiv:1611.04076.
- Wasserstein: Arjovsky, Chintala, Bottou, "Wasserstein GAN", arXiv:1701.07875.
- Hinge: Lim & Ye, "Geometric GAN", arXiv:1705.02894; Miyato et al., "Spectral
  Normalization for Generative Adversarial Networks", arXiv:1802.05957.

Differences from the papers:
- The least-squares losses use the paper's 1/2 factor and the discriminator output raw (no
  sigmoid); the defaults ``a=0, b=1, c=1`` are the paper's 0-1 coding scheme. Its
  ``a=-1, b=1, c=0`` scheme is a matter of arguments.
- The Wasserstein and hinge losses are plain means over the batch; the Lipschitz constraint
  they need lives elsewhere (``gan_lightning.penalties`` or spectral normalisation).
"""

import torch.nn.functional as F
from torch import Tensor

from gan_lightning.errors import ConfigurationError


def minimax_discriminator_loss(real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """``-log D(x) - log(1 - D(G(z)))``, the discriminator side of the original GAN game.

    With ``D = sigmoid(logit)``: ``-log D = softplus(-logit)`` and
    ``-log(1 - D) = softplus(logit)``. The non-saturating game uses the same loss for D.

    Args:
        real: Logits ``(N,)`` of real samples.
        fake: Logits ``(M,)`` of generated samples.
        real_label: Target of the real samples in (0, 1]. Below 1 this is one-sided label
            smoothing (0.9 in Salimans et al.): the real term becomes the binary
            cross-entropy ``real_label * softplus(-x) + (1 - real_label) * softplus(x)``.
            Fake targets stay 0. The default 1.0 gives the unsmoothed loss bit for bit.
    """
    if not 0.0 < real_label <= 1.0:
        raise ConfigurationError(
            f"real_label must lie in (0, 1], got {real_label}. Use 1.0 for no label "
            "smoothing or a value such as 0.9 for one-sided smoothing."
        )
    real = real.float()

    # Keep the unsmoothed path separate: 0 * softplus(x) would turn an infinite logit into NaN.
    if real_label == 1.0:
        real_term = F.softplus(-real)
    else:
        real_term = real_label * F.softplus(-real) + (1.0 - real_label) * F.softplus(real)
    return real_term.mean() + F.softplus(fake.float()).mean()


def minimax_generator_loss(fake: Tensor) -> Tensor:
    """``log(1 - D(G(z)))``, the saturating generator loss of the original minimax game.

    Its gradient vanishes when D confidently rejects the samples, which is why Goodfellow et
    al. (arXiv:1406.2661) suggest the non-saturating loss in practice.
    """
    return -F.softplus(fake.float()).mean()


def non_saturating_generator_loss(fake: Tensor) -> Tensor:
    """``-log D(G(z))``, the non-saturating generator loss (the usual default)."""
    return F.softplus(-fake.float()).mean()


def least_squares_discriminator_loss(
    real: Tensor, fake: Tensor, a: float = 0.0, b: float = 1.0
) -> Tensor:
    """LSGAN discriminator loss ``0.5 mean((D(x) - b)^2) + 0.5 mean((D(G(z)) - a)^2)``.

    Args:
        real: Raw discriminator outputs ``(N,)`` of real samples (no sigmoid).
        fake: Raw outputs ``(M,)`` of generated samples.
        a: Target for generated samples (the paper's "fake" label).
        b: Target for real samples (the paper's "real" label).
    """
    real_term = (real.float() - b).square().mean()
    fake_term = (fake.float() - a).square().mean()
    return 0.5 * real_term + 0.5 * fake_term


def least_squares_generator_loss(fake: Tensor, c: float = 1.0) -> Tensor:
    """LSGAN generator loss ``0.5 mean((D(G(z)) - c)^2)``.

    Args:
        fake: Raw discriminator outputs ``(M,)`` of generated samples.
        c: The value the generator wants the discriminator to believe (usually ``b``).
    """
    return 0.5 * (fake.float() - c).square().mean()


def wasserstein_critic_loss(real: Tensor, fake: Tensor) -> Tensor:
    """WGAN critic loss ``mean(f(G(z))) - mean(f(x))``, minus the Wasserstein estimate.

    Args:
        real: Critic scores ``(N,)`` of real samples.
        fake: Critic scores ``(M,)`` of generated samples.
    """
    return fake.float().mean() - real.float().mean()


def wasserstein_generator_loss(fake: Tensor) -> Tensor:
    """WGAN generator loss ``-mean(f(G(z)))``; ``fake`` holds critic scores ``(M,)``."""
    return -fake.float().mean()


def hinge_discriminator_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge loss ``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``.

    Real scores above 1 and fake scores below -1 cost nothing, so the discriminator stops
    pushing samples it already separates by the margin.

    Args:
        real: Raw discriminator outputs ``(N,)`` of real samples.
        fake: Raw outputs ``(M,)`` of generated samples.
    """
    return F.relu(1.0 - real.float()).mean() + F.relu(1.0 + fake.float()).mean()


def hinge_generator_loss(fake: Tensor) -> Tensor:
    """Generator side of the hinge game, ``-mean(D(G(z)))`` (no margin, as in SNGAN)."""
    return -fake.float().mean()
