"""The variants and the loop's options: short runs on the ring, math through the loop, errors."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from conftest import quiet_trainer
from lightning.pytorch.callbacks import Callback
from tiny_gans import (
    VARIANTS,
    LinearCritic,
    Recorder,
    data_for,
    fit,
    frozen_sgd,
    mlp_pair,
    ring,
)
from torch import Tensor, nn

from gan_lightning.data import DigitsDataModule
from gan_lightning.errors import ConfigurationError
from gan_lightning.models import (
    DCGAN,
    GAN,
    SpectralNormGAN,
    WassersteinGAN,
    WassersteinGANGP,
)
from gan_lightning.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
)


def with_linear_critic(variant: type, **kwargs) -> pl.LightningModule:
    """A variant whose critic is w . x with w = (3, 4), frozen (lr 0): ||grad|| = 5 always."""
    generator = MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[8])
    return variant(generator, LinearCritic(), optimizer_d=frozen_sgd, **kwargs)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_trains_without_nans(name, tmp_path):
    # The ring for every variant but the convolutional one, which trains on 16x16 digits.
    torch.manual_seed(0)
    model = VARIANTS[name]()
    data = data_for(name)
    trainer = fit(model, data, 40, tmp_path)

    assert trainer.global_step == 40
    for key in ("train/loss_d", "train/loss_g"):
        assert math.isfinite(trainer.callback_metrics[key].item()), key
    assert all(torch.isfinite(p).all() for p in model.parameters())
    samples = model.generate(model.sample_latent(256))
    assert samples.shape == (256, *data.sample_shape) and torch.isfinite(samples).all()


def test_wgan_critic_weights_stay_within_the_clip_value(tmp_path):
    model = WassersteinGAN(*mlp_pair(), n_critic=1, clip_value=0.01)
    fit(model, ring(), 3, tmp_path)
    weights = torch.cat([p.flatten() for p in model.discriminator.parameters()])
    assert weights.abs().max() <= 0.01
    # The bound is active: weights that started outside it sit on it now.
    assert (weights.abs() == 0.01).float().mean() > 0.2


def test_gradient_penalty_of_a_linear_critic_is_160_through_the_loop(tmp_path):
    # ||w|| = 5 at every interpolate, so the penalty is 10 * (5 - 1)^2 = 160.
    model = with_linear_critic(WassersteinGANGP, n_critic=2)
    recorder = Recorder()
    fit(model, ring(), 3, tmp_path, callbacks=[recorder])
    assert [m["train/gp"] for m in recorder.metrics] == pytest.approx([160.0] * 3, rel=1e-5)


def test_r1_of_a_linear_critic_with_gamma_2_is_25_through_the_loop(tmp_path):
    # R1 = gamma / 2 * ||w||^2 = 1 * 25 for every real sample.
    model = with_linear_critic(WassersteinGAN, n_critic=1, clip_value=None, r1_gamma=2.0)
    recorder = Recorder()
    fit(model, ring(), 2, tmp_path, callbacks=[recorder])
    assert [m["train/r1"] for m in recorder.metrics] == pytest.approx([25.0] * 2, rel=1e-5)


def test_lazy_r1_is_applied_every_k_discriminator_updates_and_scaled_by_k(tmp_path):
    model = with_linear_critic(
        WassersteinGAN, n_critic=1, clip_value=None, r1_gamma=2.0, r1_every=3
    )
    adversarial, totals = [], []
    loss_fn, backward = model.discriminator_loss, model.manual_backward
    model.discriminator_loss = lambda r, f: adversarial.append(loss_fn(r, f)) or adversarial[-1]
    model.manual_backward = lambda loss: totals.append(loss.detach()) or backward(loss)
    fit(model, ring(), 6, tmp_path)

    # Totals alternate D, G. D updates 0 and 3 carry R1 weighted 3 x 25; the others none.
    extra = [float(t - a.detach()) for t, a in zip(totals[0::2], adversarial, strict=True)]
    assert extra == pytest.approx([75.0, 0, 0, 75.0, 0, 0], abs=1e-4)


def test_packing_halves_the_discriminator_batch_and_doubles_its_inputs(tmp_path):
    model = GAN(*mlp_pair(pack=2), pack=2)
    shapes = []
    model.discriminator.register_forward_hook(lambda m, args, out: shapes.append(args[0].shape))
    fit(model, ring(batch_size=32), 1, tmp_path)
    # After the start-up shape check: D step on real and fake packs, G step on fake packs,
    # each (16, 4) for 32 points of shape (2,).
    assert shapes[1:] == [torch.Size([16, 4])] * 3


def test_ema_with_decay_one_half_follows_the_generator(tmp_path):
    torch.manual_seed(0)
    model = GAN(*mlp_pair(), ema_decay=0.5, ema_start_step=0)
    snapshots: list[dict[str, Tensor]] = []

    class Snapshot(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append({k: v.clone() for k, v in pl_module.generator.state_dict().items()})

    fit(model, ring(), 3, tmp_path, callbacks=[Snapshot()])
    # EMA_1 = w_1 (a copy), EMA_t = 0.5 EMA_(t-1) + 0.5 w_t.
    expected = snapshots[0]
    for weights in snapshots[1:]:
        expected = {k: 0.5 * expected[k] + 0.5 * weights[k] for k in expected}
    averaged = model.generator_ema.module.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(averaged[key], value)
    assert model.sampling_generator is model.generator_ema.module


def test_ema_over_weights_0_1_1_gives_one_half_then_three_quarters():
    generator = MLPGenerator(latent_dim=1, output_shape=[1], hidden_dims=[1])
    model = GAN(generator, MLPDiscriminator(input_shape=[1], hidden_dims=[1]), ema_decay=0.5)
    averaged = []
    for value in (0.0, 1.0, 1.0):
        with torch.no_grad():
            for p in generator.parameters():
                p.fill_(value)
        model.generator_ema.update_parameters(generator)
        averaged.append(next(model.generator_ema.module.parameters()).item())
    assert averaged == [0.0, 0.5, 0.75]


def test_ema_is_saved_in_checkpoints_and_waits_for_its_start_step(tmp_path):
    model = GAN(*mlp_pair(), ema_decay=0.9, ema_start_step=5)
    trainer = fit(model, ring(), 3, tmp_path)
    assert int(model.generator_ema.n_averaged) == 0
    assert model.sampling_generator is model.generator  # not started yet
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    state = torch.load(tmp_path / "a.ckpt", weights_only=False)["state_dict"]
    assert any(k.startswith("generator_ema.module.") for k in state)
    assert "generator_ema.n_averaged" in state


def test_learning_rate_schedulers_step_once_per_training_step(tmp_path):
    def step_lr(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    model = GAN(*mlp_pair(), n_critic=3, scheduler_g=step_lr, scheduler_d=step_lr)
    trainer = fit(model, ring(), 5, tmp_path)
    opt_g, opt_d = trainer.optimizers
    # Five steps: the rate halved after steps 2 and 4, for D too (not per D update).
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.25)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.25)


def test_scheduler_state_survives_a_resume(tmp_path):
    def step_lr(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    first = fit(GAN(*mlp_pair(), scheduler_g=step_lr), ring(), 3, tmp_path)
    first.save_checkpoint(tmp_path / "step3.ckpt")
    resumed = quiet_trainer(tmp_path, max_steps=5, limit_val_batches=0)
    resumed.fit(GAN(*mlp_pair(), scheduler_g=step_lr), ring(), ckpt_path=tmp_path / "step3.ckpt")
    assert resumed.lr_scheduler_configs[0].scheduler.last_epoch == 5
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.25)


def record_grad_norms(optimizer: torch.optim.Optimizer, norms: list[float]) -> None:
    """Record the total gradient norm each time ``optimizer`` actually steps."""

    def hook(opt, args, kwargs):
        grads = [p.grad for group in opt.param_groups for p in group["params"]]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    # After the step: Lightning runs its closure, and so the clipping, inside step().
    optimizer.register_step_post_hook(hook)


class GradNorms(Callback):
    def __init__(self) -> None:
        self.g: list[float] = []
        self.d: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        record_grad_norms(trainer.optimizers[0], self.g)
        record_grad_norms(trainer.optimizers[1], self.d)


def test_gradient_clipping_bounds_both_networks(tmp_path):
    recorder = GradNorms()
    model = GAN(*mlp_pair(), grad_clip_g=1e-3, grad_clip_d=2e-3)
    fit(model, ring(), 3, tmp_path, callbacks=[recorder])
    assert len(recorder.g) == len(recorder.d) == 3
    assert recorder.d == pytest.approx([2e-3] * 3, rel=1e-4)  # clipped down to the bound
    assert recorder.g == pytest.approx([1e-3] * 3, rel=1e-4)


def scaled_fp16_plugin():
    """16-mixed with a real loss scaler on CPU, as on a GPU: gradients arrive scaled by 2^10."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    return MixedPrecision("16-mixed", "cpu", scaler=scaler)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed+scaler"])
def test_gradient_clipping_acts_on_unscaled_gradients_under_mixed_precision(tmp_path, precision):
    recorder = GradNorms()
    model = GAN(*mlp_pair(), grad_clip_g=1e-3, grad_clip_d=2e-3)
    if precision == "bf16-mixed":
        options = {"precision": precision}
    else:
        options = {"plugins": [scaled_fp16_plugin()]}
    fit(model, ring(batch_size=8), 2, tmp_path, callbacks=[recorder], **options)
    assert recorder.d == pytest.approx([2e-3] * 2, rel=1e-3)
    assert recorder.g == pytest.approx([1e-3] * 2, rel=1e-3)


def test_feature_matching_trains_only_the_generator_in_its_phase(tmp_path):
    model = GAN(*mlp_pair(), feature_matching=True)
    recorder = Recorder()
    fit(model, ring(), 3, tmp_path, callbacks=[recorder])
    assert all(m["train/loss_g"] >= 0 for m in recorder.metrics)  # a squared distance


@pytest.mark.parametrize("anneal_steps", [0, 10])
def test_instance_noise_has_the_configured_std_at_the_start(anneal_steps):
    model = GAN(*mlp_pair(), instance_noise=0.5, instance_noise_steps=anneal_steps)
    torch.manual_seed(0)
    noisy = model._discriminator_input(torch.zeros(20000, 2))
    assert noisy.std().item() == pytest.approx(0.5, rel=0.02)


def test_constant_instance_noise_trains(tmp_path):
    # instance_noise_steps: 0 keeps the noise constant instead of annealing it.
    fit(GAN(*mlp_pair(), instance_noise=0.1), ring(), 3, tmp_path)


def test_diff_augment_changes_what_the_discriminator_sees_in_both_phases(tmp_path):
    model = DCGAN(
        DCGANGenerator(latent_dim=8, image_size=16, base_channels=8),
        DCGANDiscriminator(image_size=16, base_channels=8),
        diff_augment="translation,cutout",
    )
    inputs = []
    model.discriminator.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    fit(model, DigitsDataModule(image_size=16, batch_size=16), 1, tmp_path)
    real_in = inputs[0]
    # Cutout zeroes a quarter of every real image: far more exact zeros than the data has.
    zeros = (real_in == 0).flatten(1).float().mean(1)
    assert (zeros >= 0.25).all()


# ----------------------------------------------------------------- start-up errors


def test_weight_clipping_with_a_gradient_penalty_is_refused():
    with pytest.raises(ConfigurationError, match="clip_value .* and model.gp_weight"):
        WassersteinGANGP(*mlp_pair(), clip_value=0.01)


def test_pack_must_divide_the_batch_size(tmp_path):
    model = GAN(*mlp_pair(pack=3), pack=3)
    with pytest.raises(ConfigurationError, match="batch_size=32 is not divisible"):
        fit(model, ring(batch_size=32), 1, tmp_path)


def test_pack_needs_a_discriminator_with_k_times_the_inputs(tmp_path):
    with pytest.raises(ConfigurationError, match="With pack=2 it must take 2x"):
        fit(GAN(*mlp_pair(pack=1), pack=2), ring(), 1, tmp_path)


def test_label_smoothing_needs_a_cross_entropy_loss():
    with pytest.raises(ConfigurationError, match="label_smoothing applies to cross-entropy"):
        WassersteinGANGP(*mlp_pair(), label_smoothing=0.1)


def test_feature_matching_needs_discriminator_features():
    generator, _ = mlp_pair()
    with pytest.raises(ConfigurationError, match="features"):
        GAN(generator, nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), feature_matching=True)


def test_diff_augment_needs_images(tmp_path):
    with pytest.raises(ConfigurationError, match="diff_augment works on images"):
        fit(GAN(*mlp_pair(), diff_augment="translation"), ring(), 1, tmp_path)


def test_unknown_augmentation_names_the_option():
    with pytest.raises(ConfigurationError, match="model.diff_augment"):
        GAN(*mlp_pair(), diff_augment="rotate")


def test_sngan_requires_spectral_normalization():
    with pytest.raises(ConfigurationError, match="spectral_norm: true"):
        SpectralNormGAN(*mlp_pair(spectral_norm=False))


def test_reduce_on_plateau_is_refused(tmp_path):
    model = GAN(*mlp_pair(), scheduler_g=torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(ConfigurationError, match="ReduceLROnPlateau"):
        fit(model, ring(), 1, tmp_path)


def test_minibatch_std_groups_must_divide_the_batch(tmp_path):
    generator, _ = mlp_pair()
    discriminator = MLPDiscriminator(input_shape=[2], hidden_dims=[8], minibatch_std=True)
    with pytest.raises(ConfigurationError, match="groups of 4"):
        fit(GAN(generator, discriminator), ring(batch_size=30), 1, tmp_path)


@pytest.mark.parametrize(
    "option, value",
    [("gp_weight", -1.0), ("r1_every", 0), ("clip_value", 0.0), ("label_smoothing", 1.0),
     ("pack", 0), ("ema_decay", 1.0), ("instance_noise", -0.1)],
)  # fmt: skip
def test_out_of_range_options_name_the_option(option, value):
    with pytest.raises(ConfigurationError, match=f"model.{option} must be"):
        GAN(*mlp_pair(), **{option: value})


def test_bad_optimizer_arguments_name_the_option(tmp_path):
    def bad_adam(params):
        return torch.optim.Adam(params, lr=-1.0)

    with pytest.raises(ConfigurationError, match="model.optimizer_g cannot be built"):
        fit(GAN(*mlp_pair(), optimizer_g=bad_adam), ring(), 1, tmp_path)


def test_a_penalty_on_a_batch_norm_critic_warns(tmp_path):
    discriminator = DCGANDiscriminator(image_size=16, base_channels=8)  # BatchNorm by default
    model = WassersteinGANGP(DCGANGenerator(latent_dim=8, image_size=16, base_channels=8),
                             discriminator, n_critic=1)  # fmt: skip
    with pytest.warns(UserWarning, match="not per sample"):
        fit(model, DigitsDataModule(image_size=16, batch_size=8), 1, tmp_path)


def test_a_scheduler_that_fails_when_it_steps_is_refused_before_training(tmp_path):
    def zero_step_lr(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=0)

    trainer = quiet_trainer(tmp_path, max_steps=3, limit_val_batches=0)
    with pytest.raises(ConfigurationError, match="model.scheduler_g fails when it steps"):
        trainer.fit(GAN(*mlp_pair(), scheduler_g=zero_step_lr), ring())
    assert trainer.global_step == 0
