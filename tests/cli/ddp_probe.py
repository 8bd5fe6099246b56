"""A callback loaded by the DDP tests in their worker processes (via PYTHONPATH)."""

from pathlib import Path

import lightning.pytorch as pl
import torch


class SaveRankParameters(pl.Callback):
    """After every step, record each rank's parameters; at the end write them to a file."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.history: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.history.append({k: v.detach().clone() for k, v in pl_module.named_parameters()})

    def on_train_end(self, trainer, pl_module) -> None:
        path = Path(self.out_dir) / f"rank{trainer.global_rank}.pt"
        torch.save({"history": self.history, "world_size": trainer.world_size}, path)
