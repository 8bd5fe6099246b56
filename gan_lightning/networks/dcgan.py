"""DCGAN generator and discriminator.

Paper: Radford, Metz, Chintala, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", arXiv:1511.06434.

Differences from the paper:
- Sized from the image: any power-of-two side from 8 to 1024 pixels, 1 or 3 channels (the
  paper shows 64x64 RGB). Each resolution step halves (D) or doubles (G) the feature map.
- The discriminator returns raw logits of shape ``(N,)``; the sigmoid lives in the loss.
- Optional discriminator extras from later papers (all off by default): minibatch standard
  deviation, minibatch discrimination and spectral normalisation without BatchNorm.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError
from gan_lightning.layers import MinibatchDiscrimination, MinibatchStdDev
from gan_lightning.networks.utils import apply_spectral_norm, check_minibatch_options


def _num_doublings(image_size: int, who: str) -> int:
    """Resolution steps between a 4x4 map and ``image_size``; validates the size."""
    if image_size < 8 or image_size > 1024 or image_size & (image_size - 1):
        raise ConfigurationError(
            f"{who}.image_size must be a power of two from 8 to 1024 for the DCGAN networks, "
            f"got {image_size}. Use 32 or 64, or resize the data (data.image_size)."
        )
    return int(math.log2(image_size)) - 2


def _check_channels(channels: int, who: str) -> None:
    if channels < 1:
        raise ConfigurationError(f"{who}.channels must be at least 1, got {channels}.")


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """Transposed-convolution generator: latent ``(N, latent_dim)`` to ``(N, C, S, S)``.

    Args:
        latent_dim: Size of the latent vector (>= 1).
        image_size: Output side S in pixels, a power of two from 8 to 1024.
        channels: Output channels C (1 for grayscale, 3 for RGB).
        base_channels: Feature maps of the last hidden layer; each earlier layer doubles them.
    """

    def __init__(
        self,
        latent_dim: int = 100,
        image_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigurationError(f"generator.latent_dim must be at least 1, got {latent_dim}.")
        _check_channels(channels, "generator")
        steps = _num_doublings(image_size, "generator")
        self.latent_dim = latent_dim
        self.image_shape = (channels, image_size, image_size)

        # Project the latent to a 4x4 map, then double the side and halve the width per step.
        width = base_channels * 2 ** (steps - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for _ in range(steps - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(N, latent_dim)`` to images ``(N, C, S, S)`` in [-1, 1]."""
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Strided-convolution discriminator: images ``(N, C, S, S)`` to logits ``(N,)``.

    With every option off this is the paper's discriminator. The options add layers from
    later papers in front of the output layer, which sees the last 4x4 feature map:

    - ``minibatch_std`` appends the minibatch standard deviation as one more 4x4 map before
      the final 4x4 convolution, as ProGAN does before its last block (arXiv:1710.10196).
    - ``minibatch_discrimination`` replaces the final convolution by flatten, a minibatch
      discrimination layer (arXiv:1606.03498) and a Linear layer to one logit.
    - ``spectral_norm`` normalises every convolution (and Linear layer) and removes the
      BatchNorm layers, as in the SN-GAN discriminators of arXiv:1802.05957.

    Args:
        image_size: Input side S in pixels, a power of two from 8 to 1024.
        channels: Input channels C.
        base_channels: Feature maps of the first layer; each later layer doubles them.
        minibatch_std: Append the minibatch standard deviation (groups of 4; the batch size
            must then be divisible by 4, or smaller than 4) before the output layer.
        minibatch_discrimination: Kernels of a minibatch discrimination layer in the output
            layer; 0 leaves it out.
        minibatch_kernel_dim: Dimension of each minibatch discrimination kernel (>= 1).
        spectral_norm: Spectrally normalise every convolution and Linear layer, without
            BatchNorm.
        norm: Normalisation after each hidden convolution: ``"batch"`` (the paper),
            ``"layer"`` (over channels and pixels per sample, which a gradient penalty needs:
            the WGAN-GP paper's choice) or ``"none"``. None means ``"batch"``, or ``"none"``
            with ``spectral_norm``.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        base_channels: int = 64,
        minibatch_std: bool = False,
        minibatch_discrimination: int = 0,
        minibatch_kernel_dim: int = 5,
        spectral_norm: bool = False,
        norm: Literal["batch", "layer", "none"] | None = None,
    ) -> None:
        super().__init__()
        _check_channels(channels, "discriminator")
        if norm is None:
            norm = "none" if spectral_norm else "batch"
        if norm not in ("batch", "layer", "none"):
            raise ConfigurationError(
                f"discriminator.norm must be 'batch', 'layer', 'none' or null, got {norm!r}."
            )
        steps = _num_doublings(image_size, "discriminator")
        check_minibatch_options(minibatch_discrimination, minibatch_kernel_dim)
        self.image_shape = (channels, image_size, image_size)

        # Halve the side per step down to 4x4; no normalisation on the input layer (paper).
        width = base_channels
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(steps - 1):
            layers.append(nn.Conv2d(width, width * 2, 4, 2, 1, bias=False))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(width * 2))
            elif norm == "layer":
                layers.append(nn.GroupNorm(1, width * 2))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width *= 2
        self.feature_shape = (width, 4, 4)

        # Output layer on the 4x4 map, with the optional minibatch layers in front.
        head: list[nn.Module] = []
        if minibatch_std:
            head.append(MinibatchStdDev())
            width += 1
        if minibatch_discrimination:
            head += [
                nn.Flatten(),
                MinibatchDiscrimination(width * 16, minibatch_discrimination, minibatch_kernel_dim),
                nn.Linear(width * 16 + minibatch_discrimination, 1),
            ]
        else:
            head.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))

        # One Sequential as before the options existed, so checkpoints keep their keys.
        self.num_body_layers = len(layers)
        self.net = nn.Sequential(*layers, *head)
        self.apply(dcgan_init)
        if spectral_norm:
            apply_spectral_norm(self)

    def feature_map(self, x: Tensor) -> Tensor:
        """The last hidden activations ``(N, *feature_shape)`` for images ``(N, C, S, S)``."""
        for layer in self.net[: self.num_body_layers]:
            x = layer(x)
        return x

    def features(self, x: Tensor) -> Tensor:
        """The flattened last 4x4 feature map ``(N, F)``, before the output layer."""
        return self.feature_map(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Score images ``(N, C, S, S)`` in [-1, 1]; returns logits ``(N,)``."""
        x = self.feature_map(x)
        for layer in self.net[self.num_body_layers :]:
            x = layer(x)
        return x.flatten()
