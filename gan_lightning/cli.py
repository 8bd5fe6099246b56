"""The ``gan-lightning`` command: LightningCLI subcommands plus ``sample``.

    gan-lightning fit --config configs/dcgan_digits.yaml
    gan-lightning sample --ckpt_path CKPT --num_samples 64 --output_dir samples/

Errors in the configuration, the data or a checkpoint are reported as one line on stderr
(exit status 2) before any training starts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from lightning.pytorch.cli import LightningCLI

from gan_lightning.data.base import GANDataModule
from gan_lightning.errors import ConfigurationError
from gan_lightning.models.base import GANModule
from gan_lightning.strategies import DDP_ALIASES

_STOCK_DDP_CLASS = "lightning.pytorch.strategies.DDPStrategy"
_GAN_DDP_CLASS = "gan_lightning.strategies.GANDDPStrategy"


class GANLightningCLI(LightningCLI):
    """LightningCLI over every GAN variant and data module, with GAN-aware DDP.

    The only change to a stock LightningCLI: a DDP strategy, asked for by name, by class or
    implied by several devices, becomes :class:`~gan_lightning.strategies.GANDDPStrategy`.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        super().__init__(
            GANModule,
            GANDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
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

    from gan_lightning.sampling import load_generator_module, write_samples

    if args.num_samples < 1 or args.batch_size < 1:
        raise ConfigurationError("--num_samples and --batch_size must be at least 1.")
    output_dir = Path(args.output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ConfigurationError(
            f"--output_dir {output_dir} is not empty; choose a new or empty folder so no "
            "existing file is overwritten."
        )
    module = load_generator_module(args.ckpt_path, torch.device(args.device))
    paths = write_samples(module, output_dir, args.num_samples, args.batch_size, args.seed)
    sys.stderr.write(f"wrote {len(paths)} images to {output_dir}\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gan-lightning`` console script; ``argv`` defaults to sys.argv."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args and args[0] == "sample":
            sample(args[1:])
        else:
            GANLightningCLI(args=argv)
    except Exception as err:
        cause = _configuration_error(err)
        if cause is None:
            raise
        sys.stderr.write(f"gan-lightning: error: {cause}\n")
        raise SystemExit(2) from None


def _configuration_error(err: BaseException | None) -> ConfigurationError | None:
    """The ConfigurationError behind ``err``; jsonargparse wraps errors raised in __init__."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, ConfigurationError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    main()
