"""Intra-class FID: a hand-computed case, identical classes, agreement with per-class FID."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.metrics import FeatureSet, frechet_distance, intra_class_frechet_distance


def test_one_dimensional_classes_by_hand() -> None:
    # In 1-D, FID = (m_r - m_f)^2 + (s_r - s_f)^2 with unbiased standard deviations s.
    real = FeatureSet(
        torch.tensor([[0.0], [2.0], [1.0], [1.0], [1.0], [5.0]]),
        torch.tensor([0, 0, 1, 1, 1, 2]),
    )
    fake = FeatureSet(
        torch.tensor([[3.0], [7.0], [4.0], [4.0], [9.0], [0.0], [0.0]]),
        torch.tensor([0, 0, 1, 1, 2, 3, 3]),
    )
    values = intra_class_frechet_distance(real, fake)
    # Class 0: means 1 and 5, variances 2 and 8: 16 + (sqrt 2 - sqrt 8)^2 = 16 + 2.
    # Class 1: means 1 and 4, variances 0 and 0: 9.
    # Class 2 has one sample per set and class 3 no real samples: both are left out.
    assert values.keys() == {0, 1}
    assert values[0] == pytest.approx(18.0, abs=1e-9)
    assert values[1] == pytest.approx(9.0, abs=1e-9)
    assert sum(values.values()) / len(values) == pytest.approx(13.5, abs=1e-9)


def test_identical_classes_give_zero() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(300, 8, generator=generator)
    labels = torch.arange(300) % 3
    shuffled = torch.randperm(300, generator=generator)
    real = FeatureSet(features, labels)
    fake = FeatureSet(features[shuffled], labels[shuffled])
    values = intra_class_frechet_distance(real, fake)
    assert values.keys() == {0, 1, 2}
    for value in values.values():
        assert value == pytest.approx(0.0, abs=1e-8)


def test_each_class_equals_fid_of_its_subsets() -> None:
    generator = torch.Generator().manual_seed(1)
    real_labels = torch.randint(4, (400,), generator=generator)
    fake_labels = torch.randint(4, (300,), generator=generator)
    # Each class has its own mean, and the generated classes are shifted and scaled.
    centers = torch.randn(4, 6, generator=generator) * 3
    real_x = centers[real_labels] + torch.randn(400, 6, generator=generator)
    fake_x = centers[fake_labels] * 1.2 + 1.5 * torch.randn(300, 6, generator=generator)
    values = intra_class_frechet_distance(
        FeatureSet(real_x, real_labels), FeatureSet(fake_x, fake_labels)
    )
    assert values.keys() == {0, 1, 2, 3}
    for label, value in values.items():
        expected = frechet_distance(
            FeatureSet(real_x[real_labels == label]), FeatureSet(fake_x[fake_labels == label])
        )
        assert value == pytest.approx(expected, rel=1e-10)
        assert value > 0.5  # Scaled spread: every class is measurably apart.
    # Mixing the classes hides the per-class shift: the pooled FID is a different number.
    pooled = frechet_distance(FeatureSet(real_x), FeatureSet(fake_x))
    assert not math.isclose(pooled, sum(values.values()) / 4, rel_tol=1e-3)


def test_missing_labels_are_refused() -> None:
    features = torch.zeros(4, 2)
    with pytest.raises(ConfigurationError, match="generated labels None"):
        intra_class_frechet_distance(FeatureSet(features, torch.zeros(4)), FeatureSet(features))
