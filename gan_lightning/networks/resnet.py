"""SNGAN ResNet generator and discriminator.

Papers: Miyato, Kataoka, Koyama, Yoshida, "Spectral Normalization for Generative Adversarial
Networks", arXiv:1802.05957 (appendix, ResNet for CIFAR-10); the residual blocks follow
Gulrajani et al., "Improved Training of Wasserstein GANs", arXiv:1704.00028.

Differences from the paper:
- Sized from the image: any power-of-two side from 16 to 256 pixels, any number of channels
  (the paper shows 32x32 RGB). The generator uses ``log2(S) - 2`` up blocks from a 4x4 map;
  the discriminator halves the side in its first block and in further down blocks until the
  map is 8x8, then adds two blocks that keep the side. At 32x32 both match the paper.
- Every block has the same width (``base_channels``) at every resolution; larger images
  add blocks, not channels.
- The discriminator returns raw logits of shape ``(N,)``; the loss decides what they mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError
from gan_lightning.networks.utils import apply_spectral_norm


def _check_size(image_size: int, who: str) -> int:
    """Validate the image side and return ``log2(image_size)``."""
    if image_size < 16 or image_size > 256 or image_size & (image_size - 1):
        raise ConfigurationError(
            f"{who}.image_size must be a power of two from 16 to 256 for the ResNet networks, "
            f"got {image_size}. Use 32, or resize the data (data.image_size)."
        )
    return int(math.log2(image_size))


def _check_positive(value: int, name: str) -> None:
    if value < 1:
        raise ConfigurationError(f"{name} must be at least 1, got {value}.")


def _xavier(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> None:
    """Xavier-uniform weight with the given gain, zero bias."""
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _init_block(block: nn.Module) -> None:
    """Gain sqrt(2) for the 3x3 convs of the ReLU branch, 1 for the 1x1 shortcut."""
    _xavier(block.conv1, math.sqrt(2.0))
    _xavier(block.conv2, math.sqrt(2.0))
    if isinstance(block.shortcut, nn.Conv2d):
        _xavier(block.shortcut)


def _upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _UpBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus an upsampled 1x1-conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        _init_block(self)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(_upsample(F.relu(self.norm1(x))))
        h = self.conv2(F.relu(self.norm2(h)))
        return h + self.shortcut(_upsample(x))


class _FirstDownBlock(nn.Module):
    """The discriminator's "optimized" first block: no ReLU before the first conv.

    Residual branch conv3x3-ReLU-conv3x3-avgpool; shortcut avgpool-conv1x1.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)
        _init_block(self)

    def forward(self, x: Tensor) -> Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class _DownBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 (then avgpool when downsampling), plus a shortcut.

    The shortcut is a 1x1 conv (then avgpool) when the block changes width or side, and the
    identity otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        learnable = downsample or in_channels != out_channels
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if learnable else nn.Identity()
        _init_block(self)

    def forward(self, x: Tensor) -> Tensor:
        # Not in place: x also feeds the shortcut.
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = self.shortcut(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class ResNetGenerator(nn.Module):
    """Residual generator: latent ``(N, latent_dim)`` to images ``(N, C, S, S)`` in [-1, 1].

    Linear layer to a 4x4 map, ``log2(S) - 2`` up blocks doubling the side, then BN, ReLU,
    a 3x3 conv to C channels and tanh. Weights are Xavier-uniform (gain sqrt(2) on the
    residual-branch 3x3 convs, 1 elsewhere), biases zero.

    Args:
        latent_dim: Size of the latent vector (>= 1); the paper uses 128.
        image_size: Output side S in pixels, a power of two from 16 to 256.
        channels: Output channels C (>= 1; 1 for grayscale, 3 for RGB).
        base_channels: Width of every block (>= 1); the paper uses 256 at 32x32.
    """

    def __init__(
        self,
        latent_dim: int = 128,
        image_size: int = 32,
        channels: int = 3,
        base_channels: int = 256,
    ) -> None:
        super().__init__()
        _check_positive(latent_dim, "generator.latent_dim")
        _check_positive(channels, "generator.channels")
        _check_positive(base_channels, "generator.base_channels")
        num_blocks = _check_size(image_size, "generator") - 2
        self.latent_dim = latent_dim
        self.image_shape = (channels, image_size, image_size)
        self.base_channels = base_channels

        # Project to 4x4, then double the side in each block at constant width.
        self.project = nn.Linear(latent_dim, 4 * 4 * base_channels)
        self.blocks = nn.Sequential(
            *(_UpBlock(base_channels, base_channels) for _ in range(num_blocks))
        )
        self.out_norm = nn.BatchNorm2d(base_channels)
        self.to_image = nn.Conv2d(base_channels, channels, 3, 1, 1)
        _xavier(self.project)
        _xavier(self.to_image)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(N, latent_dim)`` to images ``(N, C, S, S)`` in [-1, 1]."""
        h = self.project(z.reshape(z.shape[0], self.latent_dim))
        h = h.view(z.shape[0], self.base_channels, 4, 4)
        h = F.relu(self.out_norm(self.blocks(h)))
        return torch.tanh(self.to_image(h))


class ResNetDiscriminator(nn.Module):
    """Residual discriminator: images ``(N, C, S, S)`` to logits ``(N,)``.

    An optimized first block (halves the side), down blocks until the map is 8x8, two blocks
    at 8x8, ReLU, a sum over the spatial positions and a linear layer to one logit. Weights
    are Xavier-uniform (gain sqrt(2) on the residual-branch 3x3 convs, 1 elsewhere).

    Args:
        image_size: Input side S in pixels, a power of two from 16 to 256.
        channels: Input channels C (>= 1); ``k * C`` for PacGAN packs of ``k`` samples.
        base_channels: Width of every block (>= 1); the paper uses 128 at 32x32. It is also
            the size F of :meth:`features`.
        spectral_norm: Spectrally normalise every conv and linear weight (one power
            iteration per training-mode forward pass). False gives the plain network, e.g.
            for WGAN-GP.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 3,
        base_channels: int = 128,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        _check_positive(channels, "discriminator.channels")
        _check_positive(base_channels, "discriminator.base_channels")
        log_size = _check_size(image_size, "discriminator")
        self.image_shape = (channels, image_size, image_size)

        # S -> S/2 in the first block, halve down to 8x8, then two blocks at 8x8.
        width = base_channels
        blocks: list[nn.Module] = [_FirstDownBlock(channels, width)]
        blocks += [_DownBlock(width, width, downsample=True) for _ in range(log_size - 4)]
        blocks += [_DownBlock(width, width, downsample=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(width, 1)

        _xavier(self.classifier)

        # Blocks and layers are initialised above: spectral norm wraps the current weights.
        if spectral_norm:
            apply_spectral_norm(self)

    def features(self, x: Tensor) -> Tensor:
        """Sum-pooled features ``(N, base_channels)`` of images ``(N, C, S, S)`` in [-1, 1]."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Score images ``(N, C, S, S)`` in [-1, 1]; returns logits ``(N,)``."""
        return self.classifier(self.features(x)).flatten()
