"""Mode coverage: how many modes of a known mixture a generator reaches, and how evenly.

Protocol of PacGAN (Lin et al., arXiv:1712.04086) after VEEGAN (Srivastava et al.,
arXiv:1705.07761):

- 2-D mixtures: each generated point is assigned to its nearest mode. It is *high quality*
  when it lies within 3 standard deviations (Euclidean distance ``3 * std``) of that mode. A
  mode is *covered* when at least one high-quality point is assigned to it. The reverse KL is
  ``KL(q || p)`` between the histogram ``q`` of all points' nearest modes and the true,
  uniform mode weights ``p``.
- Stacked digits: a classifier labels each generated image with one of 1,000 modes; a mode is
  covered when at least one image gets its label; the KL is ``KL(q || uniform)``.

``0 log 0`` is taken as 0, so an empty mode adds nothing to the KL.
"""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw
from torch import Tensor


def kl_to_uniform(counts: Tensor) -> float:
    """``KL(q || uniform)`` in nats for a histogram of counts ``(K,)`` (any non-zero total)."""
    q = counts.double() / counts.sum()
    nonzero = q[q > 0]
    return float((nonzero * (nonzero * counts.numel()).log()).sum())


def mixture_coverage(points: Tensor, modes: Tensor, std: float) -> dict[str, float]:
    """Modes covered, high-quality percentage and reverse KL of 2-D generated points.

    Args:
        points: ``(N, 2)`` generated points.
        modes: ``(K, 2)`` mode means of the true mixture (equal weights).
        std: Standard deviation of each mode per coordinate (> 0).

    Returns:
        ``modes_covered`` (0..K), ``high_quality_pct`` (0..100) and ``reverse_kl`` (nats).
    """
    distances = torch.cdist(points.double(), modes.double().to(points.device))
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= 3 * std
    covered = torch.bincount(nearest[good], minlength=len(modes)) > 0
    histogram = torch.bincount(nearest, minlength=len(modes))
    return {
        "modes_covered": float(covered.sum()),
        "high_quality_pct": float(good.double().mean() * 100),
        "reverse_kl": kl_to_uniform(histogram.cpu()),
    }


def label_coverage(labels: Tensor, num_modes: int) -> dict[str, float]:
    """Modes covered and ``KL(q || uniform)`` of predicted mode labels ``(N,)`` in 0..K-1."""
    histogram = torch.bincount(labels.long().cpu(), minlength=num_modes)
    return {
        "modes_covered": float((histogram > 0).sum()),
        "kl_uniform": kl_to_uniform(histogram),
    }


def scatter_plot(
    real: Tensor, fake: Tensor, modes: Tensor, size: int = 512, radius: int = 1
) -> Image.Image:
    """A square RGB image of real points (blue), generated points (red) and modes (black +).

    The view spans the modes plus a margin of a quarter of their extent on every side.
    """
    low = modes.min(0).values.double()
    high = modes.max(0).values.double()
    span = float((high - low).max().clamp_min(1e-6))
    low, high = low - span / 4, low + span * 1.25
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)

    def to_pixels(xy: Tensor) -> Tensor:
        scaled = (xy.double().cpu() - low) / (high - low) * (size - 1)
        scaled[:, 1] = size - 1 - scaled[:, 1]  # Image rows grow downwards.
        return scaled.round().long()

    for points, color in ((real, (70, 110, 220)), (fake, (220, 50, 50))):
        for x, y in to_pixels(points).tolist():
            if 0 <= x < size and 0 <= y < size:
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)
    arm = max(3, size // 100)
    for x, y in to_pixels(modes).tolist():
        draw.line((x - arm, y, x + arm, y), fill="black")
        draw.line((x, y - arm, x, y + arm), fill="black")
    return image
