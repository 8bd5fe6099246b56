"""How evaluation callbacks log their values: on the same x-axis as checkpoints and grids."""

from __future__ import annotations

import lightning.pytorch as pl
from torch import Tensor


def log_evaluation(pl_module: pl.LightningModule, values: dict[str, Tensor | float]) -> None:
    """Log evaluation ``values`` (equal on every process) at x = the completed training steps.

    GAN modules send them to the loggers at ``global_step`` (``GANModule.log_at_step``);
    other modules fall back to ``self.log``, which Lightning plots at ``global_step - 1``.
    """
    log_at_step = getattr(pl_module, "log_at_step", None)
    if log_at_step is not None:
        log_at_step(values, sync_dist=True)
        return
    for name, value in values.items():
        pl_module.log(name, value, on_step=False, on_epoch=True, sync_dist=True)
