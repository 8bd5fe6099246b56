"""DDP for GANs: one DistributedDataParallel wrapper per network instead of one for the model.

Lightning's ``DDPStrategy`` wraps the whole LightningModule. In a GAN each backward pass
reaches only one network, so DDP either crashes ("parameters that were not used in
producing the loss") or, with ``find_unused_parameters=True``, searches the graph and
all-reduces the idle network's buckets on every backward pass. ``GANDDPStrategy`` keeps
everything else of ``DDPStrategy`` (launchers, torchrun, SLURM, samplers, collectives) and
only changes what gets wrapped: the model's ``wrap_networks`` receives a function that wraps
one network.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.utilities.rank_zero import rank_zero_info


class GANDDPStrategy(DDPStrategy):
    """``DDPStrategy`` that wraps the generator and the discriminator separately.

    Accepts every ``DDPStrategy`` argument. Models without ``wrap_networks`` are wrapped
    whole, exactly as ``DDPStrategy`` does.
    """

    strategy_name = "gan_ddp"
    wraps_gan_networks = True

    def configure_ddp(self) -> None:
        module = self.lightning_module
        if not hasattr(module, "wrap_networks"):
            super().configure_ddp()
            return
        rank_zero_info("GANDDPStrategy: wrapping generator and discriminator separately")
        module.wrap_networks(self._setup_model)

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and hasattr(module, "unwrap_networks"):
            module.unwrap_networks()
        super().teardown()

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        for name, start_method in (
            ("gan_ddp", "popen"),
            ("gan_ddp_spawn", "spawn"),
            ("gan_ddp_fork", "fork"),
            ("gan_ddp_notebook", "fork"),
        ):
            if name not in strategy_registry:
                strategy_registry.register(
                    name,
                    cls,
                    description=f"GAN DDP (one wrapper per network), start_method '{start_method}'",
                    start_method=start_method,
                )


GANDDPStrategy.register_strategies(StrategyRegistry)

# Lightning strategy names that mean stock DDP, and their GAN equivalents.
DDP_ALIASES = {name: f"gan_{name}" for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")}
