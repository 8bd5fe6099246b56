"""Atomic checkpoint writes, the random-state helpers and the command line's defaults."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_lightning.checkpointing import (
    PARTIAL_SUFFIX,
    AtomicCheckpointIO,
    capture_random_state,
    restore_random_state,
    with_atomic_checkpoint_io,
)
from gan_lightning.cli import GANLightningCLI

ROOT = Path(__file__).resolve().parents[1]


def draws() -> tuple:
    return torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)]


def test_random_state_round_trip_replays_torch_numpy_and_python_draws(tmp_path):
    state = capture_random_state(torch.device("cpu"))
    first = draws()
    # Through a file loaded safely, as a checkpoint is.
    torch.save(state, tmp_path / "state.pt")
    restore_random_state(torch.load(tmp_path / "state.pt", weights_only=True))
    second = draws()
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.arange(1000)}, path)
    before = path.read_bytes()

    real_save = torch.save

    def half_then_fail(obj, file, *args, **kwargs):
        real_save(obj, file)
        file.truncate(file.tell() // 2)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "w": torch.arange(2000)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert torch.load(path)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


KILLED_RUN = """
import os, signal, sys
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from gan_lightning.checkpointing import AtomicCheckpointIO
from gan_lightning.data import GaussianMixtureDataModule
from gan_lightning.models import GAN
from gan_lightning.networks import MLPDiscriminator, MLPGenerator

real_save, calls = torch.save, []

def save_then_die(obj, file, *args, **kwargs):
    calls.append(obj["global_step"])
    if obj["global_step"] == 2:
        # Write part of the second checkpoint, make it durable, then die as a killed job does.
        file.write(b"PK" + b"x" * 4096)
        file.flush()
        os.fsync(file.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, file, *args, **kwargs)

torch.save = save_then_die
pl.seed_everything(0)
model = GAN(MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[8]),
            MLPDiscriminator(input_shape=[2], hidden_dims=[8]))
trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, limit_val_batches=0,
                     enable_progress_bar=False, enable_model_summary=False,
                     plugins=[AtomicCheckpointIO()],
                     callbacks=[ModelCheckpoint(sys.argv[1], "last", every_n_train_steps=1)])
trainer.fit(model, GaussianMixtureDataModule(num_train=256, num_val=32, batch_size=32))
"""


def test_a_process_killed_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path):
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    folder = tmp_path / "checkpoints"
    done = subprocess.run(
        [sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]

    # The step-1 checkpoint is whole; the step-2 bytes sit in a hidden partial file only.
    names = sorted(p.name for p in folder.iterdir())
    assert names[1:] == ["last.ckpt"] and names[0].startswith(".last.ckpt.")
    assert names[0].endswith(PARTIAL_SUFFIX)
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 1
    assert [p.name for p in folder.glob("*.ckpt")] == ["last.ckpt"]  # patterns skip the partial


def test_the_command_line_writes_checkpoints_atomically_unless_told_otherwise():
    config = str(ROOT / "configs" / "gan_ring.yaml")
    cli = GANLightningCLI(args=["--config", config, "--trainer.logger=false"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)

    plugin = "lightning.fabric.plugins.io.torch_io.TorchCheckpointIO"
    cli = GANLightningCLI(
        args=["--config", config, "--trainer.logger=false", f"--trainer.plugins={plugin}"],
        run=False,
    )
    assert type(cli.trainer.strategy.checkpoint_io).__name__ == "TorchCheckpointIO"


def test_with_atomic_checkpoint_io_keeps_other_plugins():
    from lightning.pytorch.plugins import TorchCheckpointIO
    from lightning.pytorch.plugins.environments import LightningEnvironment

    environment = LightningEnvironment()
    plugins = with_atomic_checkpoint_io(environment)
    assert plugins[0] is environment and isinstance(plugins[1], AtomicCheckpointIO)
    own = TorchCheckpointIO()
    assert with_atomic_checkpoint_io([own]) == [own]
    assert isinstance(with_atomic_checkpoint_io(None)[0], AtomicCheckpointIO)
