"""Exact resume: a run stopped at step k and resumed to N equals the uninterrupted run, bit for bit.

Each case trains tiny MLPs on the ring for N = 20 steps with checkpoints along the way, then
resumes from one of them in a fresh trainer and model. Weights (EMA included), optimizer and
scheduler states, the real batches of every step and the logged CSV rows must be identical.
The ring has 256 points, so an epoch is 8 steps with batch_size 32 and n_critic 1, 4 steps
with n_critic 2.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from gan_lightning.checkpointing import AtomicCheckpointIO, ExactResume
from gan_lightning.data import GaussianMixtureDataModule
from gan_lightning.models import GAN, WassersteinGANGP
from gan_lightning.networks import MLPDiscriminator, MLPGenerator

MAX_STEPS = 20


def step_lr(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)


def make_model(variant: str) -> pl.LightningModule:
    generator = MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[16])
    discriminator = MLPDiscriminator(input_shape=[2], hidden_dims=[16])
    if variant == "gan":
        # Every source of randomness and state the loop has: latents, instance noise, a lazy
        # R1 whose last value is logged in between, EMA and a scheduler.
        return GAN(
            generator,
            discriminator,
            ema_decay=0.9,
            scheduler_g=step_lr,
            instance_noise=0.1,
            instance_noise_steps=100,
            r1_gamma=1.0,
            r1_every=3,
        )
    # Two real batches per step and random gradient-penalty interpolates.
    return WassersteinGANGP(
        generator, discriminator, n_critic=2, ema_decay=0.5, scheduler_d=step_lr
    )


class BatchRecorder(Callback):
    """The real samples each training step receives, by the step they train (1-based)."""

    def __init__(self) -> None:
        self.batches: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches[trainer.global_step + 1] = batch[0].clone()


def train(
    root: Path, variant: str, name: str, callbacks=(), ckpt_path: Path | None = None
) -> dict[str, Any]:
    """Fit to MAX_STEPS from scratch or from ``ckpt_path``; return everything to compare."""
    pl.seed_everything(3)
    recorder = BatchRecorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=MAX_STEPS,
        limit_val_batches=0,
        log_every_n_steps=1,
        logger=CSVLogger(root, name="csv", version=name),
        callbacks=[recorder, *callbacks],
        enable_checkpointing=bool(callbacks),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    model = make_model(variant)
    data = GaussianMixtureDataModule(num_train=256, num_val=32, batch_size=32)
    # weights_only=False: a model built in Python keeps its scheduler factory in hparams.
    trainer.fit(model, data, ckpt_path=ckpt_path, weights_only=False)
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    return {
        "model": model.state_dict(),
        "optimizers": [opt.state_dict() for opt in trainer.optimizers],
        "schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        "batches": recorder.batches,
        "rows": rows,
        "global_step": trainer.global_step,
    }


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive bitwise equality of nested dicts, lists and tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}/{i}")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, Any]:
    """One uninterrupted run per variant, writing checkpoints at steps and at epoch ends."""
    runs = {}
    for variant in ("gan", "wgan_gp"):
        root = tmp_path_factory.mktemp(variant)
        checkpoints = [
            ModelCheckpoint(root / "steps", "{step}", every_n_train_steps=5, save_top_k=-1),
            ModelCheckpoint(root / "epoch_steps", "{step}", every_n_train_steps=8, save_top_k=-1),
            ModelCheckpoint(root / "epochs", "{step}", every_n_epochs=1, save_top_k=-1),
        ]
        runs[variant] = {"root": root, **train(root, variant, "uninterrupted", checkpoints)}
    return runs


CASES = {
    # The last step of epoch 0, saved after that step like the shipped configs do.
    "end_of_epoch": ("gan", "epoch_steps/step=8.ckpt"),
    # Saved by ModelCheckpoint(every_n_epochs=1) in on_train_epoch_end, after epoch 1.
    "on_train_epoch_end": ("gan", "epochs/step=16.ckpt"),
    # Two steps into epoch 1 (of 8 steps each).
    "mid_epoch": ("gan", "steps/step=10.ckpt"),
    # n_critic 2: two steps into epoch 2 (of 4 steps each).
    "mid_epoch_n_critic_2": ("wgan_gp", "steps/step=10.ckpt"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_resumed_run_equals_the_uninterrupted_run(uninterrupted, tmp_path, case):
    variant, checkpoint = CASES[case]
    full = uninterrupted[variant]
    ckpt_path = full["root"] / checkpoint
    k = torch.load(ckpt_path, weights_only=False)["global_step"]
    resumed = train(tmp_path, variant, "resumed", ckpt_path=ckpt_path)

    assert resumed["global_step"] == full["global_step"] == MAX_STEPS
    assert_same(resumed["model"], full["model"], "model")
    assert any(key.startswith("generator_ema.") for key in resumed["model"])
    assert_same(resumed["optimizers"], full["optimizers"], "optimizers")
    assert_same(resumed["schedulers"], full["schedulers"], "schedulers")
    assert resumed["schedulers"][0]["last_epoch"] == MAX_STEPS

    # Exactly the batches the uninterrupted run trained on after step k: none replayed or skipped.
    assert sorted(resumed["batches"]) == list(range(k + 1, MAX_STEPS + 1))
    for step, batch in resumed["batches"].items():
        assert torch.equal(batch, full["batches"][step]), step

    # The logged history continues identically: one row per step, the last N - k of them.
    assert len(full["rows"]) == MAX_STEPS
    expected = full["rows"][k:]
    assert len(resumed["rows"]) == MAX_STEPS - k
    if case == "on_train_epoch_end":
        # Lightning runs the first resumed batch in the epoch it restarts, so it labels that
        # one row with the previous epoch; the data and every value are still exact.
        for row in (*expected, *resumed["rows"]):
            del row["epoch"]
    assert resumed["rows"] == expected


def test_a_resumed_run_is_not_the_same_without_the_random_state(uninterrupted, tmp_path):
    """Guards the test above: dropping the saved random state must break the equality."""
    full = uninterrupted["gan"]
    checkpoint = torch.load(full["root"] / "steps/step=10.ckpt", weights_only=False)
    del checkpoint["callbacks"][ExactResume.__qualname__]["random_state"]
    stripped = tmp_path / "stripped.ckpt"
    torch.save(checkpoint, stripped)
    with pytest.warns(UserWarning, match="holds no random state"):
        resumed = train(tmp_path, "gan", "stripped", ckpt_path=stripped)
    generator = [key for key in full["model"] if key.startswith("generator.")]
    assert not all(torch.equal(resumed["model"][k], full["model"][k]) for k in generator)


def test_validation_between_steps_does_not_change_training(tmp_path):
    """Validation draws random numbers (its loader's seed); the training stream ignores them."""
    finals = []
    for limit_val_batches in (0, 1):
        pl.seed_everything(3)
        trainer = pl.Trainer(
            accelerator="cpu",
            max_steps=6,
            limit_val_batches=limit_val_batches,
            val_check_interval=2,
            check_val_every_n_epoch=None,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )
        model = make_model("gan")
        trainer.fit(model, GaussianMixtureDataModule(num_train=256, num_val=32, batch_size=32))
        finals.append(model.state_dict())
    assert_same(finals[0], finals[1], "model")
