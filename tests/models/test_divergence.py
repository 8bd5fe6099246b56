"""NaN/inf in a loss or gradient: found at its step, stops the run or skips the update."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import quiet_trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import Tensor, nn

from gan_lightning.cli import main
from gan_lightning.data import GaussianMixtureDataModule
from gan_lightning.errors import TrainingDivergedError
from gan_lightning.models import GAN, WassersteinGANGP
from gan_lightning.networks import MLPDiscriminator, MLPGenerator

ROOT = Path(__file__).resolve().parents[2]


def mlp_pair() -> tuple[nn.Module, nn.Module]:
    generator = MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[16])
    return generator, MLPDiscriminator(input_shape=[2], hidden_dims=[16])


def ring() -> GaussianMixtureDataModule:
    return GaussianMixtureDataModule(kind="ring", num_train=512, num_val=16, batch_size=16)


def poison_discriminator_loss(model, update: int, value: float = math.nan) -> None:
    """Make the ``update``-th discriminator loss (counted from 1) equal ``value``."""
    original, calls = model.discriminator_loss, []

    def loss(real: Tensor, fake: Tensor) -> Tensor:
        calls.append(1)
        result = original(real, fake)
        return result * value if len(calls) == update else result

    model.discriminator_loss = loss


class Snapshots(Callback):
    """The discriminator's weights after every step."""

    def __init__(self) -> None:
        self.weights: list[dict[str, Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        state = pl_module.discriminator.state_dict()
        self.weights.append({k: v.clone() for k, v in state.items()})


def test_stop_names_the_step_and_writes_no_checkpoint_after_it(tmp_path):
    # NaN in the 2nd of 2 discriminator updates of step 3; checkpoints every step, logs every
    # 50 steps: the check before step 3's checkpoint stops the run.
    model = GAN(*mlp_pair(), n_critic=2)
    poison_discriminator_loss(model, update=6)
    checkpoints = ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=1, save_top_k=-1)
    trainer = quiet_trainer(
        tmp_path, max_steps=10, log_every_n_steps=50, limit_val_batches=0,
        enable_checkpointing=True, callbacks=[checkpoints],
    )  # fmt: skip
    with pytest.raises(TrainingDivergedError) as error:
        trainer.fit(model, ring())

    message = str(error.value)
    assert "training diverged in step 3, discriminator update 2 of 2: its loss is nan" in message
    assert "Likely cause: an unconstrained discriminator" in message
    assert f"the last checkpoint before it is kept: {tmp_path / 'step=2.ckpt'}" in message
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["step=1.ckpt", "step=2.ckpt"]
    assert trainer.global_step == 3


def test_stop_finds_the_step_at_the_next_logging_step(tmp_path):
    # An infinite loss in step 2, no checkpoints: detected at step 5, when the loggers write.
    model = WassersteinGANGP(*mlp_pair(), n_critic=1)
    poison_discriminator_loss(model, update=2, value=math.inf)
    trainer = quiet_trainer(tmp_path, max_steps=20, log_every_n_steps=5, limit_val_batches=0)
    with pytest.raises(TrainingDivergedError, match="in step 2, discriminator update: its loss"):
        trainer.fit(model, ring())
    assert trainer.global_step == 5


def test_stop_detects_non_finite_gradients_of_a_finite_loss(tmp_path):
    # sqrt has an infinite slope at 0: the loss gains 0 but the generator's gradients are NaN.
    model = GAN(*mlp_pair())
    original = model.generator_loss

    def loss(fake_logits: Tensor) -> Tensor:
        return original(fake_logits) + 0 * (fake_logits - fake_logits.detach()).abs().sqrt().sum()

    model.generator_loss = loss
    trainer = quiet_trainer(tmp_path, max_steps=3, log_every_n_steps=50, limit_val_batches=0)
    with pytest.raises(TrainingDivergedError) as error:
        trainer.fit(model, ring())
    assert "in step 1, generator update: non-finite gradients (loss " in str(error.value)
    # Found at the end of training (step 3), with nothing logged or saved in between.
    assert trainer.global_step == 3


def test_a_float16_run_names_the_overflow_as_the_likely_cause(tmp_path):
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    model = WassersteinGANGP(*mlp_pair(), n_critic=1)
    poison_discriminator_loss(model, update=1)
    trainer = quiet_trainer(
        tmp_path, max_steps=2, limit_val_batches=0,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
    )  # fmt: skip
    with pytest.raises(TrainingDivergedError, match="float16 overflow under precision=16-mixed"):
        trainer.fit(model, ring())


def test_skip_drops_the_non_finite_update_and_trains_on(tmp_path):
    torch.manual_seed(0)
    model = GAN(*mlp_pair(), nan_policy="skip")
    poison_discriminator_loss(model, update=2)  # the discriminator update of step 2
    snapshots = Snapshots()
    trainer = quiet_trainer(
        tmp_path, max_steps=4, log_every_n_steps=1, limit_val_batches=0, callbacks=[snapshots]
    )
    with pytest.warns(UserWarning, match="update skipped: training diverged in step 2"):
        trainer.fit(model, ring())

    assert trainer.global_step == 4
    assert trainer.callback_metrics["train/skipped_updates"].item() == 1.0
    first, second, third = snapshots.weights[:3]
    # Step 2's only discriminator update was dropped; steps 1 and 3 changed the weights.
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(second[k], third[k]) for k in second)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_off_checks_nothing(tmp_path):
    model = GAN(*mlp_pair(), nan_policy="off")
    poison_discriminator_loss(model, update=1)
    trainer = quiet_trainer(tmp_path, max_steps=2, log_every_n_steps=1, limit_val_batches=0)
    trainer.fit(model, ring())
    assert not all(torch.isfinite(p).all() for p in model.discriminator.parameters())


def test_a_real_divergence_ends_the_command_with_one_line(tmp_path, capsys):
    # WGAN without clipping at lr 100 blows up within a few steps.
    config = str(ROOT / "configs" / "wgan_gp_ring.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["fit", "--config", config, f"--trainer.default_root_dir={tmp_path}"]
            + [f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.max_steps=50"]
            + ["--model.init_args.gp_weight=0", "--model.init_args.n_critic=1"]
            + ["--model.init_args.generator.init_args.hidden_dims=[16]"]
            + ["--model.init_args.discriminator.init_args.hidden_dims=[16]"]
            + [
                "--model.init_args.optimizer_d=torch.optim.SGD",
                "--model.init_args.optimizer_d.lr=100",
            ]
            + [
                "--model.init_args.optimizer_g=torch.optim.SGD",
                "--model.init_args.optimizer_g.lr=100",
            ]
            + ["--data.init_args.batch_size=16", "--trainer.log_every_n_steps=5"]
            + ["--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=0"]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("gan-lightning: error:")]
    assert len(lines) == 1
    assert "training diverged in step " in lines[0]
    assert "learning rate too high (lr_g=100, lr_d=100" in lines[0]
    assert "no gradient" not in lines[0] and "an unconstrained discriminator" in lines[0]
    assert not list(tmp_path.rglob("*.ckpt"))  # the one checkpoint, at step 50, is never written
