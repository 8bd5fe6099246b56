"""Feature extraction for the sample-quality metrics: one forward pass gives every feature.

The default network is torch-fidelity's ``inception-v3-compat``: the TensorFlow Inception-v3
graph of 2015-12-05 used by the reference FID, IS and KID code (Heusel et al.,
arXiv:1706.08500; Salimans et al., arXiv:1606.03498; Binkowski et al., arXiv:1801.01401),
with torch-fidelity's TensorFlow-1-compatible bilinear resize to 299x299. One forward pass
returns the 2048-d pool features (FID, KID, precision/recall) and, when Inception Score is
requested, the 1008 unbiased logits. Other torch-fidelity extractors (CLIP, DINOv2) are
selectable by name for the feature-distance metrics.

Differences from torch-fidelity's own pipeline: the network runs in channels-last memory
layout, which is faster on CPUs and changes features only at float32 rounding level (about
1e-6 relative).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gan_lightning.errors import ConfigurationError
from gan_lightning.images import to_rgb, to_uint8
from gan_lightning.metrics.weights import (
    FIX_HINT,
    check_weights_file,
    download_cache_path,
    file_digest,
    resolve_weights_path,
)

INCEPTION = "inception-v3-compat"
"""Name of the paper-comparable extractor (torch-fidelity's registry name)."""

POOL = "pool"
"""Key of the features used by FID, KID and precision/recall."""

LOGITS = "logits"
"""Key of the classifier logits used by the Inception Score (Inception only)."""


def extractor_names() -> list[str]:
    """The feature extractors torch-fidelity registers, e.g. ``inception-v3-compat``."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    return sorted(FEATURE_EXTRACTORS_REGISTRY)


def check_extractor_name(name: str, owner: str) -> None:
    """Raise :class:`ConfigurationError` unless ``name`` is a registered extractor.

    Args:
        name: Registry name, e.g. ``inception-v3-compat``, ``clip-vit-b-32``, ``dinov2-vit-s-14``.
        owner: The argument's name for the message, e.g. ``Metrics.feature_extractor``.
    """
    names = extractor_names()
    if name not in names:
        raise ConfigurationError(
            f"{owner} must be one of torch-fidelity's feature extractors ({', '.join(names)}), "
            f"got {name!r}. Use {INCEPTION!r} for paper-comparable values."
        )


def to_extractor_input(images: Tensor) -> Tensor:
    """The pixels a saved PNG would hold, as RGB: what every extractor receives.

    Args:
        images: ``(N, C, H, W)`` float in [-1, 1] (quantized with :func:`to_uint8`) or uint8
            in [0, 255] (passed through), with C = 1 or 3.

    Returns:
        ``(N, 3, H, W)`` uint8; one channel is repeated to three.
    """
    pixels = images if images.dtype == torch.uint8 else to_uint8(images)
    return to_rgb(pixels)


class FeatureExtractor:
    """A torch-fidelity feature extractor that returns pool features and logits in one pass.

    The weights are resolved and loaded when the object is built, so a missing, truncated or
    foreign file stops a run before training. ``images_seen`` counts every image passed
    through the network (tests use it to show that cached statistics are not recomputed).

    Args:
        name: torch-fidelity registry name; ``inception-v3-compat`` is the paper protocol.
        weights_path: Weights file. For Inception, None means ``$GAN_LIGHTNING_FID_WEIGHTS``
            and then torch-fidelity's download into the torch.hub cache; for other extractors
            None means torch-fidelity's download.
        with_logits: Also return the Inception logits (for the Inception Score).
        device: Where the network runs.
    """

    def __init__(
        self,
        name: str = INCEPTION,
        weights_path: str | None = None,
        with_logits: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        check_extractor_name(name, "feature_extractor")
        if with_logits and name != INCEPTION:
            raise ConfigurationError(
                f"the Inception Score needs the Inception classifier, but feature_extractor is "
                f"{name!r}. Use feature_extractor: {INCEPTION} or drop 'is' from metrics."
            )
        self.name = name
        self.with_logits = with_logits
        self.weights_file, self.layers = self._resolve(weights_path)
        self.network = self._build().to(device=device, memory_format=torch.channels_last)
        self.images_seen = 0
        if with_logits:
            self._check_classifier_head()

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def weights_id(self) -> str:
        """Identity of the weights for cache keys: the file's SHA-256, or the download's name."""
        if self.weights_file is None:
            return f"download:{self.name}"
        return file_digest(self.weights_file)

    def to(self, device: torch.device | str) -> FeatureExtractor:
        self.network.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        """Features of ``(N, C, H, W)`` images in [-1, 1] (or uint8) as float32 on the device.

        Returns:
            ``{"pool": (N, D)}`` plus ``{"logits": (N, 1008)}`` when built with logits.
        """
        pixels = to_extractor_input(images.to(self.device))
        outputs = self.network(pixels)
        self.images_seen += pixels.shape[0]
        features = {POOL: outputs[0].float()}
        if self.with_logits:
            features[LOGITS] = outputs[1].float()
        return features

    def _resolve(self, weights_path: str | None) -> tuple[Path | None, list[str]]:
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        cls = FEATURE_EXTRACTORS_REGISTRY[self.name]
        layers = [cls.get_default_feature_layer_for_metric("fid")]
        if self.with_logits:
            layers.append(cls.get_default_feature_layer_for_metric("isc"))
        if self.name == INCEPTION:
            path, source = resolve_weights_path(weights_path)
        else:
            path, source = (Path(weights_path), "weights_path") if weights_path else (None, "")
        if path is not None:
            check_weights_file(path, source)
        return path, layers

    def _build(self) -> nn.Module:
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        cls = FEATURE_EXTRACTORS_REGISTRY[self.name]
        path = None if self.weights_file is None else str(self.weights_file)
        try:
            return cls(self.name, self.layers, feature_extractor_weights_path=path, verbose=False)
        except Exception as err:  # Download and state-dict errors come in many types.
            if path is not None:
                raise ConfigurationError(
                    f"weights file {path!r} does not fit torch-fidelity's {self.name!r} "
                    f"({type(err).__name__}: {err}). {FIX_HINT}"
                ) from err
            where = (
                f"Put the file at {str(download_cache_path())!r}, or anywhere else and point "
                f"to it: {FIX_HINT}"
                if self.name == INCEPTION
                else "Download it on a machine with internet and pass its path as weights_path."
            )
            raise ConfigurationError(
                f"could not get the {self.name!r} weights through torch-fidelity's download "
                f"({type(err).__name__}: {err}). {where}"
            ) from err

    def _check_classifier_head(self) -> None:
        """Inception weights made for FID only carry NaN in place of the classifier."""
        head = self.network.fc.weight
        if not torch.isfinite(head).all():
            raise ConfigurationError(
                f"the Inception weights {str(self.weights_file)!r} have no classifier head "
                "(fc.weight holds NaN), so the Inception Score would be NaN. Use the full "
                "torch-fidelity 'inception-v3-compat' weights (weights-inception-2015-12-05-"
                "6726825d.pth) or drop 'is' from metrics."
            )
