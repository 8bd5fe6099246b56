"""The alternating discriminator/generator training loop shared by every GAN variant.

Step semantics (the README explains them for users): one training step is one generator
update preceded by ``n_critic`` discriminator updates, each on its own real batch. The
training loader therefore yields ``n_critic`` real batches per step (see
``GANDataModule``), and ``trainer.global_step``, ``max_steps``, checkpoint names and the
logged x-axis all count generator updates.

Distributed training: the generator and the discriminator get separate DDP wrappers (see
:mod:`gan_lightning.strategies`). Each phase sends exactly one forward pass through the
wrapper of the network it updates and calls the other network unwrapped, so DDP sees every
wrapped parameter used once per backward pass and all-reduces only the network being
updated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn
from torch.optim import Optimizer

from gan_lightning import losses
from gan_lightning.errors import ConfigurationError

AdversarialLoss = Literal["non_saturating", "minimax"]


class _ManyInputs(nn.Module):
    """Runs one network on several inputs within a single forward call.

    DDP prepares its gradient reduction once per forward call, so a discriminator that must
    score real and generated batches separately (BatchNorm statistics stay per batch) is
    called through this adapter once per update.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.net(x) for x in inputs)


class GANModule(pl.LightningModule):
    """Base class of the GAN variants: the alternating loop with manual optimization.

    A variant overrides :meth:`discriminator_loss` and :meth:`generator_loss` (and, in later
    variants, the penalty and schedule hooks); it never copies :meth:`training_step`.

    Args:
        generator: Maps latents ``(N, latent_dim)`` to samples in [-1, 1]; must expose
            ``latent_dim``.
        discriminator: Maps samples to logits of shape ``(N,)``.
        optimizer_g: Builds the generator's optimizer from its parameters, e.g.
            ``class_path: torch.optim.Adam`` in YAML. None means the variant's default
            (:meth:`default_optimizer`).
        optimizer_d: The same for the discriminator. Separate settings make two time-scale
            updates (TTUR) a matter of configuration.
        n_critic: Discriminator updates per generator update (>= 1), each on a fresh real
            batch of ``data.batch_size`` samples.
        loss: ``"non_saturating"`` (generator minimises ``-log D(G(z))``, the default) or
            ``"minimax"`` (the saturating ``log(1 - D(G(z)))`` of the original game).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        n_critic: int = 1,
        loss: AdversarialLoss = "non_saturating",
    ) -> None:
        super().__init__()
        _save_hyperparameters(self)
        self.automatic_optimization = False
        if not isinstance(n_critic, int) or n_critic < 1:
            raise ConfigurationError(f"model.n_critic must be an integer >= 1, got {n_critic!r}.")
        if loss not in ("non_saturating", "minimax"):
            raise ConfigurationError(
                f"model.loss must be 'non_saturating' or 'minimax', got {loss!r}."
            )
        latent_dim = getattr(generator, "latent_dim", None)
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ConfigurationError(
                f"the generator ({type(generator).__name__}) must have an integer attribute "
                f"latent_dim >= 1, got {latent_dim!r}."
            )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.n_critic = n_critic
        self.loss = loss
        self._optimizer_factories = {"generator": optimizer_g, "discriminator": optimizer_d}
        # DDP wrappers set by GANDDPStrategy; a plain dict keeps them out of the state dict.
        self._wrapped: dict[str, nn.Module] = {}

    # ----------------------------------------------------------------- variant hooks

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Loss the discriminator minimises, from logits ``(N,)`` of real and fake samples."""
        return losses.minimax_discriminator_loss(real_logits, fake_logits)

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        """Loss the generator minimises, from the discriminator's logits ``(N,)`` on fakes."""
        if self.loss == "minimax":
            return losses.minimax_generator_loss(fake_logits)
        return losses.non_saturating_generator_loss(fake_logits)

    def default_optimizer(self, params: Iterable[Tensor], network: str) -> Optimizer:
        """The variant's optimizer when none is configured: Adam(2e-4, betas=(0.5, 0.999))."""
        return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))

    # ----------------------------------------------------------------- sampling API

    @property
    def real_batches_per_step(self) -> int:
        """Real batches one training step consumes: one per discriminator update."""
        return self.n_critic

    @property
    def sampling_generator(self) -> nn.Module:
        """The network used for samples and metrics (the EMA copy where a variant keeps one)."""
        return self.generator

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal latents ``(n, latent_dim)`` on this module's device.

        With ``generator`` (a CPU ``torch.Generator``) the draw is reproducible on any device.
        """
        if generator is None:
            return torch.randn(n, self.latent_dim, device=self.device)
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    @torch.no_grad()
    def generate(self, z: Tensor) -> Tensor:
        """Samples in [-1, 1] for latents ``(N, latent_dim)``, with the network in eval mode."""
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            return net(z)
        finally:
            net.train(was_training)

    def forward(self, z: Tensor) -> Tensor:
        return self.generate(z)

    # ----------------------------------------------------------------- set-up checks

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not getattr(strategy, "wraps_gan_networks", 0):
            raise ConfigurationError(
                f"{type(strategy).__name__} wraps the whole GAN in one DistributedDataParallel "
                "module, which fails on the networks left out of each phase. Use "
                "strategy='gan_ddp' (or gan_lightning.strategies.GANDDPStrategy) instead; "
                "the gan-lightning command line selects it for you."
            )
        self._check_shapes()

    def _check_shapes(self) -> None:
        """Fail before training if data, generator and discriminator shapes disagree."""
        datamodule = getattr(self.trainer, "datamodule", None)
        expected = getattr(datamodule, "sample_shape", None)
        with torch.no_grad():
            z = torch.zeros(2, self.latent_dim, device=self.device)
            fake = self.generate(z)
            if expected is not None and tuple(fake.shape[1:]) != tuple(expected):
                raise ConfigurationError(
                    f"the generator makes samples of shape {tuple(fake.shape[1:])} but the data "
                    f"has shape {tuple(expected)}. Make the networks' image_size and channels "
                    "match the data (model.generator / model.discriminator init_args)."
                )
            was_training = self.discriminator.training
            self.discriminator.eval()
            try:
                logits = self.discriminator(fake)
            except RuntimeError as err:
                raise ConfigurationError(
                    f"the discriminator cannot score samples of shape {tuple(fake.shape[1:])}: "
                    f"{err}. Make its image_size and channels match the generator's."
                ) from err
            finally:
                self.discriminator.train(was_training)
        if tuple(logits.shape) != (2,):
            raise ConfigurationError(
                f"the discriminator must return one logit per sample, shape (N,), but returned "
                f"{tuple(logits.shape)} for N=2."
            )

    # ----------------------------------------------------------------- optimisation

    def configure_optimizers(self) -> list[Optimizer]:
        optimizers = []
        for name in ("generator", "discriminator"):
            params = getattr(self, name).parameters()
            factory = self._optimizer_factories[name]
            optimizers.append(factory(params) if factory else self.default_optimizer(params, name))
        return optimizers

    def wrap_networks(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Give each network its own data-parallel wrapper (called by ``GANDDPStrategy``)."""
        self._wrapped = {
            "generator": wrap(self.generator),
            "discriminator": wrap(_ManyInputs(self.discriminator)),
        }

    def unwrap_networks(self) -> None:
        self._wrapped = {}

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real = _real_samples(batch)
        n = real.shape[0] // self.n_critic
        if n * self.n_critic != real.shape[0]:
            raise ConfigurationError(
                f"a training batch of {real.shape[0]} samples cannot be split into "
                f"n_critic={self.n_critic} discriminator batches. Feed batches of "
                "n_critic x batch_size samples (GANDataModule does this itself)."
            )
        opt_g, opt_d = self.optimizers()
        for real_batch in real.split(n):
            self._discriminator_update(opt_d, real_batch)
        self._generator_update(opt_g, n)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks (FID, samples) read the validation loop."""

    def _discriminator_update(self, opt_d: Any, real: Tensor) -> None:
        with self.toggled_optimizer(opt_d):
            # Fresh fakes without a graph: the discriminator's loss must not reach G.
            with torch.no_grad():
                fake = self.generator(self.sample_latent(real.shape[0]))
            real_logits, fake_logits = self._discriminate(real, fake)
            loss = self.discriminator_loss(real_logits, fake_logits)

            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            # Step through the strategy, not opt_d.step(): Lightning counts every
            # LightningOptimizer step in global_step, and here a step is a generator update.
            self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=_no_closure)

        self.log("train/loss_d", loss.detach(), prog_bar=True)
        self.log("train/d_real", real_logits.detach().float().mean())
        self.log("train/d_fake", fake_logits.detach().float().mean())

    def _generator_update(self, opt_g: Any, n: int) -> None:
        with self.toggled_optimizer(opt_g):
            fake = self._wrapped.get("generator", self.generator)(self.sample_latent(n))
            # The discriminator runs unwrapped: its parameters are frozen in this phase.
            loss = self.generator_loss(self.discriminator(fake))

            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            opt_g.step()

        self.log("train/loss_g", loss.detach(), prog_bar=True)

    def _discriminate(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Discriminator logits for each input, in one (possibly DDP-wrapped) forward call."""
        wrapped = self._wrapped.get("discriminator")
        if wrapped is None:
            return tuple(self.discriminator(x) for x in inputs)
        return wrapped(*inputs)


def _no_closure() -> None:
    return None


def _real_samples(batch: Any) -> Tensor:
    """The samples of a batch: the tensor itself or the first item of ``(samples, labels)``."""
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if not isinstance(batch, Tensor):
        raise ConfigurationError(
            f"training batches must be a tensor or a (samples, labels) pair, got {type(batch)}."
        )
    return batch


def _save_hyperparameters(module: pl.LightningModule) -> None:
    """Save init arguments, keeping networks as their config when built by LightningCLI.

    Under LightningCLI the hyperparameters are the parsed config, so the networks appear as
    ``class_path``/``init_args`` and ``load_from_checkpoint`` can rebuild them. Built from
    Python, the networks are live modules: they are left out (their weights are in the
    state dict anyway) rather than pickled into the checkpoint.
    """
    import inspect

    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    frame = inspect.currentframe().f_back  # the caller's __init__ frame
    ignore = [] if _given_hyperparameters.get() is not None else ["generator", "discriminator"]
    module.save_hyperparameters(ignore=ignore, frame=frame)
