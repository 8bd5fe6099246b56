"""Checkpoints that resume exactly and are never left half-written.

Lightning's checkpoints hold the weights, optimizer and scheduler states and the loop
counters; the training loader's position comes from
:class:`~gan_lightning.data.resumable.ResumableDataLoader`. Two things are added here:

- :class:`ExactResume` keeps the random state of the training steps (torch, CUDA, numpy and
  Python generators): it is saved in every checkpoint and each training step starts from the
  state the previous one ended with, so neither a resume nor anything that runs between steps
  (validation, callbacks, a new epoch's loader) changes the latents, augmentations or noise
  that training draws. It also records the Weights & Biases run id, so that a resumed run
  continues the same W&B run (see :func:`wandb_run_id`).
- :class:`AtomicCheckpointIO` writes each checkpoint to a temporary file beside its final
  path and renames it into place only once it is complete and flushed to disk.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import random
import uuid
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from gan_lightning.errors import ConfigurationError

#: Suffix of the temporary files :class:`AtomicCheckpointIO` writes before renaming them.
PARTIAL_SUFFIX = ".partial"


def capture_random_state(device: torch.device | None = None) -> dict[str, Any]:
    """The state of every global random generator the training loop can draw from.

    Args:
        device: The training device; for a CUDA device its generator's state is included.

    Returns:
        A dict of tensors, ints and tuples (loadable with ``torch.load(weights_only=True)``):
        ``torch`` (CPU generator), ``numpy`` (legacy ``np.random`` MT19937 state), ``python``
        (``random``) and, on CUDA, ``cuda``.
    """
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Set the global random generators to a :func:`capture_random_state` result.

    Args:
        state: What :func:`capture_random_state` returned.
        device: The training device; its CUDA generator is restored when ``state`` has one.
    """
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    random.setstate(state["python"])
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class ExactResume(pl.Callback):
    """Saves the training steps' random state in checkpoints and isolates it between steps.

    After each training step the state of the global generators is captured; the next step
    starts from that capture. The checkpoint stores the capture of the last completed step,
    whenever it is written (after a step, at the end of an epoch, after validation), and a
    resumed run starts its first step from it. Consequences:

    - a run stopped after step k and resumed draws the same random numbers from step k + 1 on
      as the uninterrupted run;
    - whatever draws random numbers between two steps (validation, sample grids, a new
      epoch's ``DataLoader`` iterator, other callbacks) does not shift the training stream,
      so, for example, changing the validation interval does not change training.

    Under DDP each process keeps its own stream; the checkpoint holds rank 0's, which every
    process restores (the processes share one stream when seeded alike, as
    ``seed_everything`` does). :class:`~gan_lightning.models.GANModule` adds this callback
    itself (``configure_callbacks``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._state: dict[str, Any] | None = None
        self._loaded = False
        self._loggers: list = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # A new fit starts a new stream; load_state_dict (called after setup) may replace it.
        self._state = None
        self._loaded = False
        self._loggers = list(trainer.loggers)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.ckpt_path is not None and not self._loaded:
            rank_zero_warn(
                f"The checkpoint {trainer.ckpt_path} holds no random state (it was written "
                "without gan_lightning's ExactResume), so the resumed run draws different "
                "latents and noise than an uninterrupted run would."
            )

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._state is not None:
            restore_random_state(self._state, pl_module.device)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Runs before ModelCheckpoint, which Lightning always orders last.
        self._state = capture_random_state(pl_module.device)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self._state is not None:
            state["random_state"] = self._state
        run_id = next((lg.version for lg in self._loggers if isinstance(lg, WandbLogger)), None)
        if run_id is not None:
            state["wandb_run_id"] = run_id
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "random_state" in state_dict:
            self._state = state_dict["random_state"]
            self._loaded = True


def wandb_run_id(checkpoint_path: _PATH, weights_only: bool | None = None) -> str | None:
    """The Weights & Biases run id recorded in a checkpoint, or None if it has none.

    Pass it as ``WandbLogger(id=...)`` to continue that run (``WandbLogger`` resumes with
    ``resume="allow"``); the command line does this itself for ``fit --ckpt_path``.

    Args:
        checkpoint_path: A checkpoint written by a run with :class:`ExactResume`.
        weights_only: Passed to ``torch.load``, as ``Trainer.fit(weights_only=...)`` does;
            None means torch's default (True).
    """
    try:
        # mmap reads only the records needed here, not the tensors of a large checkpoint.
        checkpoint = torch.load(
            checkpoint_path, map_location="cpu", mmap=True, weights_only=weights_only
        )
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ConfigurationError(
            f"cannot load checkpoint {checkpoint_path}: {err}. Pass a checkpoint written by "
            "`gan-lightning fit` (--ckpt_path)."
        ) from err
    state = checkpoint.get("callbacks", {}).get(ExactResume.__qualname__, {})
    return state.get("wandb_run_id")


def continue_wandb_run(fit_config: Any) -> None:
    """Point a ``WandbLogger`` without an id at the run recorded in ``--ckpt_path``.

    Used by the command line before it builds the trainer, so that ``fit --ckpt_path`` logs
    into the same W&B run, at the restored ``trainer/global_step``, as the run that wrote
    the checkpoint. Nothing changes when there is no checkpoint, no ``WandbLogger``, a
    logger that already has an ``id`` or ``version``, or a checkpoint without a run id.

    Args:
        fit_config: The parsed ``fit`` configuration (``ckpt_path`` and ``trainer`` keys).
    """
    ckpt_path = fit_config.get("ckpt_path")
    loggers = fit_config["trainer"].get("logger")
    loggers = loggers if isinstance(loggers, list) else [loggers]
    wandb = [lg for lg in loggers if _is_wandb_logger_config(lg)]
    if not ckpt_path or not wandb or not Path(ckpt_path).is_file():
        return
    init_args = wandb[0].get("init_args")
    if init_args is None or init_args.get("id") or init_args.get("version"):
        return
    run_id = wandb_run_id(ckpt_path, fit_config.get("weights_only"))
    if run_id is not None:
        init_args["id"] = run_id


def _is_wandb_logger_config(logger: Any) -> bool:
    class_path = getattr(logger, "class_path", None)
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    module, name = class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name, None)
    return isinstance(cls, type) and issubclass(cls, WandbLogger)


def with_atomic_checkpoint_io(plugins: Any) -> list:
    """Trainer ``plugins`` with :class:`AtomicCheckpointIO` added unless a ``CheckpointIO`` is.

    Args:
        plugins: The trainer's ``plugins`` argument: None, one plugin or a list of them.
    """
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints atomically: the old file stays whole until the new one is complete.

    Each checkpoint is serialized straight into a hidden temporary file in the folder of its
    final path (``.<name>.<random>.partial``), flushed and ``fsync``-ed, then renamed over
    the final path with ``os.replace`` (atomic on POSIX and Windows within one filesystem),
    and the folder is ``fsync``-ed so the rename survives a power cut. A process killed or
    failing while saving leaves the previous checkpoint intact and no file under the final
    name; a failure deletes its temporary file, a kill leaves it behind (the suffix keeps it
    out of every ``*.ckpt`` pattern). Remote paths (``s3://`` and other fsspec URLs) are left
    to Lightning's own writer.

    Use it from Python with ``Trainer(plugins=[AtomicCheckpointIO()])``; the
    ``gan-lightning`` command line installs it unless another ``CheckpointIO`` plugin is given.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_save(checkpoint, Path(path))


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` such that ``path`` is always either the old or the new file.

    The data goes to a hidden ``.<name>.<random>.partial`` file beside ``path``, is flushed
    and ``fsync``-ed, then renamed over ``path`` with ``os.replace`` (atomic within one
    filesystem); the folder is ``fsync``-ed so the rename survives a power cut. A failure
    deletes the temporary file; a kill leaves it behind under a name no ``*.ckpt`` or
    ``*.pt`` pattern matches.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    try:
        with open(partial, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk where the platform allows it."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
