"""Discriminator layers that look at a whole minibatch to fight mode collapse.

Papers:
- ``MinibatchStdDev``: Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for Improved
  Quality, Stability, and Variation", arXiv:1710.10196 (section 3).
- ``MinibatchDiscrimination``: Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen,
  "Improved Techniques for Training GANs", arXiv:1606.03498 (section 3.2).

Differences from the papers:
- ``MinibatchStdDev`` computes ``sqrt(var + eps) - sqrt(eps)`` with ``eps = 1e-8`` instead of
  ``sqrt(var + eps)``: the gradient stays finite at zero variance and identical samples give a
  feature of exactly 0. The shift is a constant that the next layer's bias absorbs.
- ``MinibatchStdDev`` also accepts flat features ``(N, F)``, not only feature maps, and splits
  the channels into ``num_features`` groups as in StyleGAN2 (the paper uses one).
- ``MinibatchDiscrimination`` leaves each sample out of its own sum: the paper's
  ``o(x_i) = sum_j c(x_i, x_j)`` includes ``j = i``, which always adds ``exp(0) = 1``; we
  subtract that 1, so a batch of one gives 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError

# Added to the variance before the square root; its square root is subtracted again.
_STD_EPS = 1e-8


class MinibatchStdDev(nn.Module):
    """Append the standard deviation across groups of samples as constant feature(s).

    The batch is split into groups of ``G = min(group_size, N)`` samples (sample ``n`` is in
    group ``n % (N // G)``). For each group and each of the ``num_features`` channel blocks,
    the standard deviation over the group of every feature is averaged into one number, which
    is appended to all samples of the group as a constant map (or column). A generator that
    collapses to few outputs makes this number small, which the discriminator can detect.

    Args:
        group_size: Samples per group (>= 1); capped at the batch size. The batch size must
            be divisible by the resulting group size.
        num_features: Statistics appended per sample (>= 1); the input's channels are split
            into this many equal blocks, each giving one statistic.

    Shapes:
        ``(N, C, H, W) -> (N, C + num_features, H, W)`` or ``(N, F) -> (N, F + num_features)``.
    """

    def __init__(self, group_size: int = 4, num_features: int = 1) -> None:
        super().__init__()
        if group_size < 1:
            raise ConfigurationError(
                f"MinibatchStdDev.group_size must be at least 1, got {group_size}. Use 4 "
                "(the paper's value)."
            )
        if num_features < 1:
            raise ConfigurationError(
                f"MinibatchStdDev.num_features must be at least 1, got {num_features}. Use 1."
            )
        self.group_size = group_size
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        """Append the statistic(s): ``(N, C, H, W)`` or ``(N, F)`` to one more feature each."""
        flat = x.dim() == 2
        if flat:
            x = x[:, :, None, None]
        if x.dim() != 4:
            raise ConfigurationError(
                f"MinibatchStdDev expects (N, C, H, W) or (N, F) input, got shape {tuple(x.shape)}."
            )
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        f = self.num_features
        if n % g:
            raise ConfigurationError(
                f"MinibatchStdDev needs the batch size to be divisible by its group size: got "
                f"{n} samples for groups of {g}. Use a batch size that is a multiple of {g} "
                "(data.batch_size), or a smaller group_size."
            )
        if c % f:
            raise ConfigurationError(
                f"MinibatchStdDev.num_features={f} must divide the {c} input channels; use a "
                "num_features that divides them."
            )

        # (G, N/G, F, C/F, H, W): axis 0 runs over the members of each group.
        y = x.reshape(g, n // g, f, c // f, h, w).float()
        var = (y - y.mean(dim=0)).square().mean(dim=0)
        std = (var + _STD_EPS).sqrt() - math.sqrt(_STD_EPS)

        # One number per group and block, broadcast back to every member and position.
        stat = std.mean(dim=(2, 3, 4)).to(x.dtype)  # (N/G, F)
        stat = stat.reshape(1, n // g, f, 1, 1).expand(g, -1, -1, h, w).reshape(n, f, h, w)
        out = torch.cat([x, stat], dim=1)
        return out.flatten(1) if flat else out

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_features={self.num_features}"


class MinibatchDiscrimination(nn.Module):
    """Append, per sample, how close it is to the other samples of the batch.

    A learned tensor ``T`` of shape ``(A, B, C)`` maps each feature row ``x_i`` (length A) to
    ``M_i`` of shape ``(B, C)``. For each kernel ``b``, ``c_b(x_i, x_j) = exp(-||M_i,b -
    M_j,b||_1)`` and ``o(x_i)_b = sum_{j != i} c_b(x_i, x_j)``. The output is ``[x_i,
    o(x_i)]``. Memory grows as ``N^2 * B * C``.

    Args:
        in_features: Input features A per sample (>= 1).
        num_kernels: Kernels B, i.e. appended features (>= 1); the paper uses 100 on CIFAR-10.
        kernel_dim: Dimension C of each kernel's projection (>= 1); 5 is a common choice.

    Shapes:
        ``(N, A) -> (N, A + B)``.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int) -> None:
        super().__init__()
        for name, value in [
            ("in_features", in_features),
            ("num_kernels", num_kernels),
            ("kernel_dim", kernel_dim),
        ]:
            if value < 1:
                raise ConfigurationError(
                    f"MinibatchDiscrimination.{name} must be at least 1, got {value}."
                )
        self.in_features = in_features
        self.num_kernels = num_kernels
        self.kernel_dim = kernel_dim
        self.weight = nn.Parameter(torch.empty(in_features, num_kernels, kernel_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``T ~ N(0, 1 / A)``, so ``M`` has the scale of ``x`` whatever the input width."""
        nn.init.normal_(self.weight, 0.0, 1.0 / math.sqrt(self.in_features))

    def forward(self, x: Tensor) -> Tensor:
        """Append the closeness features: ``(N, A)`` to ``(N, A + B)``."""
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ConfigurationError(
                f"MinibatchDiscrimination expects input (N, {self.in_features}), got shape "
                f"{tuple(x.shape)}."
            )

        # M: (N, B, C); L1 distance between every pair of rows, per kernel: (N, N, B).
        m = torch.einsum("na,abc->nbc", x, self.weight)
        l1 = (m[:, None] - m[None, :]).abs().sum(dim=3)

        # Sum the similarities over the batch; the self term is exp(0) = 1 exactly.
        o = torch.exp(-l1).sum(dim=1) - 1.0
        return torch.cat([x, o], dim=1)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_kernels={self.num_kernels}, "
            f"kernel_dim={self.kernel_dim}"
        )
