"""Regularisers and input tricks that GAN variants add to their adversarial losses.

Gradient penalties are built with ``torch.autograd.grad(create_graph=True)``, so the
penalty is an ordinary differentiable tensor: the caller adds it to the discriminator loss
and runs one backward pass over the sum.

Papers:
- Gradient penalty (WGAN-GP): Gulrajani et al., "Improved Training of Wasserstein GANs",
  arXiv:1704.00028.
- R1: Mescheder, Geiger, Nowozin, "Which Training Methods for GANs do actually Converge?",
  arXiv:1801.04406.
- Weight clipping: Arjovsky, Chintala, Bottou, "Wasserstein GAN", arXiv:1701.07875.
- Feature matching: Salimans et al., "Improved Techniques for Training GANs",
  arXiv:1606.03498.
- Instance noise: Sønderby et al., "Amortised MAP Inference for Image Super-resolution",
  arXiv:1610.04490.
- Packing: Lin et al., "PacGAN: The power of two samples in generative adversarial
  networks", arXiv:1712.04086.

Differences from the papers:
- The gradient norms are computed in float32 (float64 stays float64) whatever precision the
  critic ran in, and the penalties are batch means.
- R1 is ``gamma / 2 * mean ||grad||^2`` over the real batch. Lazy regularisation (every k
  updates, weighted by k, as in StyleGAN2) is the training loop's ``r1_every`` option.
- Feature matching compares batch means of any feature tensor with a squared L2 norm (the
  paper's objective) and detaches the real features.
- Instance noise is annealed linearly to zero; Sønderby et al. leave the schedule open.

Mixed precision: the inner gradient is taken from the critic's *unscaled* output, so no
``GradScaler`` scale enters it and there is nothing to unscale here. Under float16 autocast
that inner gradient can underflow; a caller that needs the scaled recipe of the PyTorch AMP
notes must scale the output and unscale the gradient itself. The outer backward of
``loss + penalty`` goes through the scaler as usual.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError

Critic = Callable[[Tensor], Tensor]


def _check_same_shape(real: Tensor, fake: Tensor, who: str) -> None:
    if real.shape != fake.shape:
        raise ConfigurationError(
            f"{who} needs real and fake batches of the same shape, got real "
            f"{tuple(real.shape)} and fake {tuple(fake.shape)}. Generate as many samples as "
            "there are real ones, at the data's image size."
        )


def _at_least_float32(x: Tensor) -> Tensor:
    """Upcast half-precision tensors to float32; float32 and float64 pass unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _scored(critic: Critic, x: Tensor) -> tuple[Tensor, Tensor]:
    """Score ``x`` with the critic; returns ``(scores, x)`` with ``x`` requiring gradients."""
    x = x.detach().requires_grad_(True)
    return critic(x), x


def input_gradient(scores: Tensor, inputs: Tensor) -> Tensor:
    """Gradient of ``scores.sum()`` w.r.t. ``inputs``, kept in the graph, as ``(N, D)``.

    ``scores`` ``(N,)`` must have been computed from ``inputs`` ``(N, ...)`` (which requires
    gradients). Summing the per-sample scores gives each sample its own gradient, since
    samples are scored independently (true without BatchNorm in the critic, or in eval mode).
    The result is float32 when the critic ran in half precision (e.g. under autocast).
    """
    (grad,) = torch.autograd.grad(_at_least_float32(scores).sum(), inputs, create_graph=True)
    return _at_least_float32(grad).flatten(1)


def gradient_penalty_from_outputs(scores: Tensor, interpolates: Tensor, weight: float) -> Tensor:
    """WGAN-GP penalty from critic scores ``(N,)`` already computed on ``interpolates``.

    The training loop uses this form so that the critic's forward pass on the interpolates
    shares one (DDP-wrapped) call with its passes on real and generated samples.
    """
    norms = torch.linalg.vector_norm(input_gradient(scores, interpolates), ord=2, dim=1)
    return weight * (norms - 1).square().mean()


def r1_penalty_from_outputs(logits: Tensor, real: Tensor, gamma: float) -> Tensor:
    """R1 penalty from discriminator logits ``(N,)`` already computed on ``real``."""
    return gamma / 2 * input_gradient(logits, real).square().sum(dim=1).mean()


def interpolate(real: Tensor, fake: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random points on the lines between paired real and generated samples.

    Args:
        real: Real samples ``(N, ...)``, e.g. ``(N, C, H, W)`` images or ``(N, 2)`` points.
        fake: Generated samples of the same shape; detached here.
        generator: Random number generator for the coefficients, on ``real``'s device; None
            uses the global one.

    Returns:
        ``eps * real + (1 - eps) * fake`` of shape ``(N, ...)`` and ``real``'s dtype, with one
        ``eps ~ U[0, 1)`` per sample (shape ``(N, 1, ..., 1)``), not per pixel.
    """
    _check_same_shape(real, fake, "interpolate")

    # Draw in float32 so the random stream does not depend on the data's precision.
    coeff_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(coeff_shape, generator=generator, device=real.device)
    eps = eps.to(real.dtype)
    return eps * real.detach() + (1 - eps) * fake.detach()


def gradient_penalty(
    critic: Critic,
    real: Tensor,
    fake: Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP two-sided penalty ``weight * mean((||grad f(x_hat)||_2 - 1)^2)``.

    Args:
        critic: Maps a batch ``(N, ...)`` to scores ``(N,)``. Pass the bare network rather than
            a DDP wrapper: DDP does not support ``torch.autograd.grad``.
        real: Real samples ``(N, ...)``.
        fake: Generated samples of the same shape (detached: the penalty trains the critic).
        weight: Penalty coefficient lambda (>= 0); the paper uses 10.
        generator: Random number generator for the interpolation coefficients.

    Returns:
        The scalar penalty (float32, or float64 for float64 inputs), differentiable w.r.t. the
        critic's parameters. The norm runs over all non-batch dimensions of each sample's
        gradient.
    """
    if weight < 0:
        raise ConfigurationError(f"gp_weight must be >= 0, got {weight}. The paper uses 10.")
    scores, interpolates = _scored(critic, interpolate(real, fake, generator))
    return gradient_penalty_from_outputs(scores, interpolates, weight)


def r1_penalty(discriminator: Critic, real: Tensor, gamma: float) -> Tensor:
    """R1 penalty ``gamma / 2 * mean(||grad_x D(x)||_2^2)`` on real samples.

    Args:
        discriminator: Maps a batch ``(N, ...)`` to logits ``(N,)``; the bare network, not a
            DDP wrapper.
        real: Real samples ``(N, ...)``; detached here.
        gamma: Penalty weight (>= 0); 10 is a common value for 32-64 pixel images.

    Returns:
        The scalar penalty (float32, or float64 for float64 inputs), differentiable w.r.t. the
        discriminator's parameters.
    """
    if gamma < 0:
        raise ConfigurationError(f"r1_gamma must be >= 0, got {gamma}. Try 10, or 0 to disable.")
    logits, real = _scored(discriminator, real)
    return r1_penalty_from_outputs(logits, real, gamma)


@torch.no_grad()
def clip_weights_(module: nn.Module, clip_value: float) -> None:
    """Clamp every parameter of ``module`` into ``[-clip_value, clip_value]`` in place.

    WGAN's crude Lipschitz constraint; call it after each critic update. Buffers (e.g.
    BatchNorm running statistics) are left alone.

    Args:
        module: The critic.
        clip_value: Bound c > 0; the paper uses 0.01.
    """
    if not clip_value > 0:
        raise ConfigurationError(
            f"clip_value must be > 0, got {clip_value}. The WGAN paper uses 0.01."
        )
    for param in module.parameters():
        param.clamp_(-clip_value, clip_value)


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Squared distance between mean features, ``||mean_i f(x_i) - mean_j f(G(z_j))||_2^2``.

    A generator objective: the real features are detached, so only the generator (through
    ``fake_features``) receives gradients. The result is a sum over feature dimensions, not a
    mean, as in the paper.

    Args:
        real_features: Intermediate discriminator features ``(N, ...)`` of real samples.
        fake_features: Features ``(M, ...)`` of generated samples; the non-batch dimensions
            must match ``real_features``.

    Returns:
        A scalar >= 0, float32 for half-precision features.
    """
    if real_features.shape[1:] != fake_features.shape[1:]:
        raise ConfigurationError(
            "feature_matching_loss needs features of the same per-sample shape, got real "
            f"{tuple(real_features.shape[1:])} and fake {tuple(fake_features.shape[1:])}. "
            "Take both from the same discriminator layer."
        )
    real_mean = _at_least_float32(real_features.detach()).flatten(1).mean(dim=0)
    fake_mean = _at_least_float32(fake_features).flatten(1).mean(dim=0)
    return (real_mean - fake_mean).square().sum()


def instance_noise_std(step: int, initial_std: float, anneal_steps: int) -> float:
    """Standard deviation of instance noise, annealed linearly from ``initial_std`` to 0.

    Args:
        step: Training step (generator updates, >= 0).
        initial_std: Standard deviation at step 0 (>= 0), in the data's units (images in
            [-1, 1], so 0.1 is small).
        anneal_steps: Steps until the noise reaches 0 (>= 1); it stays 0 afterwards.

    Returns:
        ``initial_std * max(0, 1 - step / anneal_steps)``.
    """
    if initial_std < 0:
        raise ConfigurationError(f"initial_std must be >= 0, got {initial_std}.")
    if anneal_steps < 1:
        raise ConfigurationError(
            f"anneal_steps must be >= 1, got {anneal_steps}. Set initial_std to 0 to disable "
            "instance noise."
        )
    if step < 0:
        raise ConfigurationError(f"step must be >= 0, got {step}.")
    return initial_std * max(0.0, 1.0 - step / anneal_steps)


def add_instance_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    """``x + std * noise`` with standard normal noise, for real and generated inputs alike.

    Args:
        x: Discriminator input ``(N, ...)``, floating point.
        std: Noise standard deviation (>= 0); 0 returns ``x`` itself.
        generator: Random number generator on ``x``'s device; None uses the global one.
    """
    if std < 0:
        raise ConfigurationError(f"instance noise std must be >= 0, got {std}.")
    if std == 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device).to(x.dtype)
    return x + std * noise


def pack(x: Tensor, k: int) -> Tensor:
    """PacGAN packing: ``(N, C, ...)`` to ``(N / k, k * C, ...)``.

    Packed sample ``i`` is the channel-wise concatenation of samples ``i*k, ..., i*k + k - 1``:
    its channels ``j*C, ..., j*C + C - 1`` are the channels of sample ``i*k + j``. Pack real
    and generated batches separately so each pack holds one kind of sample.

    Args:
        x: Batch ``(N, C, ...)`` with at least two dimensions; N divisible by ``k``.
        k: Samples per pack (>= 1); the paper uses 2 to 4. The discriminator's input
            channels must be ``k * C``.
    """
    if k < 1:
        raise ConfigurationError(f"pack size k must be >= 1, got {k}. The paper uses 2.")
    if x.dim() < 2:
        raise ConfigurationError(
            f"pack needs a batch (N, C, ...) with at least 2 dimensions, got shape "
            f"{tuple(x.shape)}."
        )
    n = x.shape[0]
    if n % k:
        raise ConfigurationError(
            f"pack needs a batch size divisible by the pack size k={k}, got batch size {n}. "
            f"Use a batch size that is a multiple of {k}."
        )
    return x.reshape(n // k, k * x.shape[1], *x.shape[2:])
