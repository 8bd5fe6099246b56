"""DDP for GANs: one DistributedDataParallel wrapper per network instead of one for the model.

Lightning's ``DDPStrategy`` wraps the whole LightningModule. In a GAN each backward pass
reaches only one network, so DDP either crashes ("parameters that were not used in
producing the loss") or, with ``find_unused_parameters=True``, searches the graph and
all-reduces the idle network's buckets on every backward pass. ``GANDDPStrategy`` keeps
everything else of ``DDPStrategy`` (launchers, torchrun, SLURM, samplers, collectives) and
only changes what gets wrapped: the model's ``wrap_networks`` receives a function that wraps
one network.

Buffers (BatchNorm running statistics, spectral norm's power-iteration vectors, the EMA
generator's copies) are not left to DDP's ``broadcast_buffers``, which copies rank 0's
buffers at the start of every wrapped forward call: a GAN also runs each network unwrapped
(the generator under ``no_grad`` in the discriminator's phase, the frozen discriminator in the
generator's phase), and those calls update BatchNorm statistics locally. Instead the model
calls :meth:`GANDDPStrategy.broadcast_buffers` once at the end of every training step, so
parameters *and* buffers are identical on all ranks after every step, with one broadcast
per buffer dtype instead of one per wrapped forward call. Within a step each rank's
BatchNorm layers use their own batch statistics, as with stock DDP; ``sync_batchnorm=True``
on the ``Trainer`` makes them global (SyncBatchNorm, one all-reduce per BatchNorm layer and
forward call, in both phases).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import nn

from gan_lightning.errors import ConfigurationError


class GANDDPStrategy(DDPStrategy):
    """``DDPStrategy`` that wraps the generator and the discriminator separately.

    Accepts every ``DDPStrategy`` argument. Models without ``wrap_networks`` are wrapped
    whole, exactly as ``DDPStrategy`` does. For GAN models ``broadcast_buffers`` defaults to
    False (the model syncs buffers once per step, see the module docstring), and a configured
    ``ddp_comm_hook`` is registered on both wrappers (on CUDA, as ``DDPStrategy`` does).
    """

    strategy_name = "gan_ddp"
    wraps_gan_networks = True

    def configure_ddp(self) -> None:
        module = self.lightning_module
        if not hasattr(module, "wrap_networks"):
            super().configure_ddp()
            return
        self._check_layer_sync()
        rank_zero_info("GANDDPStrategy: wrapping generator and discriminator separately")
        self._ddp_kwargs.setdefault("broadcast_buffers", False)
        module.wrap_networks(self._wrap_one)
        # DDP synced what it wraps; start the rest (e.g. the EMA generator) from rank 0's too.
        _broadcast_tensors([*module.parameters(), *module.buffers()])

    def _check_layer_sync(self) -> None:
        """Refuse ``sync_batchnorm`` where PyTorch's SyncBatchNorm cannot run."""
        if self._layer_sync is not None and self.root_device.type == "cpu":
            raise ConfigurationError(
                "trainer.sync_batchnorm=true needs GPUs: PyTorch's SyncBatchNorm has no CPU "
                "kernels, got accelerator cpu. Set sync_batchnorm: false on CPU (each rank then "
                "normalizes with its own batch statistics and rank 0's running statistics are "
                "copied to all ranks after every step)."
            )

    def _wrap_one(self, network: nn.Module) -> nn.Module:
        wrapper = self._setup_model(network)
        if self.root_device.type == "cuda" and self._ddp_comm_hook is not None:
            _register_ddp_comm_hook(
                model=wrapper,
                ddp_comm_state=self._ddp_comm_state,
                ddp_comm_hook=self._ddp_comm_hook,
                ddp_comm_wrapper=self._ddp_comm_wrapper,
            )
        return wrapper

    def broadcast_buffers(self, module: nn.Module, src: int = 0) -> None:
        """Copy every buffer of ``module`` from rank ``src`` to all ranks.

        Buffers are flattened into one tensor per dtype, so a step costs one broadcast per
        dtype (typically float32 statistics and int64 counters), whatever the layer count.

        Args:
            module: The module whose buffers (recursively) are made identical on all ranks.
            src: Global rank whose buffers are kept.
        """
        _broadcast_tensors(list(module.buffers()), src)

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


@torch.no_grad()
def _broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values: one broadcast per dtype."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    groups: dict[torch.dtype, list[torch.Tensor]] = defaultdict(list)
    for tensor in tensors:
        groups[tensor.dtype].append(tensor)
    for group in groups.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        torch.distributed.broadcast(flat, src=src)
        for tensor, value in zip(group, flat.split([t.numel() for t in group]), strict=True):
            tensor.copy_(value.view_as(tensor))


GANDDPStrategy.register_strategies(StrategyRegistry)

# Lightning strategy names that mean stock DDP, and their GAN equivalents.
DDP_ALIASES = {name: f"gan_{name}" for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")}
