"""Checks that run before ``fit`` starts any training work or writes any file.

``gan-lightning fit`` calls :func:`check_fit` once the trainer and the model exist and before
``Trainer.fit``: a run that could only end in a crash, in nothing, or in overwriting files
stops here with one :class:`~gan_lightning.errors.ConfigurationError` that names the
problem and the fix.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from gan_lightning.errors import ConfigurationError

# ckpt_path values that Lightning resolves itself instead of reading a file.
_SPECIAL_CKPT_PATHS = ("last", "best", "hpc", "registry")


def check_fit(trainer: pl.Trainer, model: nn.Module, ckpt_path: str | None) -> None:
    """Run every check below; raise the first problem found.

    Args:
        trainer: The configured trainer, not yet fitted.
        model: The configured LightningModule.
        ckpt_path: ``--ckpt_path`` of ``fit`` (a file to resume from), or None.
    """
    check_training_budget(trainer)
    for option, path in output_folders(trainer):
        check_writable(path, option)
    if ckpt_path is not None and str(ckpt_path) not in _SPECIAL_CKPT_PATHS:
        check_resume_checkpoint(ckpt_path, model)


def check_training_budget(trainer: pl.Trainer) -> None:
    """Refuse limits under which ``fit`` would finish without a single training step."""
    for option, value in (
        ("max_steps", trainer.max_steps),
        ("max_epochs", trainer.max_epochs),
        ("limit_train_batches", trainer.limit_train_batches),
    ):
        if value == 0:
            raise ConfigurationError(
                f"trainer.{option}=0 allows no training step, so fit would end without training "
                f"and only write empty logs. Set trainer.{option} to at least 1 (max_steps: -1 "
                "with max_epochs: null trains for 1000 epochs)."
            )


def output_folders(trainer: pl.Trainer) -> list[tuple[str, Path]]:
    """The folders a run writes into, as ``(option, path)``: root, loggers, checkpoints."""
    folders = [("trainer.default_root_dir", Path(trainer.default_root_dir))]
    for logger in trainer.loggers:
        save_dir = getattr(logger, "save_dir", None)
        if isinstance(save_dir, (str, os.PathLike)):
            folders.append((f"{type(logger).__name__}.save_dir", Path(save_dir)))
    dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
    if isinstance(dirpath, (str, os.PathLike)):
        folders.append(("ModelCheckpoint.dirpath", Path(dirpath)))
    return folders


def check_writable(path: Path, option: str) -> None:
    """Fail unless ``path`` is, or can be created as, a folder this process may write to.

    Args:
        path: The folder; it need not exist yet.
        option: The configuration option that set it, named in the error.
    """
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"this user has no write permission in {existing}"
    if problem:
        raise ConfigurationError(
            f"{option}: cannot write the run's files to {path}: {problem}. Choose a folder you "
            f"can write to (or fix its permissions), e.g. --trainer.default_root_dir runs/new."
        )


def check_resume_checkpoint(ckpt_path: str | os.PathLike, model: nn.Module) -> None:
    """Fail unless ``ckpt_path`` is a complete checkpoint of the configured model.

    Reads the file memory-mapped and compares the variant it was written for and every
    state-dict entry (names and shapes) with ``model``, so a checkpoint of another variant,
    other networks or another size fails here instead of in the middle of restoring.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigurationError(
            f"--ckpt_path {path} does not exist or is not a file. Pass a checkpoint written by "
            "`gan-lightning fit` (e.g. .../checkpoints/last.ckpt), or leave --ckpt_path out to "
            "start a new run."
        )
    checkpoint = load_checkpoint(path)
    written_for = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if written_for and _resolve(written_for) not in (type(model), None):
        raise ConfigurationError(
            f"--ckpt_path {path} was written by {written_for}, but the config builds "
            f"{type(model).__module__}.{type(model).__qualname__}. Resume with the config of "
            "that run (the config.yaml saved beside its checkpoints) or start a new run without "
            "--ckpt_path."
        )
    mismatches = _state_mismatches(checkpoint["state_dict"], model.state_dict())
    if mismatches:
        raise ConfigurationError(
            f"--ckpt_path {path} does not fit the configured networks ({'; '.join(mismatches)}). "
            "It was written with other networks or options: resume with the config.yaml saved "
            "beside it, or start a new run without --ckpt_path."
        )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, memory-mapped, or a ConfigurationError naming the problem."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # truncated zip, pickle garbage, not a torch file, ...
        raise ConfigurationError(
            f"--ckpt_path {path} cannot be read ({type(err).__name__}: {err}); the file is "
            "truncated or not a checkpoint. Pass an intact checkpoint (checkpoints are written "
            "atomically, so an older step=*.ckpt of the same run is complete)."
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigurationError(
            f"--ckpt_path {path} is a torch file but not a Lightning checkpoint (no state_dict). "
            "Pass a checkpoint written by `gan-lightning fit`."
        )
    return checkpoint


def same_class(class_path: str, other: str) -> bool:
    """Whether two class paths name the same class (``models.GAN`` = ``models.gan.GAN``)."""
    first, second = _resolve(class_path), _resolve(other)
    return class_path == other if first is None or second is None else first is second


def _resolve(class_path: str) -> type | None:
    """The class a checkpoint's ``_class_path`` names, or None if it cannot be imported."""
    module_name, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _state_mismatches(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Short descriptions of missing, unexpected and differently shaped entries."""
    problems = []
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    reshaped = [
        f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in saved and hasattr(saved[k], "shape") and saved[k].shape != expected[k].shape
    ]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", reshaped)):
        if items:
            problems.append(f"{len(items)} {label}, e.g. {items[0]}")
    return problems
