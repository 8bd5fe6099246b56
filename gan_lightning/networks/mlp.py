"""Fully connected generator and discriminator, for 2-D toy data and small flat samples.

Paper: Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville, Bengio,
"Generative Adversarial Networks", arXiv:1406.2661.

Differences from the paper:
- ReLU hidden units in the generator and LeakyReLU(0.2) in the discriminator, instead of the
  paper's rectifier/sigmoid generator and maxout discriminator with dropout.
- The discriminator returns raw logits of shape ``(N,)``; the sigmoid lives in the loss.
- Optional discriminator extras from later papers: minibatch standard deviation
  (arXiv:1710.10196), minibatch discrimination (arXiv:1606.03498) and spectral normalisation
  (arXiv:1802.05957).
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError
from gan_lightning.layers import MinibatchDiscrimination, MinibatchStdDev
from gan_lightning.networks.utils import apply_spectral_norm, check_minibatch_options


def _check_dims(values: list[int], name: str) -> None:
    """Fail unless ``values`` is a non-empty list of positive sizes."""
    if len(values) == 0 or any(v < 1 for v in values):
        raise ConfigurationError(
            f"{name} must be a non-empty list of sizes >= 1, got {list(values)}. "
            "Use for example [128, 128, 128]."
        )


def minibatch_head(
    in_features: int,
    minibatch_std: bool,
    minibatch_discrimination: int,
    minibatch_kernel_dim: int,
) -> list[nn.Module]:
    """Layers from features ``(N, F)`` to one logit ``(N, 1)``, with the optional batch layers."""
    layers: list[nn.Module] = []
    if minibatch_std:
        layers.append(MinibatchStdDev())
        in_features += 1
    if minibatch_discrimination:
        layers.append(
            MinibatchDiscrimination(in_features, minibatch_discrimination, minibatch_kernel_dim)
        )
        in_features += minibatch_discrimination
    layers.append(nn.Linear(in_features, 1))
    return layers


class MLPGenerator(nn.Module):
    """Multilayer perceptron generator: latent ``(N, latent_dim)`` to ``(N, *output_shape)``.

    Args:
        latent_dim: Size of the latent vector (>= 1).
        output_shape: Shape of one sample, e.g. ``[2]`` for points in the plane.
        hidden_dims: Width of each hidden layer, input side first (non-empty, each >= 1).
        output_activation: ``"tanh"`` keeps samples in [-1, 1] (for data scaled to that
            range); ``"linear"`` leaves them unbounded (for point data such as the mixtures).
        batch_norm: Put BatchNorm1d between each hidden Linear and its ReLU.
    """

    def __init__(
        self,
        latent_dim: int = 64,
        output_shape: list[int] = [2],  # noqa: B006 (LightningCLI needs a literal default)
        hidden_dims: list[int] = [128, 128, 128],  # noqa: B006
        output_activation: Literal["tanh", "linear"] = "linear",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigurationError(f"generator.latent_dim must be at least 1, got {latent_dim}.")
        _check_dims(output_shape, "generator.output_shape")
        _check_dims(hidden_dims, "generator.hidden_dims")
        if output_activation not in ("tanh", "linear"):
            raise ConfigurationError(
                f"generator.output_activation must be 'tanh' or 'linear', got "
                f"{output_activation!r}."
            )
        self.latent_dim = latent_dim
        self.output_shape = tuple(output_shape)

        # Hidden layers: Linear, optional BatchNorm, ReLU.
        layers: list[nn.Module] = []
        width = latent_dim
        for hidden in hidden_dims:
            layers.append(nn.Linear(width, hidden, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU())
            width = hidden
        self.body = nn.Sequential(*layers)

        # Output layer, flat; forward reshapes it to the sample shape.
        head: list[nn.Module] = [nn.Linear(width, math.prod(output_shape))]
        if output_activation == "tanh":
            head.append(nn.Tanh())
        self.head = nn.Sequential(*head)

    def features(self, z: Tensor) -> Tensor:
        """Last hidden activations ``(N, hidden_dims[-1])`` for latents ``(N, latent_dim)``."""
        return self.body(z.reshape(z.shape[0], self.latent_dim))

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(N, latent_dim)`` to samples ``(N, *output_shape)``."""
        return self.head(self.features(z)).view(z.shape[0], *self.output_shape)


class MLPDiscriminator(nn.Module):
    """Multilayer perceptron discriminator: samples ``(N, *input_shape)`` to logits ``(N,)``.

    Args:
        input_shape: Shape of one sample, e.g. ``[2]`` for points in the plane.
        hidden_dims: Width of each hidden layer, input side first (non-empty, each >= 1).
        minibatch_std: Append the minibatch standard deviation (groups of 4; the batch size
            must then be divisible by 4, or smaller than 4) to the features before the output
            layer.
        minibatch_discrimination: Kernels of a minibatch discrimination layer before the
            output layer; 0 leaves it out.
        minibatch_kernel_dim: Dimension of each minibatch discrimination kernel (>= 1).
        spectral_norm: Spectrally normalise every Linear layer.
    """

    def __init__(
        self,
        input_shape: list[int] = [2],  # noqa: B006 (LightningCLI needs a literal default)
        hidden_dims: list[int] = [128, 128, 128],  # noqa: B006
        minibatch_std: bool = False,
        minibatch_discrimination: int = 0,
        minibatch_kernel_dim: int = 5,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        _check_dims(input_shape, "discriminator.input_shape")
        _check_dims(hidden_dims, "discriminator.hidden_dims")
        check_minibatch_options(minibatch_discrimination, minibatch_kernel_dim)
        self.input_shape = tuple(input_shape)

        # Hidden layers: Linear, LeakyReLU(0.2).
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for hidden in hidden_dims:
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.body = nn.Sequential(*layers)

        # Output: optional minibatch layers, then one logit.
        self.head = nn.Sequential(
            *minibatch_head(width, minibatch_std, minibatch_discrimination, minibatch_kernel_dim)
        )
        if spectral_norm:
            apply_spectral_norm(self)

    def features(self, x: Tensor) -> Tensor:
        """Last hidden activations ``(N, hidden_dims[-1])`` for samples ``(N, *input_shape)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Score samples ``(N, *input_shape)``; returns logits ``(N,)``."""
        return self.head(self.features(x)).flatten()
