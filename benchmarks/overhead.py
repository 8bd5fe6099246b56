"""Overhead of gan-lightning's training loop against a hand-written PyTorch loop.

Both sides train the same DCGAN (the main job's networks) on the same digits data, with
the same batch size, seed, optimizers and number of generator steps. The hand-written side
is the textbook alternating loop, doing the same arithmetic as gan-lightning: one
discriminator update on fakes generated without a graph, then one generator update with the
non-saturating loss through a discriminator whose weights need no gradients (the PyTorch
DCGAN tutorial computes those unused gradients too, which would flatter gan-lightning).
Each run is a fresh subprocess, and the two sides alternate (ABBA order) so that slow phases
of a shared machine hit both equally.

Reported per side: the median training time (gan-lightning: the whole ``Trainer.fit``;
hand-written: the loop with its data loader; both with data loading, neither with imports or
network construction), the median time of one step after warm-up (steady state) and the
peak resident memory of the process. The target is a time ratio of at most 1.03.

    python benchmarks/overhead.py --steps 1000 --rounds 4 --write benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

LATENT_DIM, IMAGE_SIZE, BASE_CHANNELS = 64, 32, 32


def _build(seed: int):
    import torch

    from gan_lightning.networks import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(seed)
    generator = DCGANGenerator(LATENT_DIM, IMAGE_SIZE, 1, BASE_CHANNELS)
    discriminator = DCGANDiscriminator(IMAGE_SIZE, 1, BASE_CHANNELS)
    return generator, discriminator


def _adam(params):
    import torch

    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


def run_lightning(
    steps: int, batch_size: int, seed: int, nan_policy: str = "stop"
) -> tuple[float, list[float]]:
    import lightning.pytorch as pl

    from gan_lightning.data import DigitsDataModule
    from gan_lightning.models import DCGAN

    pl.seed_everything(seed, verbose=False)
    generator, discriminator = _build(seed)
    model = DCGAN(
        generator, discriminator, optimizer_g=_adam, optimizer_d=_adam, nan_policy=nan_policy
    )
    data = DigitsDataModule(batch_size=batch_size)
    stamps: list[float] = []

    class StepClock(pl.Callback):
        def on_train_batch_end(self, *args) -> None:
            stamps.append(time.perf_counter())

    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[StepClock()],
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    elapsed = time.perf_counter() - start
    assert trainer.global_step == steps, trainer.global_step
    return elapsed, stamps


def run_plain(steps: int, batch_size: int, seed: int) -> tuple[float, list[float]]:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from gan_lightning.data import DigitsDataModule

    torch.manual_seed(seed)
    generator, discriminator = _build(seed)
    opt_g, opt_d = _adam(generator.parameters()), _adam(discriminator.parameters())
    data = DigitsDataModule(batch_size=batch_size)
    data.setup("fit")

    stamps: list[float] = []
    start = time.perf_counter()
    loader = DataLoader(data.train_set, batch_size=batch_size, shuffle=True, drop_last=True)
    step = 0
    while step < steps:
        for real, _ in loader:
            n = real.shape[0]
            ones, zeros = torch.ones(n), torch.zeros(n)

            # Discriminator update on fakes made without a graph.
            with torch.no_grad():
                fake = generator(torch.randn(n, LATENT_DIM))
            loss_d = F.binary_cross_entropy_with_logits(
                discriminator(real), ones
            ) + F.binary_cross_entropy_with_logits(discriminator(fake), zeros)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # Generator update through a frozen discriminator (no gradients for its weights).
            discriminator.requires_grad_(False)
            fake = generator(torch.randn(n, LATENT_DIM))
            loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            discriminator.requires_grad_(True)

            step += 1
            stamps.append(time.perf_counter())
            if step == steps:
                break
    return time.perf_counter() - start, stamps


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(side: str, steps: int, batch_size: int, seed: int, nan_policy: str) -> None:
    if side == "lightning":
        seconds, stamps = run_lightning(steps, batch_size, seed, nan_policy)
    else:
        seconds, stamps = run_plain(steps, batch_size, seed)
    # Steady state: the median step duration after the first tenth of the run (warm-up).
    durations = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    step_ms = 1000 * statistics.median(durations[len(durations) // 10 :])
    record = {"side": side, "seconds": seconds, "step_ms": step_ms, "peak_rss_mib": _peak_rss_mib()}
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="generator steps per run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4, help="runs per side")
    parser.add_argument(
        "--nan-policy",
        default="stop",
        choices=["stop", "off"],
        help="gan-lightning's divergence check (stop is the default of every variant)",
    )
    parser.add_argument("--write", type=Path, help="append the result to this Markdown file")
    parser.add_argument("--worker", choices=["lightning", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args.worker, args.steps, args.batch_size, args.seed, args.nan_policy)
        return

    order = []
    for r in range(args.rounds):
        order += ["lightning", "plain"] if r % 2 == 0 else ["plain", "lightning"]
    results: dict[str, list[dict]] = {"lightning": [], "plain": []}
    for side in order:
        command = [
            sys.executable, __file__, "--worker", side, "--steps", str(args.steps),
            "--batch-size", str(args.batch_size), "--seed", str(args.seed),
            "--nan-policy", args.nan_policy,
        ]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        record = json.loads(out.strip().splitlines()[-1])
        results[side].append(record)
        print(
            f"{side:>9}: {record['seconds']:7.2f} s, median step {record['step_ms']:.2f} ms, "
            f"peak RSS {record['peak_rss_mib']:.0f} MiB"
        )

    median = {side: statistics.median(r["seconds"] for r in rs) for side, rs in results.items()}
    step_ms = {side: statistics.median(r["step_ms"] for r in rs) for side, rs in results.items()}
    peak = {side: max(r["peak_rss_mib"] for r in rs) for side, rs in results.items()}
    ratio = median["lightning"] / median["plain"]
    step_ratio = step_ms["lightning"] / step_ms["plain"]
    verdict = "meets" if ratio <= 1.03 else "misses"
    summary = (
        f"time ratio gan-lightning / hand-written loop: {ratio:.3f} ({verdict} the 1.03 target)\n"
        f"steady-state step ratio: {step_ratio:.3f} ({step_ms['lightning']:.2f} ms vs "
        f"{step_ms['plain']:.2f} ms)\n"
        f"median seconds for {args.steps} steps: gan-lightning {median['lightning']:.2f}, "
        f"hand-written {median['plain']:.2f}\n"
        f"peak RSS: gan-lightning {peak['lightning']:.0f} MiB, "
        f"hand-written {peak['plain']:.0f} MiB"
    )
    print(summary)
    if args.write:
        _append_markdown(args, results, median, step_ms, peak, ratio, verdict)


def _append_markdown(args, results, median, step_ms, peak, ratio, verdict) -> None:
    cmd = "python benchmarks/overhead.py " + " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k not in ("worker", "write") and v is not None
    )
    lines = [
        "",
        f"## Training-loop overhead ({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `{cmd} --write {args.write}`",
        f"Machine: {os.cpu_count()} CPU cores, torch threads as default, no GPU.",
        "",
        "| side | runs (s) | median (s) | median step (ms) | peak RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for side, label in (("lightning", "gan-lightning DCGAN"), ("plain", "hand-written loop")):
        runs = ", ".join(f"{r['seconds']:.2f}" for r in results[side])
        lines.append(
            f"| {label} | {runs} | {median[side]:.2f} | {step_ms[side]:.2f} | {peak[side]:.0f} |"
        )
    lines += [
        "",
        f"Time ratio: **{ratio:.3f}** ({verdict} the target of 1.03); steady-state step ratio "
        f"{step_ms['lightning'] / step_ms['plain']:.3f}. "
        f"{args.steps} generator steps, batch {args.batch_size}, seed {args.seed}; "
        "runs alternate in ABBA order, each in a fresh process.",
        "",
    ]
    with args.write.open("a") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
