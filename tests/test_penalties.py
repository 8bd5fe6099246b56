import pytest
import torch
from torch import Tensor, nn

from gan_lightning import penalties
from gan_lightning.errors import ConfigurationError


def linear_critic() -> nn.Module:
    """f(x) = w . x with w = (3, 4): the input gradient is w everywhere, with norm 5."""
    layer = nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
        layer.bias.fill_(0.7)
    return nn.Sequential(layer, nn.Flatten(0))


def full_conv_critic(channels: int = 3, size: int = 4) -> nn.Module:
    """A conv whose kernel covers the image: linear, with input gradient = the kernel."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(channels, 1, size, bias=False), nn.Flatten(0))


def nonlinear_critic() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))


def test_gradient_penalty_of_linear_critic_is_weight_times_norm_minus_one_squared():
    # ||w|| = 5 at every interpolate: 10 * (5 - 1)^2 = 160 whatever the points.
    torch.manual_seed(0)
    real, fake = torch.randn(32, 2) * 3, torch.randn(32, 2) + 5
    value = penalties.gradient_penalty(linear_critic(), real, fake, weight=10.0)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(160.0, abs=1e-4)


def test_r1_of_linear_critic_is_half_gamma_times_squared_norm():
    # gamma / 2 * ||w||^2 = 1 * 25.
    real = torch.randn(16, 2)
    assert penalties.r1_penalty(linear_critic(), real, gamma=2.0).item() == pytest.approx(25.0)


def test_penalties_on_images_take_the_norm_over_all_non_batch_dimensions():
    # The input gradient of every sample is the whole kernel (C, H, W), so the penalties
    # are 10 * (||k|| - 1)^2 and gamma / 2 * ||k||^2 with the norm over C, H and W together.
    critic = full_conv_critic()
    kernel_norm = critic[0].weight.detach().norm().item()
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gp = penalties.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx(10 * (kernel_norm - 1) ** 2, rel=1e-5)
    r1 = penalties.r1_penalty(critic, real, gamma=4.0)
    assert r1.item() == pytest.approx(2 * kernel_norm**2, rel=1e-5)


def test_gradient_penalty_of_nonlinear_critic_depends_on_the_points():
    # The 2-D counterpart of the image case, with a critic whose gradient varies: the penalty
    # must differ between interpolates, so the linear-critic answer above is no accident.
    critic = nonlinear_critic()
    real = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    first = penalties.gradient_penalty(critic, real, real + 1)
    second = penalties.gradient_penalty(critic, real * 3, real - 2)
    assert torch.isfinite(first) and torch.isfinite(second)
    assert first.item() != pytest.approx(second.item())


def test_interpolation_uses_one_coefficient_per_sample():
    # real - fake is at least 1 everywhere, so eps = (mixed - fake) / (real - fake) is stable.
    torch.manual_seed(0)
    fake = torch.randn(6, 3, 4, 4)
    real = fake + 1 + torch.rand(6, 3, 4, 4)
    mixed = penalties.interpolate(real, fake, torch.Generator().manual_seed(0))
    eps = (mixed - fake) / (real - fake)
    per_sample = eps.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-4)
    assert per_sample.min() >= 0 and per_sample.max() < 1
    assert per_sample[:, 0].unique().numel() == 6


def test_interpolation_is_reproducible_from_a_generator_and_detached():
    real = torch.randn(4, 2)
    fake = torch.randn(4, 2, requires_grad=True)
    a = penalties.interpolate(real, fake, torch.Generator().manual_seed(3))
    b = penalties.interpolate(real, fake, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not a.requires_grad


def test_penalties_are_differentiable_wrt_critic_parameters():
    critic = nonlinear_critic()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    for value in (
        penalties.gradient_penalty(critic, real, fake),
        penalties.r1_penalty(critic, real, gamma=10.0),
    ):
        critic.zero_grad()
        value.backward()
        first_layer = critic[0].weight.grad
        assert first_layer is not None and first_layer.abs().sum() > 0


def test_gradient_penalty_gradient_matches_finite_differences():
    # Double precision, fixed interpolation coefficients: autograd's double backward against
    # a numerical derivative w.r.t. the first layer's weight.
    torch.manual_seed(4)
    real, fake = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    w2 = torch.randn(3, dtype=torch.float64)

    def penalty_of(w1: Tensor) -> Tensor:
        def critic(x: Tensor) -> Tensor:
            return torch.tanh(x @ w1) @ w2

        rng = torch.Generator().manual_seed(0)
        return penalties.gradient_penalty(critic, real, fake, generator=rng)

    w1 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(penalty_of, (w1,))


def test_penalties_under_bfloat16_autocast_are_float32():
    # w = (3, 4) is exact in bfloat16, so the gradient and the penalties are too.
    critic = linear_critic()
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = penalties.gradient_penalty(critic, real, fake)
        r1 = penalties.r1_penalty(critic, real, gamma=2.0)
    assert gp.dtype == torch.float32 and r1.dtype == torch.float32
    assert gp.item() == pytest.approx(160.0, rel=1e-3)
    assert r1.item() == pytest.approx(25.0, rel=1e-3)


def test_penalty_arguments_are_validated():
    real = torch.randn(4, 2)
    with pytest.raises(ConfigurationError, match=r"real \(4, 2\) and fake \(3, 2\)"):
        penalties.gradient_penalty(linear_critic(), real, torch.randn(3, 2))
    with pytest.raises(ConfigurationError, match="gp_weight must be >= 0, got -1"):
        penalties.gradient_penalty(linear_critic(), real, real, weight=-1.0)
    with pytest.raises(ConfigurationError, match="r1_gamma must be >= 0, got -2"):
        penalties.r1_penalty(linear_critic(), real, gamma=-2.0)


def test_clip_weights_bounds_every_parameter_and_leaves_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(10)
    penalties.clip_weights_(net, 0.01)
    values = torch.cat([p.flatten() for p in net.parameters()])
    assert values.abs().max().item() == pytest.approx(0.01)
    assert (values.abs() <= 0.01).all()
    assert torch.equal(net[1].running_var, torch.ones(8))
    with pytest.raises(ConfigurationError, match="clip_value must be > 0, got 0"):
        penalties.clip_weights_(net, 0.0)


def test_feature_matching_is_squared_distance_of_batch_means():
    # real mean (1, 1), fake mean (1, 3): ||(0, -2)||^2 = 4.
    real = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    fake = torch.tensor([[1.0, 3.0], [1.0, 3.0]], requires_grad=True)
    value = penalties.feature_matching_loss(real, fake)
    assert value.item() == pytest.approx(4.0)
    value.backward()
    assert real.grad is None
    assert fake.grad.tolist() == [[0.0, 2.0], [0.0, 2.0]]


def test_feature_matching_of_identical_batches_is_zero():
    features = torch.randn(6, 4, 2, 2)
    assert penalties.feature_matching_loss(features, features.clone()).item() == 0.0
    with pytest.raises(ConfigurationError, match=r"real \(4,\) and fake \(5,\)"):
        penalties.feature_matching_loss(torch.randn(2, 4), torch.randn(2, 5))


def test_instance_noise_anneals_linearly_to_zero():
    schedule = [penalties.instance_noise_std(s, 0.2, 100) for s in (0, 25, 50, 100, 150)]
    assert schedule == pytest.approx([0.2, 0.15, 0.1, 0.0, 0.0])
    with pytest.raises(ConfigurationError, match="anneal_steps must be >= 1, got 0"):
        penalties.instance_noise_std(0, 0.1, 0)


def test_instance_noise_adds_scaled_normal_noise():
    x = torch.randn(3, 1, 4, 4)
    assert penalties.add_instance_noise(x, 0.0) is x
    noisy = penalties.add_instance_noise(x, 0.5, torch.Generator().manual_seed(0))
    expected_noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noisy - x, 0.5 * expected_noise, atol=1e-6)


def test_pack_concatenates_consecutive_samples_along_channels():
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2)
    packed = penalties.pack(x, 2)
    assert packed.shape == (2, 6, 2, 2)
    # Pack i, channel block j holds sample i*k + j.
    for i in range(2):
        for j in range(2):
            assert torch.equal(packed[i, 3 * j : 3 * j + 3], x[2 * i + j])
    assert penalties.pack(torch.randn(6, 5), 3).shape == (2, 15)


def test_pack_rejects_batches_not_divisible_by_k():
    with pytest.raises(ConfigurationError, match="k=2, got batch size 5"):
        penalties.pack(torch.randn(5, 3, 4, 4), 2)
    with pytest.raises(ConfigurationError, match="k must be >= 1, got 0"):
        penalties.pack(torch.randn(4, 3), 0)
