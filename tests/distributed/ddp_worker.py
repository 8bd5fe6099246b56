"""One rank of the multi-process tests: trains every variant for a few steps under DDP.

Started by ``torchrun`` (see ``test_ddp.py``), once per rank, as ``ddp_worker.py OUT_DIR``.
Each rank builds its networks from a *different* seed, so identical weights afterwards prove
that the strategy synchronises them. For every case it records, after every step, the whole
state dict (parameters and buffers, EMA included), the number of gradient all-reduces each
DDP wrapper made (through a counting communication hook) and the normalization layer types,
and writes everything to ``OUT_DIR/rank{R}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist

from gan_lightning.callbacks import SampleGrid
from gan_lightning.strategies import GANDDPStrategy

# The variant table shared with the single-process tests (tests/tiny_gans.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_gans import VARIANTS, data_for  # noqa: E402

STEPS = 3
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "dcgan_digits.yaml"
SAMPLES_CASE = "dcgan_diff_augment"  # also writes sample grids, to check rank 0 alone does


def counting_allreduce(state, bucket):  # DDP checks real annotations: postponed ones fail
    """DDP's default gradient averaging, counting the buckets each wrapper reduces."""
    counts, name = state
    counts[name] += 1
    tensor = bucket.buffer().div_(dist.get_world_size())
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


class Recorder(pl.Callback):
    def __init__(self) -> None:
        self.history: list[dict[str, torch.Tensor]] = []
        self.counts = {"generator": 0, "discriminator": 0}
        self.counts_per_step: list[dict[str, int]] = []
        self.norm_layers: list[str] = []

    def on_train_start(self, trainer, pl_module) -> None:
        for name, wrapper in pl_module._wrapped.items():
            wrapper.register_comm_hook((self.counts, name), counting_allreduce)
        self.norm_layers = sorted(
            {type(m).__name__ for m in pl_module.modules() if "BatchNorm" in type(m).__name__}
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        state = pl_module.state_dict()
        self.history.append({k: v.detach().clone() for k, v in state.items()})
        self.counts_per_step.append(dict(self.counts))


def run_case(name: str, out_dir: Path, rank: int) -> dict:
    torch.manual_seed(1000 * rank + len(name))  # deliberately different on each rank
    recorder = Recorder()
    callbacks: list[pl.Callback] = [recorder]
    logger = False
    if name == SAMPLES_CASE:
        callbacks.append(SampleGrid(num_samples=4, every_n_steps=2))
        logger = pl.loggers.TensorBoardLogger(out_dir / name, name="", version=0)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        num_nodes=2,
        strategy=GANDDPStrategy(),
        max_steps=STEPS,
        limit_val_batches=0,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out_dir / name,
    )
    model = VARIANTS[name]()
    trainer.fit(model, data_for(name))
    return {
        "history": recorder.history,
        "counts_per_step": recorder.counts_per_step,
        "norm_layers": recorder.norm_layers,
        "n_critic": model.n_critic,
        "world_size": trainer.world_size,
        "node_rank": trainer.node_rank,
    }


def run_cli(out_dir: Path, rank: int) -> dict:
    """The documented multi-node command: ``fit --trainer.num_nodes 2 --trainer.strategy ddp``."""
    from gan_lightning.cli import GANLightningCLI

    cli = GANLightningCLI(
        args=["fit", "--config", str(CONFIG), f"--seed_everything={rank}"]  # differs per rank
        + ["--trainer.num_nodes=2", "--trainer.devices=1", "--trainer.strategy=ddp"]
        + ["--trainer.accelerator=cpu", f"--trainer.max_steps={STEPS}", "--trainer.logger=false"]
        + ["--trainer.callbacks=null", "--trainer.callbacks+=ddp_worker.Recorder"]
        + ["--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0"]
        + ["--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={out_dir}/cli"]
        + ["--data.init_args.image_size=16", "--data.init_args.batch_size=8"]
        + [
            "--model.init_args.generator.init_args.image_size=16",
            "--model.init_args.generator.init_args.base_channels=8",
            "--model.init_args.discriminator.init_args.image_size=16",
            "--model.init_args.discriminator.init_args.base_channels=8",
        ]
    )
    recorder = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "Recorder")
    return {
        "history": recorder.history,
        "counts_per_step": recorder.counts_per_step,
        "norm_layers": recorder.norm_layers,
        "n_critic": cli.model.n_critic,
        "world_size": cli.trainer.world_size,
        "node_rank": cli.trainer.node_rank,
        "strategy": type(cli.trainer.strategy).__name__,
    }


def main() -> None:
    out_dir = Path(sys.argv[1])
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else [*VARIANTS, "cli"]
    rank = int(__import__("os").environ["RANK"])
    results = {name: run_case(name, out_dir, rank) for name in names if name != "cli"}
    if "cli" in names:
        results["cli"] = run_cli(out_dir, rank)
    torch.save(results, out_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
