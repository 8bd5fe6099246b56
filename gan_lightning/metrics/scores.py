"""Sample-quality metrics computed from features: FID, KID, IS, precision/recall.

- FID: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", arXiv:1706.08500.
- KID: Binkowski et al., "Demystifying MMD GANs", arXiv:1801.01401 (unbiased MMD^2 with the
  cubic polynomial kernel, averaged over random subsets).
- IS: Salimans et al., "Improved Techniques for Training GANs", arXiv:1606.03498.
- Precision/recall: Kynkaanniemi et al., "Improved Precision and Recall Metric for Assessing
  Generative Models", arXiv:1904.06991 (k-NN balls in feature space).

All of them follow torch-fidelity's conventions (subset draws from ``numpy.random.RandomState``
with the same seed, the same split boundaries), so equal features give equal values.
Differences from torch-fidelity, all exact in real arithmetic:

- FID takes the trace of the matrix square root from the eigenvalues of a symmetric
  positive semi-definite matrix of size ``min(N_real, N_fake, D)`` instead of a general
  ``D x D`` eigen-decomposition, in float64; near-zero eigenvalues are clamped at 0 instead
  of giving tiny imaginary parts.
- KID builds each kernel matrix once and reads the subsets out of it, instead of recomputing
  the kernel per subset (when the sets are at most ``KID_FULL_KERNEL_MAX`` samples).
- IS puts the samples in a canonical order (lexicographic in the logits) before the seeded
  shuffle, so the score depends on the set of samples, not on the order they arrived in
  (ranks, batches). On inputs already in that order it equals torch-fidelity's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gan_lightning.errors import ConfigurationError

KID_FULL_KERNEL_MAX = 8192
"""Above this many samples per set, KID computes the kernel per subset to bound memory."""


# ---------------------------------------------------------------------------------------------
# FID.


@dataclass
class FeatureSet:
    """Features of one set of images and the statistics derived from them, computed lazily.

    Args:
        features: ``(N, D)`` float features (stored as given; statistics use float64).
        labels: ``(N,)`` long class labels, or None when the images have none.
    """

    features: Tensor
    labels: Tensor | None = None
    _cache: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def mean(self) -> Tensor:
        """``(D,)`` float64 mean of the features."""
        if "mean" not in self._cache:
            self._cache["mean"] = self.features.double().mean(0)
        return self._cache["mean"]

    @property
    def centered(self) -> Tensor:
        """``(N, D)`` float64 features minus their mean."""
        return self.features.double() - self.mean

    @property
    def covariance(self) -> Tensor:
        """``(D, D)`` float64 unbiased covariance (divided by N - 1), as ``numpy.cov``."""
        if "covariance" not in self._cache:
            centered = self.centered
            self._cache["covariance"] = centered.T @ centered / (len(self) - 1)
        return self._cache["covariance"]

    @property
    def covariance_factor(self) -> Tensor:
        """``L`` with ``L L^T`` = :attr:`covariance`: Cholesky, else the symmetric square root.

        The Cholesky factor needs a positive definite covariance (more samples than
        dimensions and no degenerate direction); otherwise the eigen-decomposition's square
        root (negative eigenvalues clamped to 0) is used, which is slower but always exists.
        """
        if "covariance_factor" not in self._cache:
            factor, info = torch.linalg.cholesky_ex(self.covariance)
            if int(info) != 0:
                values, vectors = torch.linalg.eigh(self.covariance)
                factor = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
            self._cache["covariance_factor"] = factor
        return self._cache["covariance_factor"]

    def cached(self, name: str, make: callable) -> Tensor:
        """A derived quantity computed once, e.g. a kernel matrix or k-NN radii."""
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]


def _trace_sqrt_product(real: FeatureSet, fake: FeatureSet) -> Tensor:
    """``tr sqrt(S_r S_f)`` through the smallest symmetric matrix with the same eigenvalues.

    With centered features ``X`` of the smaller set (n rows), ``S_r S_f`` has the non-zero
    eigenvalues of ``X S_other X^T / (n - 1)``, an ``n x n`` positive semi-definite matrix
    (built from ``X Y^T`` when the other set is also smaller than the dimension). With more
    samples than dimensions in both sets, ``L^T S_f L`` with ``L L^T = S_r`` is used instead
    (``D x D``). Only eigenvalues are computed, never eigenvectors, on the real side's cached
    statistics.
    """
    dim = real.features.shape[1]
    small, large = (real, fake) if len(real) <= len(fake) else (fake, real)
    if len(small) < dim:
        x = small.centered
        if len(large) < dim:
            product = x @ large.centered.T
            matrix = product @ product.T / ((len(small) - 1) * (len(large) - 1))
        else:
            matrix = x @ large.covariance @ x.T / (len(small) - 1)
    else:
        factor = real.covariance_factor
        matrix = factor.T @ fake.covariance @ factor
    eigenvalues = torch.linalg.eigvalsh((matrix + matrix.T) / 2)
    return eigenvalues.clamp_min(0).sqrt().sum()


def frechet_distance(real: FeatureSet, fake: FeatureSet) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on Inception pool).

    ``|mu_r - mu_f|^2 + tr(S_r) + tr(S_f) - 2 tr sqrt(S_r S_f)`` in float64.

    Args:
        real: Real features (>= 2 samples); its statistics are cached on the object.
        fake: Generated features (>= 2 samples), same dimension.
    """
    _check_pair(real.features, fake.features, "frechet_distance", minimum=2)
    diff = real.mean - fake.mean
    trace_fake = fake.centered.square().sum() / (len(fake) - 1)
    trace_real = real.cached("covariance_trace", lambda: real.covariance.diagonal().sum())
    value = diff.dot(diff) + trace_real + trace_fake - 2 * _trace_sqrt_product(real, fake)
    return float(value)


def intra_class_frechet_distance(real: FeatureSet, fake: FeatureSet) -> dict[int, float]:
    """FID per class between real and generated features with class labels.

    Intra-class FID as in Miyato & Koyama, "cGANs with Projection Discriminator",
    arXiv:1802.05637: the FID of each class's generated samples against that class's real
    samples; their mean is the reported value.

    Args:
        real: Real features with ``labels``.
        fake: Generated features with ``labels`` (the classes they were conditioned on).

    Returns:
        ``{class: FID}`` for every class present in both sets with at least 2 samples each.
    """
    if real.labels is None or fake.labels is None:
        raise ConfigurationError(
            "intra-class FID needs labels for both real and generated features, got "
            f"real labels {'present' if real.labels is not None else 'None'} and generated "
            f"labels {'present' if fake.labels is not None else 'None'}. Use a conditional "
            "model and a labelled data module."
        )
    values = {}
    for label in sorted(set(real.labels.tolist()) & set(fake.labels.tolist())):
        real_rows, fake_rows = real.labels == label, fake.labels == label
        if int(real_rows.sum()) >= 2 and int(fake_rows.sum()) >= 2:
            values[label] = frechet_distance(
                FeatureSet(real.features[real_rows]), FeatureSet(fake.features[fake_rows])
            )
    return values


# ---------------------------------------------------------------------------------------------
# KID.


def _polynomial_kernel(x: Tensor, y: Tensor, degree: int, gamma: float | None, coef0: float):
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x.float() @ y.float().T).double().mul(gamma).add(coef0).pow(degree)


def _unbiased_mmd2(k_ff: Tensor, k_fr: Tensor, k_rr: Tensor) -> Tensor:
    """Unbiased MMD^2 from ``m x m`` kernel blocks (diagonals of the within-set blocks out)."""
    m = k_ff.shape[0]
    within = k_ff.sum() - k_ff.diagonal().sum() + k_rr.sum() - k_rr.diagonal().sum()
    return within / (m * (m - 1)) - 2 * k_fr.sum() / (m * m)


def kernel_inception_distance(
    real: FeatureSet,
    fake: FeatureSet,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over random subsets.

    Subsets are drawn as torch-fidelity draws them: ``RandomState(seed)``, then per subset
    ``choice(n_fake, m, replace=False)`` for the generated and then the real features.

    Args:
        real: Real features.
        fake: Generated features, same dimension.
        subsets: Number of subsets (>= 1).
        subset_size: Samples per subset m (2 <= m <= both set sizes; callers clamp it).
        degree, gamma, coef0: Kernel ``(gamma x.y + coef0)^degree``; gamma None is 1 / D.
        seed: Seed of the subset draws.
    """
    _check_pair(real.features, fake.features, "kernel_inception_distance", minimum=2)
    n_fake, n_real = len(fake), len(real)
    if not 2 <= subset_size <= min(n_fake, n_real):
        raise ConfigurationError(
            f"kid_subset_size must lie in [2, {min(n_fake, n_real)}] (the smaller set), got "
            f"{subset_size}. Lower kid_subset_size or raise num_real/num_fake."
        )
    kernel = lambda x, y: _polynomial_kernel(x, y, degree, gamma, coef0)  # noqa: E731
    full = max(n_fake, n_real) <= KID_FULL_KERNEL_MAX
    if full:
        k_ff = kernel(fake.features, fake.features)
        k_fr = kernel(fake.features, real.features)
        name = f"kid_kernel_{degree}_{gamma}_{coef0}"
        k_rr = real.cached(name, lambda: kernel(real.features, real.features))

    rng = np.random.RandomState(seed)
    values = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        f = torch.as_tensor(rng.choice(n_fake, subset_size, replace=False))
        r = torch.as_tensor(rng.choice(n_real, subset_size, replace=False))
        if full:
            f, r = f.to(k_ff.device), r.to(k_ff.device)
            blocks = (k_ff[f][:, f], k_fr[f][:, r], k_rr[r][:, r])
        else:
            x = fake.features[f.to(fake.features.device)]
            y = real.features[r.to(real.features.device)]
            blocks = (kernel(x, x), kernel(x, y), kernel(y, y))
        values[i] = _unbiased_mmd2(*blocks).cpu()
    return float(values.mean()), float(values.std(unbiased=False))


# ---------------------------------------------------------------------------------------------
# Inception Score.


def canonical_order(rows: Tensor) -> Tensor:
    """Indices that sort ``(N, K)`` rows lexicographically (column 0 first): a set's order."""
    array = rows.detach().double().cpu().numpy()
    return torch.as_tensor(np.lexsort(array.T[::-1]))


def inception_score(
    logits: Tensor, splits: int = 10, seed: int = 2020, canonical: bool = True
) -> tuple[float, float]:
    """Inception Score: mean and standard deviation over splits of ``exp E[KL(p(y|x) || p(y))]``.

    Args:
        logits: ``(N, K)`` classifier logits (Inception's 1008 unbiased logits).
        splits: Number of splits (1 <= splits <= N); split i holds samples
            ``[i N / splits, (i + 1) N / splits)`` of the shuffled order.
        seed: Seed of the shuffle, ``RandomState(seed).permutation(N)`` as in torch-fidelity.
        canonical: Sort the rows lexicographically before the shuffle, so the score does not
            depend on the input order. False reproduces torch-fidelity on the order given.
    """
    n = logits.shape[0]
    if logits.ndim != 2 or not 1 <= splits <= n:
        raise ConfigurationError(
            f"isc_splits must lie in [1, {n}] (the number of generated samples), got {splits}. "
            "Lower isc_splits or generate more samples."
        )
    logits = logits.detach().double().cpu()
    if canonical:
        logits = logits[canonical_order(logits)]
    logits = logits[torch.as_tensor(np.random.RandomState(seed).permutation(n))]

    log_p = logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = part.exp().mean(0).log()
        kl = (part.exp() * (part - log_marginal)).sum(1).mean()
        scores.append(math.exp(float(kl)))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------------------------
# Precision and recall.


def _knn_radii(features: Tensor, k: int, chunk: int) -> Tensor:
    """Distance from each row to its k-th nearest other row (the row itself is at 0)."""
    radii = [
        torch.cdist(part, features).kthvalue(k + 1, dim=1).values for part in features.split(chunk)
    ]
    return torch.cat(radii)


def _inside_any_ball(points: Tensor, centers: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """Fraction of ``points`` within the ball of at least one center."""
    inside = [(torch.cdist(part, centers) <= radii).any(dim=1) for part in points.split(chunk)]
    return torch.cat(inside).double().mean()


def precision_recall(
    real: FeatureSet, fake: FeatureSet, neighborhood: int = 3, chunk: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall: k-NN balls in feature space.

    Precision is the fraction of generated samples inside the k-NN ball of some real sample;
    recall is the fraction of real samples inside the k-NN ball of some generated sample.
    Distances are Euclidean in float32, as in torch-fidelity.

    Args:
        real: Real features (> neighborhood samples); its radii are cached on the object.
        fake: Generated features (> neighborhood samples).
        neighborhood: k of the k-th nearest neighbour that sets each ball's radius (>= 1).
        chunk: Rows per distance block, bounding memory to ``chunk x N`` floats.
    """
    _check_pair(real.features, fake.features, "precision_recall", minimum=neighborhood + 1)
    real_x, fake_x = real.features.float(), fake.features.float()
    real_radii = real.cached(f"knn_{neighborhood}", lambda: _knn_radii(real_x, neighborhood, chunk))
    fake_radii = _knn_radii(fake_x, neighborhood, chunk)
    precision = _inside_any_ball(fake_x, real_x, real_radii, chunk)
    recall = _inside_any_ball(real_x, fake_x, fake_radii, chunk)
    return float(precision), float(recall)


def _check_pair(real: Tensor, fake: Tensor, name: str, minimum: int) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"{name} expects two (N, D) feature tensors of equal D, got {tuple(real.shape)} "
            f"and {tuple(fake.shape)}."
        )
    if min(real.shape[0], fake.shape[0]) < minimum:
        raise ConfigurationError(
            f"{name} needs at least {minimum} real and generated samples, got "
            f"{real.shape[0]} real and {fake.shape[0]} generated. Raise num_real/num_fake."
        )
