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
updated. Penalties that need extra discriminator outputs (gradient penalty, R1) get them
from that same forward call.

Divergence: with ``nan_policy: stop`` (the default) every update records, on the device and
without a host sync, whether its loss and gradients are finite. The records are checked at
the loggers' steps, at the end of training and before every checkpoint is written, so a
checkpoint is never written after a non-finite update and the error names the step it
happened in. ``nan_policy: skip`` decides before each optimizer step instead (one host sync
per update) and drops the gradients of non-finite updates.

Variants override the loss hooks (:meth:`GANModule.discriminator_loss`,
:meth:`GANModule.generator_loss`) and their defaults; the regularizers and stabilizers are
options of this class, so every variant can turn them on.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from gan_lightning import augment, losses, penalties
from gan_lightning.checkpointing import ExactResume
from gan_lightning.errors import ConfigurationError, TrainingDivergedError
from gan_lightning.layers import MinibatchStdDev


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

    A variant overrides :meth:`discriminator_loss`, :meth:`generator_loss` and
    :meth:`default_optimizer`, and picks its own defaults for the options below; it never
    copies :meth:`training_step`. The base losses are the non-saturating GAN's.

    Args:
        generator: Maps latents ``(N, latent_dim)`` to samples; must expose ``latent_dim``.
        discriminator: Maps samples to logits ``(N,)``. ``feature_matching`` also needs a
            ``features(x) -> (N, F)`` method.
        optimizer_g: Builds the generator's optimizer from its parameters, e.g.
            ``class_path: torch.optim.Adam`` in YAML. None means the variant's default.
        optimizer_d: The same for the discriminator. Separate settings make two time-scale
            updates (TTUR, different ``lr``) a matter of configuration.
        scheduler_g: Builds a learning-rate scheduler for the generator's optimizer. It is
            stepped once per training step (generator update) and saved in checkpoints.
            None keeps the learning rate constant.
        scheduler_d: The same for the discriminator's optimizer, also stepped once per
            training step (not per discriminator update).
        n_critic: Discriminator updates per generator update (>= 1), each on a fresh real
            batch of ``data.batch_size`` samples.
        gp_weight: Weight of the WGAN-GP gradient penalty on random interpolates of real and
            generated samples; 0 turns it off.
        r1_gamma: Weight gamma of the R1 penalty ``gamma / 2 * E ||grad D(x)||^2`` on real
            samples; 0 turns it off.
        r1_every: Apply R1 only every this many discriminator updates, multiplied by this
            number so its average weight stays ``r1_gamma`` (lazy regularization); 1 = always.
        clip_value: Clamp every discriminator parameter to ``[-clip_value, clip_value]``
            after each of its updates (WGAN weight clipping); None turns it off.
        grad_clip_g: Clip the generator's gradient norm (L2, over all its parameters) to
            this value before each update; None turns it off.
        grad_clip_d: The same for the discriminator.
        feature_matching: Train the generator to match the mean discriminator features of
            real and generated batches instead of the adversarial generator loss.
        label_smoothing: One-sided label smoothing: real samples get the target
            ``1 - label_smoothing`` in the discriminator's cross-entropy, in [0, 1). Only the
            cross-entropy variants (GAN, DCGAN) support it.
        instance_noise: Standard deviation of Gaussian noise added to every discriminator
            input (real and generated), in data units; 0 turns it off.
        instance_noise_steps: Anneal the instance noise linearly to 0 over this many training
            steps; 0 keeps it constant.
        pack: PacGAN packing degree k: the discriminator scores k samples at once,
            concatenated along channels, so its input has k times the data's channels and
            ``data.batch_size`` must be divisible by k. 1 turns it off.
        diff_augment: DiffAugment policy applied to every discriminator input, real and
            generated, in both phases: comma-separated from ``color``, ``translation``,
            ``cutout``. Empty turns it off. Image data only.
        ema_decay: Keep an exponential moving average of the generator's weights and buffers
            with this decay in [0, 1), used for samples and metrics. None turns it off.
        ema_start_step: Training step at which the average starts (it starts as a copy of the
            generator); before it, samples come from the generator itself.
        nan_policy: What a NaN or infinite loss or gradient does. ``stop``: the run stops
            with :class:`~gan_lightning.errors.TrainingDivergedError` naming the step, the
            value and the likely cause; it is detected without per-step host syncs and
            raised at the next logging step, at the end of training or before the next
            checkpoint, so no checkpoint is written after it. ``skip``: the update is dropped
            (its gradients are discarded), which costs one host sync per update; the count is
            logged as ``train/skipped_updates`` and 100 skips in a row stop the run. ``off``:
            no check. Under a float16 ``GradScaler`` non-finite gradients are the scaler's
            signal to lower its scale and skip the step, so only losses are checked there.
    """

    #: Whether :meth:`discriminator_loss` honours ``label_smoothing`` (cross-entropy losses).
    supports_label_smoothing = True

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        scheduler_g: LRSchedulerCallable | None = None,
        scheduler_d: LRSchedulerCallable | None = None,
        n_critic: int = 1,
        gp_weight: float = 0.0,
        r1_gamma: float = 0.0,
        r1_every: int = 1,
        clip_value: float | None = None,
        grad_clip_g: float | None = None,
        grad_clip_d: float | None = None,
        feature_matching: bool = False,
        label_smoothing: float = 0.0,
        instance_noise: float = 0.0,
        instance_noise_steps: int = 0,
        pack: int = 1,
        diff_augment: str = "",
        ema_decay: float | None = None,
        ema_start_step: int = 0,
        nan_policy: Literal["stop", "skip", "off"] = "stop",
    ) -> None:
        super().__init__()
        _save_hyperparameters(self)
        self.automatic_optimization = False
        self.latent_dim = _check_generator(generator)
        self.generator = generator
        self.discriminator = discriminator
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.r1_gamma = r1_gamma
        self.r1_every = r1_every
        self.clip_value = clip_value
        self.grad_clip_g = grad_clip_g
        self.grad_clip_d = grad_clip_d
        self.feature_matching = feature_matching
        self.label_smoothing = label_smoothing
        self.instance_noise = instance_noise
        self.instance_noise_steps = instance_noise_steps
        self.pack = pack
        self.augment_policy = augment.parse_policy(diff_augment, name="model.diff_augment")
        self.ema_start_step = ema_start_step
        self.nan_policy = nan_policy
        self._check_options(ema_decay)

        # The average is a submodule, so it is saved in and restored from checkpoints.
        self.generator_ema: AveragedModel | None = None
        if ema_decay is not None:
            self.generator_ema = AveragedModel(
                generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True
            )
            self.generator_ema.requires_grad_(False)

        self._optimizer_factories = {"generator": optimizer_g, "discriminator": optimizer_d}
        self._scheduler_factories = {"generator": scheduler_g, "discriminator": scheduler_d}
        # DDP wrappers set by GANDDPStrategy; a plain dict keeps them out of the state dict.
        self._wrapped: dict[str, nn.Module] = {}
        # The latest value of each training metric, logged on the loggers' schedule.
        self._train_logs: dict[str, Tensor] = {}
        # Divergence bookkeeping (nan_policy): the update about to step, the device-side
        # records of updates not yet checked, the error once found, skips so far.
        self._pending_update: tuple[str, int, Tensor] | None = None
        self._update_records: list[tuple[int, str, int, Tensor, Tensor]] = []
        self._divergence: str | None = None
        self._skips = {"total": 0, "in_a_row": 0}

    def _check_options(self, ema_decay: float | None) -> None:
        """Reject option values and combinations that cannot work, naming the fix."""
        _require(
            isinstance(self.n_critic, int) and self.n_critic >= 1,
            "n_critic",
            "an integer >= 1",
            self.n_critic,
        )
        _require(self.gp_weight >= 0, "gp_weight", ">= 0", self.gp_weight)
        _require(self.r1_gamma >= 0, "r1_gamma", ">= 0", self.r1_gamma)
        _require(self.r1_every >= 1, "r1_every", "an integer >= 1", self.r1_every)
        for name in ("clip_value", "grad_clip_g", "grad_clip_d"):
            value = getattr(self, name)
            _require(value is None or value > 0, name, "> 0 or null (off)", value)
        _require(
            0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)", self.label_smoothing
        )
        _require(self.instance_noise >= 0, "instance_noise", ">= 0", self.instance_noise)
        _require(
            self.instance_noise_steps >= 0,
            "instance_noise_steps",
            ">= 0",
            self.instance_noise_steps,
        )
        _require(
            isinstance(self.pack, int) and self.pack >= 1, "pack", "an integer >= 1", self.pack
        )
        _require(
            ema_decay is None or 0 <= ema_decay < 1, "ema_decay", "in [0, 1) or null", ema_decay
        )
        _require(self.ema_start_step >= 0, "ema_start_step", ">= 0", self.ema_start_step)
        _require(
            self.nan_policy in ("stop", "skip", "off"),
            "nan_policy",
            "one of 'stop', 'skip', 'off'",
            self.nan_policy,
        )

        if self.clip_value is not None and self.gp_weight > 0:
            raise ConfigurationError(
                "model.clip_value (weight clipping) and model.gp_weight (gradient penalty) both "
                "constrain the critic's Lipschitz constant and fight each other; WGAN-GP replaced "
                "clipping with the penalty. Set clip_value: null or gp_weight: 0."
            )
        if self.label_smoothing > 0 and not self.supports_label_smoothing:
            raise ConfigurationError(
                f"model.label_smoothing applies to cross-entropy losses, but "
                f"{type(self).__name__} has no labels in its loss. Use GAN or DCGAN, or set "
                "label_smoothing: 0."
            )
        if self.feature_matching and not callable(getattr(self.discriminator, "features", None)):
            raise ConfigurationError(
                f"model.feature_matching needs a discriminator with a features(x) method, and "
                f"{type(self.discriminator).__name__} has none. Use a gan_lightning network "
                "(DCGANDiscriminator, ResNetDiscriminator, MLPDiscriminator) or add the method."
            )

    # ----------------------------------------------------------------- variant hooks

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Loss the discriminator minimises, from logits ``(N,)`` of real and fake samples."""
        return losses.minimax_discriminator_loss(
            real_logits, fake_logits, real_label=1.0 - self.label_smoothing
        )

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        """Loss the generator minimises, from the discriminator's logits ``(N,)`` on fakes."""
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
        """The network used for samples and metrics: the EMA copy once it has started."""
        ema = self.generator_ema
        if ema is not None and int(ema.n_averaged) > 0:
            return ema.module
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
        """Samples for latents ``(N, latent_dim)``, with the network in eval mode."""
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
        self._check_data_options()
        self._check_shapes()

    def _check_data_options(self) -> None:
        """Check the options that depend on the data: packing and augmentation."""
        if (self.gp_weight > 0 or self.r1_gamma > 0) and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.discriminator.modules()
        ):
            rank_zero_warn(
                "model.gp_weight / model.r1_gamma penalise each sample's input gradient, but the "
                "discriminator has BatchNorm, which in training mode mixes the samples of a "
                "batch, so the penalty is not per sample. Use a discriminator without BatchNorm "
                "(e.g. DCGANDiscriminator with norm: layer, or spectral_norm: true)."
            )
        datamodule = getattr(self.trainer, "datamodule", None)
        batch_size = getattr(datamodule, "batch_size", None)
        if self.pack > 1 and isinstance(batch_size, int) and batch_size % self.pack:
            raise ConfigurationError(
                f"model.pack={self.pack} packs {self.pack} samples per discriminator input, but "
                f"data.batch_size={batch_size} is not divisible by it. Use a batch size that is "
                f"a multiple of {self.pack}."
            )
        per_input = batch_size // self.pack if isinstance(batch_size, int) else None
        for layer in self.discriminator.modules():
            group = min(getattr(layer, "group_size", 0), per_input or 0)
            if isinstance(layer, MinibatchStdDev) and group and per_input % group:
                raise ConfigurationError(
                    f"the discriminator's minibatch standard deviation uses groups of {group}, "
                    f"but it scores {per_input} inputs per update (data.batch_size={batch_size}"
                    f", pack={self.pack}). Use a batch size divisible by {group * self.pack}."
                )
        shape = getattr(datamodule, "sample_shape", None)
        if self.augment_policy and shape is not None and len(shape) != 3:
            raise ConfigurationError(
                f"model.diff_augment works on images (C, H, W), but the data's samples have "
                f"shape {tuple(shape)}. Set diff_augment: '' for this data."
            )

    def _check_shapes(self) -> None:
        """Fail before training if data, generator and discriminator shapes disagree."""
        datamodule = getattr(self.trainer, "datamodule", None)
        expected = getattr(datamodule, "sample_shape", None)
        n = 2 * self.pack
        with torch.no_grad():
            fake = self.generate(torch.zeros(n, self.latent_dim, device=self.device))
            if expected is not None and tuple(fake.shape[1:]) != tuple(expected):
                raise ConfigurationError(
                    f"the generator makes samples of shape {tuple(fake.shape[1:])} but the data "
                    f"has shape {tuple(expected)}. Make the networks' image_size and channels "
                    "match the data (model.generator / model.discriminator init_args)."
                )
            packed = penalties.pack(fake, self.pack)
            was_training = self.discriminator.training
            self.discriminator.eval()
            try:
                logits = self.discriminator(packed)
            except RuntimeError as err:
                hint = f" With pack={self.pack} it must take {self.pack}x the channels." * (
                    self.pack > 1
                )
                raise ConfigurationError(
                    f"the discriminator cannot score inputs of shape {tuple(packed.shape[1:])}: "
                    f"{err}. Make its image_size and channels match the generator's.{hint}"
                ) from err
            finally:
                self.discriminator.train(was_training)
        if tuple(logits.shape) != (2,):
            raise ConfigurationError(
                f"the discriminator must return one logit per input, shape (N,), but returned "
                f"{tuple(logits.shape)} for N=2."
            )

    # ----------------------------------------------------------------- optimisation

    def configure_optimizers(self) -> list[dict[str, Any]]:
        configs = []
        for name in ("generator", "discriminator"):
            params = getattr(self, name).parameters()
            factory = self._optimizer_factories[name]
            build = factory or (lambda p, name=name: self.default_optimizer(p, name))
            optimizer = _build(f"model.optimizer_{name[0]}", build, params)
            config: dict[str, Any] = {"optimizer": optimizer}
            scheduler_factory = self._scheduler_factories[name]
            if scheduler_factory is not None:
                key = f"model.scheduler_{name[0]}"
                scheduler = _build(key, scheduler_factory, optimizer)
                _probe_scheduler(key, scheduler_factory)
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    raise ConfigurationError(
                        f"model.scheduler_{name[0]} is ReduceLROnPlateau, which needs a monitored "
                        "metric each step; GAN losses are not one. Use a step-based scheduler "
                        "(StepLR, LinearLR, CosineAnnealingLR, ...)."
                    )
                config["lr_scheduler"] = scheduler
            configs.append(config)
        return configs

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Check the update for NaN/inf, then clip gradient norms (just unscaled under AMP)."""
        self._check_update(optimizer)
        is_generator = optimizer is self.trainer.optimizers[0]
        clip = self.grad_clip_g if is_generator else self.grad_clip_d
        if clip is not None:
            self.clip_gradients(optimizer, clip, gradient_clip_algorithm="norm")

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
        for i, real_batch in enumerate(real.split(n)):
            self._discriminator_update(opt_d, real_batch, self.global_step * self.n_critic + i)
        self._generator_update(opt_g, real_batch)

        # Under DDP, make every rank's buffers rank 0's (see gan_lightning.strategies).
        if self._wrapped:
            self.trainer.strategy.broadcast_buffers(self)

        # Manual optimization leaves schedulers to us: one step per training step.
        for scheduler in _as_list(self.lr_schedulers()):
            scheduler.step()

        # Look at the divergence records when the loggers write (the only host sync).
        trainer = self.trainer
        due = self.global_step % trainer.log_every_n_steps == 0 or trainer.should_stop
        if due or len(self._update_records) >= _MAX_UNCHECKED_RECORDS:
            self.check_divergence()
        self._log_train_metrics()

    def _log_train_metrics(self) -> None:
        """Log this step's losses, only on the steps the loggers write.

        ``self.log`` costs about a millisecond per call on CPU, a few percent of a small
        model's step, and on the other steps its values would be overwritten unread. The
        last discriminator update of the step provides the ``train/loss_d`` family; a lazy
        R1 reports its most recent value.
        """
        trainer = self.trainer
        # global_step already counts this step's generator update.
        if self.global_step % trainer.log_every_n_steps and not trainer.should_stop:
            return
        logs = self._train_logs
        for name in ("train/d_real", "train/d_fake"):
            logs[name] = logs[name].float().mean()
        self.log_at_step(logs, prog_bar=("train/loss_d", "train/loss_g"))

    def log_at_step(
        self, metrics: dict[str, Tensor | float], prog_bar: Iterable[str] = (), sync_dist=False
    ) -> None:
        """Log scalar ``metrics`` at x = the number of completed training steps.

        Lightning's loggers would plot the metrics of the k-th step (and a validation after
        it) at x = k - 1, while checkpoints (``step=k``) and sample grids count k. Here the
        values go to ``callback_metrics`` and the progress bar through ``self.log`` and to
        every logger at ``global_step``, so all of them share one axis. Values must be equal
        on all processes (loggers write from rank 0 only). Reads the values (a host sync):
        call it on logging steps and at evaluations, not every step. ``sync_dist`` averages
        the values over processes for ``callback_metrics`` (evaluation callbacks pass True).
        """
        prog_bar = set(prog_bar)
        for name, value in metrics.items():
            self.log(name, value, logger=False, prog_bar=name in prog_bar, sync_dist=sync_dist)
        if not self.loggers:
            return
        scalars = {name: float(value) for name, value in metrics.items()}
        scalars["epoch"] = self.current_epoch
        for logger in self.loggers:
            logger.log_metrics(scalars, step=self.global_step)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks (FID, samples) read the validation loop."""

    # ----------------------------------------------------------------- exact resume

    def configure_callbacks(self) -> list[pl.Callback]:
        """Keep the training steps' random state in checkpoints (see ``ExactResume``)."""
        return [ExactResume()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Never write weights that a non-finite update has touched (nan_policy: stop).
        self.check_divergence()
        # The latest value of each training metric: a lazy R1 logs its last value in between.
        checkpoint["gan_train_logs"] = {k: v.cpu() for k, v in self._train_logs.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        logs = checkpoint.get("gan_train_logs", {})
        self._train_logs = {k: v.to(self.device) for k, v in logs.items()}

    # ----------------------------------------------------------------- the two phases

    def _discriminator_update(self, opt_d: Any, real: Tensor, d_step: int) -> None:
        """One discriminator update on ``real`` ``(N, ...)``; ``d_step`` counts D updates."""
        with self.toggled_optimizer(opt_d):
            # Fresh fakes without a graph: the discriminator's loss must not reach G.
            with torch.no_grad():
                fake = self.generator(self.sample_latent(real.shape[0]))
            real_in, fake_in = self._discriminator_input(real), self._discriminator_input(fake)

            # Inputs whose gradients the penalties need are scored in the same forward call.
            use_r1 = self.r1_gamma > 0 and d_step % self.r1_every == 0
            if use_r1:
                real_in = real_in.detach().requires_grad_(True)
            extra = []
            if self.gp_weight > 0:
                extra.append(penalties.interpolate(real_in, fake_in).requires_grad_(True))
            real_logits, fake_logits, *extra_logits = self._discriminate(real_in, fake_in, *extra)

            loss = self.discriminator_loss(real_logits, fake_logits)
            total = loss
            if self.gp_weight > 0:
                gp = penalties.gradient_penalty_from_outputs(
                    extra_logits[0], extra[0], self.gp_weight
                )
                self._train_logs["train/gp"] = gp.detach()
                total = total + gp
            if use_r1:
                r1 = penalties.r1_penalty_from_outputs(real_logits, real_in, self.r1_gamma)
                self._train_logs["train/r1"] = r1.detach()
                total = total + self.r1_every * r1

            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(total)
            self._pending_update = ("discriminator", d_step % self.n_critic, total.detach())
            # Step through the strategy, not opt_d.step(): Lightning counts every
            # LightningOptimizer step in global_step, and here a step is a generator update.
            self.trainer.strategy.optimizer_step(opt_d.optimizer, closure=_no_closure)
            if self.clip_value is not None:
                penalties.clip_weights_(self.discriminator, self.clip_value)

        self._train_logs["train/loss_d"] = loss.detach()
        self._train_logs["train/d_real"] = real_logits.detach()
        self._train_logs["train/d_fake"] = fake_logits.detach()

    def _generator_update(self, opt_g: Any, real: Tensor) -> None:
        """One generator update; ``real`` is the last real batch (for feature matching)."""
        with self.toggled_optimizer(opt_g):
            fake = self._wrapped.get("generator", self.generator)(self.sample_latent(real.shape[0]))
            fake_in = self._discriminator_input(fake)

            # The discriminator runs unwrapped: its parameters are frozen in this phase.
            if self.feature_matching:
                with torch.no_grad():
                    real_features = self.discriminator.features(self._discriminator_input(real))
                loss = penalties.feature_matching_loss(
                    real_features, self.discriminator.features(fake_in)
                )
            else:
                loss = self.generator_loss(self.discriminator(fake_in))

            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            self._pending_update = ("generator", 0, loss.detach())
            opt_g.step()

        self._train_logs["train/loss_g"] = loss.detach()
        if self.generator_ema is not None and self.global_step >= self.ema_start_step:
            # global_step already counts this update; the first call copies the generator.
            self.generator_ema.update_parameters(self.generator)

    # ----------------------------------------------------------------- divergence

    def check_divergence(self) -> None:
        """Raise if an update so far had a non-finite loss or gradient (``nan_policy: stop``).

        Costs one host sync (and under DDP one all-reduce, so every rank must call it at the
        same point): the loop calls it at logging steps, at the end of training and before
        every checkpoint is written.

        Raises:
            TrainingDivergedError: naming the first such update, its value and likely causes.
        """
        if self._divergence is None and self._update_records:
            records, self._update_records = self._update_records, []
            finite = torch.stack([record[-1] for record in records])
            n_bad = (~finite).sum()
            if self._trainer is not None:
                n_bad = self.trainer.strategy.reduce(n_bad, reduce_op="sum")
            if int(n_bad) > 0:
                bad = [r for r, ok in zip(records, finite.tolist(), strict=True) if not ok]
                self._divergence = self._divergence_message(bad[0] if bad else None)
        if self._divergence is not None:
            raise TrainingDivergedError(self._divergence)

    def on_train_end(self) -> None:
        self.check_divergence()

    def _check_update(self, optimizer: Optimizer) -> None:
        """Record (``stop``) or act on (``skip``) whether the update about to step is finite."""
        pending, self._pending_update = self._pending_update, None
        if pending is None or self.nan_policy == "off":
            return
        network, index, loss = pending
        finite = torch.isfinite(loss)
        # Under a GradScaler non-finite gradients are expected now and then: the scaler skips.
        if getattr(self.trainer.precision_plugin, "scaler", None) is None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                finite = finite & torch.isfinite(_sum_all(grads))
        record = (self.global_step + 1, network, index, loss, finite)
        if self.nan_policy == "stop":
            self._update_records.append(record)
            return

        # skip: decide before the step, identically on every rank (a host sync per update).
        if self.trainer.strategy.reduce_boolean_decision(bool(finite), all=True):
            self._skips["in_a_row"] = 0
            return
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self._skips["total"] += 1
        self._skips["in_a_row"] += 1
        self._train_logs["train/skipped_updates"] = torch.tensor(float(self._skips["total"]))
        message = self._divergence_message(record)
        if self._skips["in_a_row"] >= _MAX_SKIPS_IN_A_ROW:
            raise TrainingDivergedError(
                f"{message} ({_MAX_SKIPS_IN_A_ROW} updates in a row were skipped)"
            )
        if self._skips["total"] <= _SKIP_WARNINGS:
            rank_zero_warn(f"nan_policy=skip: update skipped: {message}")

    def _divergence_message(self, record: tuple | None) -> str:
        """The error for a non-finite update: where, what, likely causes, what is kept."""
        if record is None:
            head = "training diverged: a loss or gradient was not finite on another rank"
        else:
            step, network, index, loss, _ = record
            several = network == "discriminator" and self.n_critic > 1
            update = f" {index + 1} of {self.n_critic}" if several else ""
            value = float(loss)
            what = f"its loss is {value}" if not math.isfinite(value) else "non-finite gradients"
            head = f"training diverged in step {step}, {network} update{update}: {what}"
            if math.isfinite(value):
                head += f" (loss {value:.4g})"
        latest = _latest_checkpoint(self.trainer.checkpoint_callback)
        kept = f"the last checkpoint before it is kept: {latest}" if latest else "none is kept"
        return (
            f"{head}. Likely cause: {'; '.join(self._likely_causes())}. No checkpoint is written "
            f"after it; {kept}. Fix the cause and rerun, or set model.init_args.nan_policy: "
            "skip to drop such updates."
        )

    def _likely_causes(self) -> list[str]:
        """Plausible reasons for a divergence in this configuration, most specific first."""
        causes = []
        precision = str(self.trainer.precision)
        if precision.startswith("16"):
            causes.append(
                f"float16 overflow under precision={precision} (try bf16-mixed or 32-true)"
            )
        rates = zip(("lr_g", "lr_d"), self.trainer.optimizers, strict=False)
        high = [f"{name}={opt.param_groups[0].get('lr', 0.0):g}" for name, opt in rates]
        high = [rate for rate in high if float(rate.split("=")[1]) > 1e-3]
        if high:
            causes.append(f"learning rate too high ({', '.join(high)}; GANs use 1e-4 to 2e-4)")
        if not (self.gp_weight or self.r1_gamma or self.clip_value) and not _has_spectral_norm(
            self.discriminator
        ):
            causes.append(
                "an unconstrained discriminator (set gp_weight, r1_gamma or clip_value, or use "
                "spectral norm)"
            )
        if not causes:
            causes.append("exploding gradients (lower the learning rates or set grad_clip_d/g)")
        return causes

    def _discriminator_input(self, x: Tensor) -> Tensor:
        """What the discriminator sees of samples ``x``: augmented, noised, then packed."""
        if self.augment_policy:
            x = augment.diff_augment(x, ",".join(self.augment_policy))
        if self.instance_noise > 0:
            std = self.instance_noise  # instance_noise_steps == 0: constant
            if self.instance_noise_steps > 0:
                std = penalties.instance_noise_std(
                    self.global_step, self.instance_noise, self.instance_noise_steps
                )
            x = penalties.add_instance_noise(x, std)
        return penalties.pack(x, self.pack) if self.pack > 1 else x

    def _discriminate(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        """Discriminator logits for each input, in one (possibly DDP-wrapped) forward call."""
        wrapped = self._wrapped.get("discriminator")
        if wrapped is None:
            return tuple(self.discriminator(x) for x in inputs)
        return wrapped(*inputs)


# Divergence checks: records kept between host syncs at most, warnings and skips in a row.
_MAX_UNCHECKED_RECORDS = 1000
_SKIP_WARNINGS = 10
_MAX_SKIPS_IN_A_ROW = 100


def _no_closure() -> None:
    return None


def _sum_all(tensors: list[Tensor]) -> Tensor:
    """The sum of every entry of ``tensors``: NaN or inf when any entry is.

    The cheapest finiteness probe (one reduction per tensor, no temporaries). It can also
    overflow to inf for finite entries summing past float32's 3.4e38, which is a divergence
    in all but name.
    """
    return torch.stack([t.detach().sum(dtype=torch.float32) for t in tensors]).sum()


def _latest_checkpoint(callback: Any) -> str:
    """The newest checkpoint file ``callback`` wrote, or "" (it names files before writing)."""
    names = [getattr(callback, "last_model_path", ""), getattr(callback, "best_model_path", "")]
    names += list(getattr(callback, "best_k_models", {}))
    dirpath = getattr(callback, "dirpath", None)
    if dirpath and os.path.isdir(dirpath):
        names += [os.path.join(dirpath, n) for n in os.listdir(dirpath) if n.endswith(".ckpt")]
    files = [name for name in names if name and os.path.isfile(name)]
    return max(files, key=lambda name: (os.stat(name).st_mtime_ns, name), default="")


def _has_spectral_norm(net: nn.Module) -> bool:
    """Whether any layer of ``net`` is reparametrized (spectral norm, old or new API)."""
    from torch.nn.utils import parametrize

    return any(parametrize.is_parametrized(m) or hasattr(m, "weight_orig") for m in net.modules())


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


def _require(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        raise ConfigurationError(f"model.{name} must be {expected}, got {got!r}.")


def _check_generator(generator: nn.Module) -> int:
    """The generator's latent size, checked: the loop draws latents of this size."""
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ConfigurationError(
            f"the generator ({type(generator).__name__}) must have an integer attribute "
            f"latent_dim >= 1, got {latent_dim!r}."
        )
    return latent_dim


def _as_list(value: Any) -> list:
    """``LightningModule.lr_schedulers()`` returns None, one scheduler or a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _build(key: str, make: Callable[[Any], Any], arg: Any) -> Any:
    """``make(arg)`` for an optimizer or scheduler, reporting bad arguments as config errors."""
    try:
        return make(arg)
    except (ValueError, TypeError) as err:
        raise ConfigurationError(
            f"{key} cannot be built: {err}. Fix its init_args in the config."
        ) from err


def _probe_scheduler(key: str, make: Callable[[Optimizer], Any], steps: int = 3) -> None:
    """Step a copy of the scheduler on a throwaway optimizer, so that arguments that only fail
    when it steps (e.g. ``StepLR(step_size=0)``) are reported before training starts."""
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    try:
        scheduler = make(probe)
        for _ in range(steps):
            probe.step()
            scheduler.step()
    except (ValueError, TypeError, ZeroDivisionError, IndexError) as err:
        raise ConfigurationError(
            f"{key} fails when it steps: {type(err).__name__}: {err}. Fix its init_args."
        ) from err
