import math

import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.layers import MinibatchDiscrimination, MinibatchStdDev

# ----------------------------------------------------------------- MinibatchStdDev


def test_stddev_appends_feature_maps_and_columns():
    x = torch.randn(8, 6, 4, 4)
    assert MinibatchStdDev()(x).shape == (8, 7, 4, 4)
    assert MinibatchStdDev(num_features=2)(x).shape == (8, 8, 4, 4)
    assert MinibatchStdDev()(torch.randn(8, 5)).shape == (8, 6)
    out = MinibatchStdDev()(x)
    assert torch.equal(out[:, :6], x)


def test_stddev_of_identical_samples_is_zero_with_finite_gradient():
    x = torch.randn(1, 3, 4, 4).repeat(8, 1, 1, 1).requires_grad_()
    out = MinibatchStdDev(group_size=4)(x)
    torch.testing.assert_close(out[:, 3], torch.zeros(8, 4, 4), atol=1e-6, rtol=0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_stddev_matches_a_hand_computed_value():
    # Two samples with features (0, 0) and (2, 4): population stds 1 and 2, mean 1.5.
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0]])
    out = MinibatchStdDev(group_size=2)(x)
    expected = (math.sqrt(1 + 1e-8) + math.sqrt(4 + 1e-8)) / 2 - math.sqrt(1e-8)
    assert out[:, 2].tolist() == pytest.approx([expected, expected], abs=1e-6)
    assert expected == pytest.approx(1.5, abs=2e-4)


def test_stddev_groups_are_strided_across_the_batch():
    # Groups of 2 in a batch of 4 are {0, 2} and {1, 3}: only the second group varies.
    x = torch.tensor([[1.0], [0.0], [1.0], [3.0]])
    stat = MinibatchStdDev(group_size=2)(x)[:, 1]
    assert stat.tolist() == pytest.approx([0.0, 1.5 - 1e-4, 0.0, 1.5 - 1e-4], abs=1e-6)


def test_stddev_splits_channels_into_num_features_blocks():
    # Channel block 0 is identical across the batch, block 1 is not.
    x = torch.zeros(4, 2, 1, 1)
    x[:, 1, 0, 0] = torch.tensor([0.0, 2.0, 0.0, 2.0])
    out = MinibatchStdDev(group_size=4, num_features=2)(x)
    assert out[:, 2].flatten().tolist() == pytest.approx([0.0] * 4, abs=1e-6)
    assert out[:, 3].flatten().tolist() == pytest.approx([1.0 - 1e-4] * 4, abs=1e-6)


def test_stddev_caps_the_group_at_the_batch_and_rejects_uneven_batches():
    assert MinibatchStdDev(group_size=4)(torch.randn(2, 3)).shape == (2, 4)
    assert MinibatchStdDev(group_size=4)(torch.randn(1, 3))[:, 3].item() == 0.0
    with pytest.raises(ConfigurationError, match="divisible.*got 6 samples for groups of 4"):
        MinibatchStdDev(group_size=4)(torch.randn(6, 3))
    with pytest.raises(ConfigurationError, match="num_features=2 must divide the 3"):
        MinibatchStdDev(num_features=2)(torch.randn(4, 3))
    with pytest.raises(ConfigurationError, match="expects"):
        MinibatchStdDev()(torch.randn(4, 3, 2))


@pytest.mark.parametrize("kwargs", [{"group_size": 0}, {"num_features": 0}])
def test_stddev_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigurationError, match="must be at least 1, got 0"):
        MinibatchStdDev(**kwargs)


# ----------------------------------------------------------------- MinibatchDiscrimination


def test_minibatch_discrimination_matches_a_hand_computed_value():
    layer = MinibatchDiscrimination(in_features=2, num_kernels=1, kernel_dim=2)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(2).view(2, 1, 2))  # M_i = x_i
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    out = layer(x)

    # L1 distances: d01 = 1, d02 = 2, d12 = 3; each row sums exp(-d) over the others.
    e = math.exp
    expected = [e(-1) + e(-2), e(-1) + e(-3), e(-2) + e(-3)]
    assert out.shape == (3, 3)
    assert torch.equal(out[:, :2], x)
    assert out[:, 2].tolist() == pytest.approx(expected, rel=1e-6)


def test_minibatch_discrimination_sums_kernels_separately():
    layer = MinibatchDiscrimination(in_features=1, num_kernels=2, kernel_dim=1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0]).view(1, 2, 1))
    out = layer(torch.tensor([[0.0], [1.0]]))
    # Kernel 0 sees distance 1, kernel 1 distance 2.
    expected = torch.tensor([[math.exp(-1), math.exp(-2)]] * 2)
    torch.testing.assert_close(out[:, 1:], expected, rtol=1e-6, atol=0)


def test_minibatch_discrimination_leaves_each_sample_out_and_learns():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(in_features=6, num_kernels=4, kernel_dim=3)
    assert layer(torch.randn(1, 6))[:, 6:].abs().max().item() == 0.0

    # Identical samples are at distance 0 from the others: each adds exactly 1 per kernel.
    same = layer(torch.randn(1, 6).repeat(5, 1))
    torch.testing.assert_close(same[:, 6:], torch.full((5, 4), 4.0))

    layer(torch.randn(5, 6)).sum().backward()
    assert layer.weight.grad.abs().sum() > 0


def test_minibatch_discrimination_rejects_bad_arguments_and_input():
    with pytest.raises(ConfigurationError, match="num_kernels must be at least 1, got 0"):
        MinibatchDiscrimination(4, 0, 5)
    with pytest.raises(ConfigurationError, match=r"expects input \(N, 4\), got shape \(2, 3\)"):
        MinibatchDiscrimination(4, 2, 5)(torch.randn(2, 3))
