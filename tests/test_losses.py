import math

import pytest
import torch

from gan_lightning import losses

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
