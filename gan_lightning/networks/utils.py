"""Helpers shared by the networks.

Spectral normalisation: Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for
Generative Adversarial Networks", arXiv:1802.05957.

Differences from the paper:
- PyTorch's parametrization runs one power iteration per forward pass in training mode only
  (as the paper does per update); in eval mode it reuses the last estimate.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from gan_lightning.errors import ConfigurationError

# Layers whose ``weight`` is spectrally normalised; ConvTranspose weights are (in, out, ...),
# which PyTorch's spectral_norm handles by normalising along dimension 1.
SPECTRAL_NORM_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Divide the weight of every Linear, Conv and ConvTranspose layer by its spectral norm.

    Walks ``module`` and all its children in place; layers already normalised are left as
    they are, so calling it twice is harmless. Initialise the weights before calling it: the
    parametrization keeps the current weight as ``parametrizations.weight.original``.

    Args:
        module: Any network; other layer types (norms, activations) are untouched.

    Returns:
        ``module`` itself, for chaining.
    """
    for layer in list(module.modules()):
        if isinstance(layer, SPECTRAL_NORM_LAYERS) and not parametrize.is_parametrized(
            layer, "weight"
        ):
            spectral_norm(layer)
    return module


def check_minibatch_options(minibatch_discrimination: int, minibatch_kernel_dim: int) -> None:
    """Validate a discriminator's minibatch discrimination options before building it."""
    if minibatch_discrimination < 0:
        raise ConfigurationError(
            "discriminator.minibatch_discrimination must be 0 (off) or a number of kernels, "
            f"got {minibatch_discrimination}. Use 0, or for example 100."
        )
    if minibatch_kernel_dim < 1:
        raise ConfigurationError(
            f"discriminator.minibatch_kernel_dim must be at least 1, got {minibatch_kernel_dim}. "
            "Use for example 5."
        )
