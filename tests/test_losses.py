import math

import pytest
import torch

from gan_lightning import losses
from gan_lightning.errors import ConfigurationError

LN3 = math.log(3.0)


def test_discriminator_loss_matches_hand_computed_value():
    # D = sigmoid(logit): real logits 0, ln 3 give D = 1/2, 3/4; fake logits 0, -ln 3 give
    # D = 1/2, 1/4. Loss = -mean log D(real) - mean log(1 - D(fake)).
    real = torch.tensor([0.0, LN3])
    fake = torch.tensor([0.0, -LN3])
    expected = -(math.log(0.5) + math.log(0.75)) / 2 - (math.log(0.5) + math.log(0.75)) / 2
    assert losses.minimax_discriminator_loss(real, fake).item() == pytest.approx(expected)


def test_minimax_generator_loss_is_mean_log_one_minus_d():
    fake = torch.tensor([0.0, LN3])  # D = 1/2, 3/4
    expected = (math.log(0.5) + math.log(0.25)) / 2
    assert losses.minimax_generator_loss(fake).item() == pytest.approx(expected)


def test_non_saturating_generator_loss_is_minus_mean_log_d():
    fake = torch.tensor([0.0, LN3])
    expected = -(math.log(0.5) + math.log(0.75)) / 2
    assert losses.non_saturating_generator_loss(fake).item() == pytest.approx(expected)


def test_saturating_loss_gradient_vanishes_where_non_saturating_does_not():
    # D confidently rejects the sample (logit -10): d/dlogit log(1 - sigmoid) = -sigmoid(-10)
    # is tiny, d/dlogit -log sigmoid = -(1 - sigmoid(-10)) is about -1.
    fake = torch.tensor([-10.0], requires_grad=True)
    losses.minimax_generator_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(-10.0)).item())
    fake.grad = None
    losses.non_saturating_generator_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-(1 - torch.sigmoid(torch.tensor(-10.0))).item())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_losses_stay_finite_for_extreme_and_low_precision_logits(dtype):
    logits = torch.tensor([-1e4, 1e4, 0.0]).to(dtype)
    for value in (
        losses.minimax_discriminator_loss(logits, logits),
        losses.minimax_generator_loss(logits),
        losses.non_saturating_generator_loss(logits),
    ):
        assert value.dtype == torch.float32
        assert torch.isfinite(value)
    # -log sigmoid(-1e4) = 1e4 exactly in float32; a naive log(sigmoid) gives inf.
    assert losses.non_saturating_generator_loss(torch.tensor([-1e4])).item() == 1e4


# Shared logits for the losses that use raw scores: real = [1, -2], fake = [0.5, 3].
REAL = torch.tensor([1.0, -2.0])
FAKE = torch.tensor([0.5, 3.0])


def test_least_squares_losses_match_hand_computed_values():
    # D, a=0, b=1: real (1-1)^2 = 0, (-2-1)^2 = 9, mean 4.5; fake 0.5^2 = 0.25, 3^2 = 9,
    # mean 4.625. Loss = 0.5 * 4.5 + 0.5 * 4.625 = 4.5625.
    assert losses.least_squares_discriminator_loss(REAL, FAKE).item() == pytest.approx(4.5625)
    # G, c=1: (0.5-1)^2 = 0.25, (3-1)^2 = 4, mean 2.125, times 0.5 = 1.0625.
    assert losses.least_squares_generator_loss(FAKE).item() == pytest.approx(1.0625)


def test_least_squares_losses_follow_their_targets():
    # a=-1, b=1: real mean 4.5 as above; fake (0.5+1)^2 = 2.25, (3+1)^2 = 16, mean 9.125.
    # Loss = 0.5 * (4.5 + 9.125) = 6.8125. G with c=0: 0.5 * (0.25 + 9) / 2 = 2.3125.
    value = losses.least_squares_discriminator_loss(REAL, FAKE, a=-1.0, b=1.0)
    assert value.item() == pytest.approx(6.8125)
    assert losses.least_squares_generator_loss(FAKE, c=0.0).item() == pytest.approx(2.3125)


def test_wasserstein_losses_match_hand_computed_values():
    # mean(fake) = 1.75, mean(real) = -0.5: critic 1.75 - (-0.5) = 2.25, generator -1.75.
    assert losses.wasserstein_critic_loss(REAL, FAKE).item() == pytest.approx(2.25)
    assert losses.wasserstein_generator_loss(FAKE).item() == pytest.approx(-1.75)


def test_hinge_losses_match_hand_computed_values():
    # relu(1 - real) = [0, 3], mean 1.5; relu(1 + fake) = [1.5, 4], mean 2.75; sum 4.25.
    assert losses.hinge_discriminator_loss(REAL, FAKE).item() == pytest.approx(4.25)
    assert losses.hinge_generator_loss(FAKE).item() == pytest.approx(-1.75)


def test_hinge_ignores_samples_beyond_the_margin():
    # Real score 2 > 1 and fake score -3 < -1 are separated by the margin: zero gradient.
    # Real score 0.5 and fake score 0 are inside it: gradient -1/2 and +1/2 (mean over 2).
    real = torch.tensor([2.0, 0.5], requires_grad=True)
    fake = torch.tensor([-3.0, 0.0], requires_grad=True)
    losses.hinge_discriminator_loss(real, fake).backward()
    assert real.grad.tolist() == [0.0, -0.5]
    assert fake.grad.tolist() == [0.0, 0.5]


def test_one_sided_label_smoothing_matches_hand_computed_value():
    # real_label 0.9. Real logits 0, ln 3: softplus(-0) = softplus(0) = ln 2, so the first
    # term is ln 2; softplus(-ln 3) = ln(4/3), softplus(ln 3) = ln 4, so the second is
    # 0.9 ln(4/3) + 0.1 ln 4. Fake logits 0, -ln 3: softplus = ln 2, ln(4/3) (unsmoothed).
    real = torch.tensor([0.0, LN3])
    fake = torch.tensor([0.0, -LN3])
    real_term = (math.log(2) + 0.9 * math.log(4 / 3) + 0.1 * math.log(4)) / 2
    fake_term = (math.log(2) + math.log(4 / 3)) / 2
    value = losses.minimax_discriminator_loss(real, fake, real_label=0.9)
    assert value.item() == pytest.approx(real_term + fake_term)


def test_default_real_label_reproduces_the_unsmoothed_loss_bit_for_bit():
    torch.manual_seed(0)
    real, fake = torch.randn(64) * 20, torch.randn(64) * 20
    expected = (
        torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()
    )
    assert torch.equal(losses.minimax_discriminator_loss(real, fake), expected)
    assert torch.equal(losses.minimax_discriminator_loss(real, fake, real_label=1.0), expected)


@pytest.mark.parametrize("real_label", [0.0, -0.1, 1.5])
def test_real_label_outside_unit_interval_is_rejected(real_label):
    with pytest.raises(
        ConfigurationError, match=f"real_label must lie in \\(0, 1\\], got {real_label}"
    ):
        losses.minimax_discriminator_loss(REAL, FAKE, real_label=real_label)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_raw_score_losses_return_float32_for_low_precision_scores(dtype):
    real, fake = REAL.to(dtype), FAKE.to(dtype)
    for value, expected in (
        (losses.least_squares_discriminator_loss(real, fake), 4.5625),
        (losses.least_squares_generator_loss(fake), 1.0625),
        (losses.wasserstein_critic_loss(real, fake), 2.25),
        (losses.wasserstein_generator_loss(fake), -1.75),
        (losses.hinge_discriminator_loss(real, fake), 4.25),
        (losses.hinge_generator_loss(fake), -1.75),
    ):
        assert value.dtype == torch.float32
        assert value.item() == pytest.approx(expected)
