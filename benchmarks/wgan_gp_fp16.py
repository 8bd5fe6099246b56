"""Does WGAN-GP stay finite under 16-mixed (float16 autocast + GradScaler) on a GPU?

Trains the ``configs/wgan_gp_digits.yaml`` model (DCGAN generator, layer-normalised critic,
gradient penalty 10, n_critic 5, Adam(1e-4, (0, 0.9))) on 32x32 digits for ``--steps``
generator steps under ``precision="16-mixed"`` and checks that every logged loss and
penalty, every weight and the loss scale stay finite (``nan_policy: stop`` also watches every
update). Prints one verdict line and exits 0 (PASS) or 1 (FAIL); needs CUDA.

    python benchmarks/wgan_gp_fp16.py --steps 2000
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import lightning.pytorch as pl
import torch


class Watch(pl.Callback):
    """Keeps the logged losses and the loss scale at every logging step."""

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % trainer.log_every_n_steps == 0:
            record = {k: v.item() for k, v in trainer.callback_metrics.items()}
            record["scale"] = trainer.precision_plugin.scaler.get_scale()
            record["step"] = trainer.global_step
            self.records.append(record)


def run(steps: int, batch_size: int, seed: int) -> tuple[bool, str]:
    from gan_lightning.data import DigitsDataModule
    from gan_lightning.errors import TrainingDivergedError
    from gan_lightning.models import WassersteinGANGP
    from gan_lightning.networks import DCGANDiscriminator, DCGANGenerator

    pl.seed_everything(seed)
    model = WassersteinGANGP(
        DCGANGenerator(latent_dim=64, image_size=32, base_channels=32),
        DCGANDiscriminator(image_size=32, base_channels=32, norm="layer"),
    )
    watch = Watch()
    trainer = pl.Trainer(
        accelerator="cuda",
        devices=1,
        precision="16-mixed",
        max_steps=steps,
        log_every_n_steps=50,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[watch],
    )
    try:
        trainer.fit(model, DigitsDataModule(image_size=32, batch_size=batch_size))
    except TrainingDivergedError as err:
        return False, str(err)

    bad = [r for r in watch.records if not all(math.isfinite(v) for v in r.values())]
    if bad:
        return False, f"a logged value is not finite at step {bad[0]['step']}: {bad[0]}"
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        return False, "a weight is not finite after training"
    if trainer.global_step != steps:
        return False, f"training stopped at step {trainer.global_step} of {steps}"
    last = watch.records[-1]
    scales = [r["scale"] for r in watch.records]
    return True, (
        f"{steps} steps; last loss_d {last['train/loss_d']:.3f}, loss_g "
        f"{last['train/loss_g']:.3f}, gp {last['train/gp']:.3f}; loss scale "
        f"min {min(scales):g}, last {scales[-1]:g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device; this check needs a GPU (16-mixed uses a CUDA GradScaler).")
        sys.exit(0)

    start = time.perf_counter()
    ok, detail = run(args.steps, args.batch_size, args.seed)
    minutes = (time.perf_counter() - start) / 60
    device = torch.cuda.get_device_name()
    verdict = "PASS: WGAN-GP under 16-mixed stayed finite" if ok else "FAIL: WGAN-GP under 16-mixed"
    print(f"{verdict} ({detail}) on {device}, {minutes:.1f} min")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
