"""The ``gan-lightning`` command: LightningCLI subcommands plus ``sample``.

    gan-lightning fit --config configs/dcgan_digits.yaml
    gan-lightning sample --ckpt_path CKPT --num_samples 64 --output_dir samples/
    gan-lightning evaluate --config CONFIG (--ckpt_path CKPT | --images DIR) --metrics fid,kid

Errors in the command line, the configuration, the data or a checkpoint are reported as one
line on stderr (exit status 2) before any training starts; a run that diverges (NaN or inf,
``model.init_args.nan_policy: stop``) ends with one line naming the step (exit status 1).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from gan_lightning.checkpointing import continue_wandb_run, with_atomic_checkpoint_io
from gan_lightning.data.base import GANDataModule
from gan_lightning.errors import ConfigurationError, TrainingDivergedError
from gan_lightning.models.base import GANModule
from gan_lightning.preflight import check_fit, load_checkpoint, same_class
from gan_lightning.strategies import DDP_ALIASES

_STOCK_DDP_CLASS = "lightning.pytorch.strategies.DDPStrategy"
_GAN_DDP_CLASS = "gan_lightning.strategies.GANDDPStrategy"


class GANLightningCLI(LightningCLI):
    """LightningCLI over every GAN variant and data module, with GAN-aware DDP.

    Changes to a stock LightningCLI: a DDP strategy, asked for by name, by class or
    implied by several devices, becomes :class:`~gan_lightning.strategies.GANDDPStrategy`;
    checkpoints are written by :class:`~gan_lightning.checkpointing.AtomicCheckpointIO`
    unless ``trainer.plugins`` has another ``CheckpointIO``; and ``fit --ckpt_path`` with a
    ``WandbLogger`` that has no ``id`` continues the W&B run recorded in the checkpoint.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            GANModule,
            GANDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=_SaveConfigOnce,
            # Parser errors are raised, so that main() can report them on one line.
            parser_kwargs={"exit_on_error": False},
            args=args,
            run=run,
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config["trainer"]
        strategy = trainer.get("strategy", "auto")
        if isinstance(strategy, str):
            trainer["strategy"] = DDP_ALIASES.get(strategy, strategy)
            if strategy == "auto" and _wants_several_processes(trainer):
                trainer["strategy"] = "gan_ddp"
        elif getattr(strategy, "class_path", None) == _STOCK_DDP_CLASS:
            strategy["class_path"] = _GAN_DDP_CLASS
        if trainer.get("strategy") == _STOCK_DDP_CLASS:
            trainer["strategy"] = "gan_ddp"
        _refuse_automatic_optimization_options(trainer)
        if self.subcommand == "fit":
            continue_wandb_run(config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured trainer, writing checkpoints with ``AtomicCheckpointIO`` by default."""
        plugins = self._get(self.config_init, "trainer", default={}).get("plugins")
        kwargs.setdefault("plugins", with_atomic_checkpoint_io(plugins))
        if self._get(self.config, "ckpt_path"):
            # A resumed W&B run logs into the folder of the run it continues: update its config.
            self.save_config_kwargs = {**self.save_config_kwargs, "overwrite": True}
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        try:
            return super()._instantiate_trainer(config, callbacks)
        except (MisconfigurationException, ValueError, TypeError) as err:
            if isinstance(err, ConfigurationError):
                raise
            raise ConfigurationError(
                f"trainer: {str(err).rstrip('.!')}. Check the trainer options (accelerator, "
                "devices, strategy, precision, plugins); `gan-lightning fit --help` lists them."
            ) from err

    def _parse_ckpt_path(self) -> None:
        """Lightning replaces the model config by the checkpoint's: refuse a conflicting one.

        With ``--ckpt_path`` LightningCLI rebuilds the model from the hyperparameters that
        ``gan-lightning fit`` saved in the checkpoint, silently overriding the config. A config
        that asks for another variant or other networks is an error here instead, raised
        before anything is built.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return super()._parse_ckpt_path()
        checkpoint = load_checkpoint(ckpt_path)  # complete and from Lightning, or a clear error
        if "_class_path" not in checkpoint.get("hyper_parameters", {}):
            # Saved from Python, without network configs: Lightning's merge would replace the
            # variant by GANModule. The config stays in charge; before_fit compares weights.
            return None
        before = _model_outline(self.config[subcommand].get("model"))
        try:
            super()._parse_ckpt_path()
        except Exception as err:
            raise ConfigurationError(
                f"--ckpt_path {ckpt_path}: its saved hyperparameters do not fit this command "
                f"({type(err).__name__}: {err}). Resume with the config.yaml saved beside it."
            ) from err
        after = _model_outline(self.config[subcommand].get("model"))
        if before["class_path"] and not same_class(before["class_path"], after["class_path"]):
            raise ConfigurationError(
                f"--ckpt_path {ckpt_path} was written by {after['class_path']}, but the config "
                f"builds {before['class_path']}. Resume with the config of that run (the "
                "config.yaml saved beside its checkpoints) or start a new run without --ckpt_path."
            )
        changes = [
            change
            for name in ("generator", "discriminator")
            if before[name]  # a config without networks takes the checkpoint's
            for change in _differences(name, after[name], before[name])
        ]
        if changes:
            raise ConfigurationError(
                f"--ckpt_path {ckpt_path} was written with other networks than the config asks "
                f"for ({'; '.join(changes)}). Resume with the config.yaml saved beside the "
                "checkpoint, or start a new run without --ckpt_path."
            )

    def before_fit(self) -> None:
        """Refuse runs that cannot train, cannot write, or resume from a wrong checkpoint."""
        check_fit(self.trainer, self.model, self._get(self.config_init, "ckpt_path"))


def _model_outline(model: Any) -> dict[str, Any]:
    """The model config's class path and network configs, as comparable plain values."""
    as_dict = getattr(model, "as_dict", None)
    model = as_dict() if callable(as_dict) else dict(model or {})
    init_args = model.get("init_args") or model.get("dict_kwargs") or {}
    return {
        "class_path": model.get("class_path"),
        "generator": init_args.get("generator"),
        "discriminator": init_args.get("discriminator"),
    }


def _differences(prefix: str, saved: Any, configured: Any) -> list[str]:
    """Leaves where two nested configs differ, as ``"path: checkpoint X, config Y"``."""
    if isinstance(saved, dict) and isinstance(configured, dict):
        keys = dict.fromkeys([*saved, *configured])
        return [
            change
            for key in keys
            for change in _differences(
                prefix if key == "init_args" else f"{prefix}.{key}",
                saved.get(key),
                configured.get(key),
            )
        ]
    return [] if saved == configured else [f"{prefix}: checkpoint {saved}, config {configured}"]


class _SaveConfigOnce(SaveConfigCallback):
    """Lightning's config saver, refusing an existing run folder with a ConfigurationError."""

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.save_to_log_dir and not self.overwrite and not self.already_saved:
            path = Path(trainer.log_dir or trainer.default_root_dir) / self.config_filename
            if trainer.strategy.broadcast(trainer.is_global_zero and path.is_file()):
                raise ConfigurationError(
                    f"the run folder {path.parent} already holds a run ({path.name} exists) and "
                    "would be overwritten. Choose a new folder (--trainer.default_root_dir or the "
                    "logger's version), or resume that run with --ckpt_path."
                )
        super().setup(trainer, pl_module, stage)


def _refuse_automatic_optimization_options(trainer_config: dict) -> None:
    """Trainer options that only exist for automatic optimization, with the GAN equivalent."""
    if trainer_config.get("gradient_clip_val") not in (None, 0, 0.0):
        raise ConfigurationError(
            "trainer.gradient_clip_val does not apply to the GAN modules, which optimise "
            "manually. Clip per network with model.init_args.grad_clip_g / grad_clip_d."
        )
    if trainer_config.get("accumulate_grad_batches") not in (None, 1):
        raise ConfigurationError(
            "trainer.accumulate_grad_batches does not apply to the GAN modules, which optimise "
            "manually. Raise data.init_args.batch_size instead (batches are per update)."
        )


def _wants_several_processes(trainer_config: dict) -> bool:
    devices = trainer_config.get("devices", "auto")
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    several = (isinstance(devices, int) and devices > 1) or (
        isinstance(devices, (list, tuple)) and len(devices) > 1
    )
    return several or int(trainer_config.get("num_nodes", 1) or 1) > 1


def sample(argv: list[str]) -> None:
    """``gan-lightning sample``: write generated PNG images from a checkpoint."""
    parser = argparse.ArgumentParser(
        prog="gan-lightning sample", description="Write N generated PNG images from a checkpoint."
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by `fit`")
    parser.add_argument("--output_dir", required=True, help="new or empty folder for the PNGs")
    parser.add_argument("--num_samples", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent draws")
    parser.add_argument("--device", default="cpu", help="e.g. cpu or cuda:0")
    args = parser.parse_args(argv)

    from gan_lightning.sampling import check_output_dir, load_generator_module, write_samples

    if args.num_samples < 1 or args.batch_size < 1:
        raise ConfigurationError("--num_samples and --batch_size must be at least 1.")
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir)
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise ConfigurationError(f"--device {args.device!r} is not a device: {err}") from err
    module = load_generator_module(args.ckpt_path, device)
    paths = write_samples(module, output_dir, args.num_samples, args.batch_size, args.seed)
    sys.stderr.write(f"wrote {len(paths)} files to {output_dir}\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gan-lightning`` console script; ``argv`` defaults to sys.argv."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args and args[0] == "sample":
            sample(args[1:])
        elif args and args[0] == "evaluate":
            from gan_lightning.evaluate import evaluate

            evaluate(args[1:])
        else:
            GANLightningCLI(args=argv)
    except Exception as err:
        if isinstance(err, argparse.ArgumentError):
            sys.stderr.write(f"gan-lightning: error: {_parser_message(str(err), args)}\n")
            raise SystemExit(2) from None
        diverged = _in_chain(err, TrainingDivergedError)
        if diverged is not None:
            sys.stderr.write(f"gan-lightning: error: {diverged}\n")
            raise SystemExit(1) from None
        cause = _configuration_error(err)
        if cause is None:
            raise
        sys.stderr.write(f"gan-lightning: error: {cause}\n")
        raise SystemExit(2) from None


# Lines of jsonargparse's error reports that restate types rather than the problem.
_PARSER_NOISE = re.compile(
    r"^(Given value type:|Subtypes:|Errors:|Does not validate against any of the Union"
    r"|Expected a <class 'NoneType'>|Expected a path but .* either not accessible or invalid)"
)


def _parser_message(message: str, args: list[str]) -> str:
    """jsonargparse's multi-line error as one line, with the config file and the fix named."""
    lines = [line.strip().removeprefix("- ").strip() for line in message.splitlines()]
    text = ""
    for line in (line for line in lines if line and not _PARSER_NOISE.match(line)):
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    configs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--config", "-c")]
    if text.startswith("Problems parsing config") and configs:
        text = f"{text} (in {', '.join(configs)})"
    known = args and args[0] in ("fit", "validate", "test", "predict")
    help_command = f"gan-lightning {args[0]} --help" if known else "gan-lightning --help"
    return (
        f"{text.rstrip('.')}. Fix the option or file named here; `{help_command}` lists the "
        "accepted options and --print_config shows the complete config."
    )


def _configuration_error(err: BaseException | None) -> ConfigurationError | None:
    """The ConfigurationError behind ``err``; jsonargparse wraps errors raised in __init__."""
    return _in_chain(err, ConfigurationError)


def _in_chain(err: BaseException | None, kind: type[BaseException]) -> Any:
    """The first exception of type ``kind`` in ``err``'s cause/context chain, or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kind):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    main()
