"""The shared loop: phase isolation, step semantics and start-up checks."""

import csv

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from gan_lightning.data import DigitsDataModule
from gan_lightning.errors import ConfigurationError
from gan_lightning.models import DCGAN, GANModule
from gan_lightning.networks import DCGANDiscriminator, DCGANGenerator


def tiny_gan(n_critic: int = 1, image_size: int = 16, **kwargs) -> DCGAN:
    return DCGAN(
        DCGANGenerator(latent_dim=8, image_size=image_size, channels=1, base_channels=8),
        DCGANDiscriminator(image_size=image_size, channels=1, base_channels=8),
        n_critic=n_critic,
        **kwargs,
    )


def trainer(tmp_path, max_steps: int, **kwargs) -> pl.Trainer:
    defaults = dict(
        default_root_dir=tmp_path,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    return pl.Trainer(**{**defaults, **kwargs})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.named_parameters() if not torch.equal(before[k], v)}


def test_discriminator_phase_changes_only_the_discriminator(tmp_path, monkeypatch):
    model = tiny_gan()
    # Step the generator's optimizer without gradients: Adam skips every parameter, and the
    # step still counts, so the run ends.
    monkeypatch.setattr(model, "_generator_update", lambda opt, real: opt.step())
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    trainer(tmp_path, 2).fit(model, DigitsDataModule(image_size=16, batch_size=16))
    assert changed(g_before, model.generator) == set()
    assert changed(d_before, model.discriminator) == set(d_before)
    assert all(p.grad is None for p in model.generator.parameters())


def test_generator_phase_changes_only_the_generator(tmp_path, monkeypatch):
    model = tiny_gan()
    monkeypatch.setattr(model, "_discriminator_update", lambda opt, real, d_step: None)
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    trainer(tmp_path, 2).fit(model, DigitsDataModule(image_size=16, batch_size=16))
    assert changed(d_before, model.discriminator) == set()
    assert changed(g_before, model.generator) == set(g_before)
    # The generator loss flows through D but leaves no gradient in it.
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert all(p.requires_grad for p in model.parameters())  # untoggled afterwards


@pytest.mark.parametrize("n_critic", [1, 5])
def test_a_step_is_one_generator_update(tmp_path, n_critic):
    model = tiny_gan(n_critic=n_critic)
    data = DigitsDataModule(image_size=16, batch_size=8)
    seen = []
    model.on_train_batch_start = lambda batch, idx: seen.append(batch[0].shape[0])
    logger = CSVLogger(tmp_path, name="csv")
    fit = trainer(tmp_path, 10, logger=logger, log_every_n_steps=1)
    fit.fit(model, data)

    assert fit.global_step == 10
    assert seen == [8 * n_critic] * 10  # each step reads n_critic fresh real batches
    opt_g, opt_d = fit.optimizers
    g_steps = {int(s["step"]) for s in opt_g.state.values()}
    d_steps = {int(s["step"]) for s in opt_d.state.values()}
    assert g_steps == {10} and d_steps == {10 * n_critic}

    # The logged x-axis counts completed steps too: 1..10, like checkpoints and grids.
    with open(logger.log_dir + "/metrics.csv") as f:
        logged = sorted({int(row["step"]) for row in csv.DictReader(f) if row["train/loss_g"]})
    assert logged == list(range(1, 11))


def test_losses_are_logged_on_the_loggers_schedule_only(tmp_path):
    logger = CSVLogger(tmp_path, name="csv")
    model = tiny_gan(n_critic=2)
    calls = []
    log = model.log
    model.log = lambda name, value, **kw: calls.append(name) or log(name, value, **kw)
    trainer(tmp_path, 10, logger=logger, log_every_n_steps=5).fit(
        model, DigitsDataModule(image_size=16, batch_size=8)
    )
    with open(logger.log_dir + "/metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["train/loss_g"]]
    assert [int(row["step"]) for row in rows] == [5, 10]
    assert all(row[k] for row in rows for k in ("train/loss_d", "train/d_real", "train/d_fake"))
    assert len(calls) == 2 * 4  # four metrics on each of the two logging steps


def test_checkpoint_names_count_steps(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=5, save_top_k=-1)
    fit = trainer(tmp_path, 10, callbacks=[ckpt], enable_checkpointing=True)
    fit.fit(tiny_gan(n_critic=3), DigitsDataModule(image_size=16, batch_size=8))
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["epoch=0-step=10.ckpt", "epoch=0-step=5.ckpt"]


def test_batch_not_divisible_by_n_critic_is_a_clear_error():
    model = tiny_gan(n_critic=3)
    with pytest.raises(ConfigurationError, match="cannot be split into n_critic=3"):
        model.training_step(torch.zeros(7, 1, 16, 16), 0)


@pytest.mark.parametrize("n_critic", [0, -1])
def test_n_critic_must_be_positive(n_critic):
    with pytest.raises(ConfigurationError, match="n_critic must be an integer >= 1"):
        tiny_gan(n_critic=n_critic)


def test_data_and_network_shape_mismatch_fails_before_training(tmp_path):
    model = tiny_gan(image_size=32)
    fit = trainer(tmp_path, 5)
    with pytest.raises(ConfigurationError, match=r"shape \(1, 32, 32\) but the data has shape"):
        fit.fit(model, DigitsDataModule(image_size=16, batch_size=8))
    assert fit.global_step == 0


def test_discriminator_for_another_size_fails_before_training(tmp_path):
    model = DCGAN(
        DCGANGenerator(latent_dim=8, image_size=16, base_channels=8),
        DCGANDiscriminator(image_size=32, base_channels=8),
    )
    with pytest.raises(ConfigurationError, match="one logit per sample|cannot score"):
        trainer(tmp_path, 5).fit(model, DigitsDataModule(image_size=16, batch_size=8))


def test_batch_larger_than_dataset_with_drop_last_fails_before_training(tmp_path):
    fit = trainer(tmp_path, 5)
    with pytest.raises(ConfigurationError, match="fewer than one training step needs"):
        fit.fit(tiny_gan(n_critic=2), DigitsDataModule(image_size=16, batch_size=1000))
    assert fit.global_step == 0


def test_plain_ddp_strategy_is_refused_with_the_fix():
    from lightning.pytorch.strategies import DDPStrategy

    model = tiny_gan()
    model._trainer = type("T", (), {"strategy": DDPStrategy()})()
    with pytest.raises(ConfigurationError, match="strategy='gan_ddp'"):
        model.setup("fit")


def test_generate_restores_training_mode_and_is_deterministic():
    model = tiny_gan()
    z = model.sample_latent(4, generator=torch.Generator().manual_seed(0))
    assert z.shape == (4, 8)
    first, second = model.generate(z), model.generate(z)
    assert model.generator.training
    assert torch.equal(first, second)
    assert first.shape == (4, 1, 16, 16) and first.abs().max() <= 1


def test_generator_without_latent_dim_is_rejected():
    with pytest.raises(ConfigurationError, match="latent_dim"):
        GANModule(torch.nn.Linear(2, 2), DCGANDiscriminator(16, 1, 8))
