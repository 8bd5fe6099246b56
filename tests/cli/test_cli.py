"""The gan-lightning command: the main job end to end, sampling, DDP, W&B and bad input."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gan_lightning.cli import main
from gan_lightning.images import to_uint8
from gan_lightning.sampling import load_generator_module

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "dcgan_digits.yaml")
# Small networks and 16x16 digits keep each run to seconds on two CPU cores.
TINY = [
    "--model.init_args.generator.init_args.image_size=16",
    "--model.init_args.generator.init_args.base_channels=8",
    "--model.init_args.discriminator.init_args.image_size=16",
    "--model.init_args.discriminator.init_args.base_channels=8",
    "--data.init_args.image_size=16",
]


def run_dirs(tmp_path: Path) -> list[str]:
    return [
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory, fid_weights_path):
    """``fit`` for two full epochs of digits with every callback of the main config."""
    tmp_path = tmp_path_factory.mktemp("fit")
    # The main config's callbacks, evaluated more often and on fewer images.
    config = yaml.safe_load(Path(CONFIG).read_text())
    checkpoint, grid, fid = config["trainer"]["callbacks"]
    checkpoint["init_args"]["every_n_train_steps"] = 25
    grid["init_args"]["every_n_steps"] = 25
    fid["init_args"].update(num_real=40, num_fake=40, weights_path=str(fid_weights_path))
    small = tmp_path / "config.yaml"
    small.write_text(yaml.safe_dump(config))
    main(
        ["fit", "--config", str(small), *TINY, *run_dirs(tmp_path)]
        + [
            "--trainer.max_steps=-1",
            "--trainer.max_epochs=2",
            "--trainer.val_check_interval=null",
            "--trainer.check_val_every_n_epoch=2",
            "--trainer.enable_progress_bar=false",
        ]
    )
    return tmp_path / "tensorboard" / "version_0"


def test_two_epoch_run_writes_checkpoints_logs_grids_and_fid(two_epoch_run):
    # 1,617 training digits at 64 per step (drop_last) make 25 steps per epoch.
    checkpoints = sorted(p.name for p in (two_epoch_run / "checkpoints").iterdir())
    assert checkpoints == ["last.ckpt", "step=000025.ckpt", "step=000050.ckpt"]
    assert torch.load(two_epoch_run / "checkpoints" / "last.ckpt")["global_step"] == 50
    grids = sorted(p.name for p in (two_epoch_run / "samples").iterdir())
    assert grids == ["step_000025.png", "step_000050.png"]
    assert (two_epoch_run / "config.yaml").is_file()

    events = EventAccumulator(str(two_epoch_run)).Reload()
    fid = events.Scalars("val/fid")
    assert [e.step for e in fid] == [50] and np.isfinite(fid[0].value) and fid[0].value > 0
    assert {"train/loss_d", "train/loss_g", "train/d_real"} <= set(events.Tags()["scalars"])
    assert "samples" in events.Tags()["images"]


def test_sample_writes_the_generators_images(two_epoch_run, tmp_path):
    ckpt = two_epoch_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "samples"
    main(["sample", "--ckpt_path", str(ckpt), "--output_dir", str(out), "--num_samples", "5"])
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"{i:06d}.png" for i in range(5)]

    module = load_generator_module(ckpt, torch.device("cpu"))
    z = module.sample_latent(5, generator=torch.Generator().manual_seed(0))
    expected = to_uint8(module.generate(z))[:, 0].numpy()
    written = np.stack([np.asarray(Image.open(p)) for p in files])
    np.testing.assert_array_equal(written, expected)


def test_sample_refuses_to_overwrite(two_epoch_run, tmp_path, capsys):
    (tmp_path / "keep.png").write_bytes(b"precious")
    ckpt = str(two_epoch_run / "checkpoints" / "last.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "--ckpt_path", ckpt, "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.png").read_bytes() == b"precious"


def test_sample_names_a_truncated_checkpoint(two_epoch_run, tmp_path, capsys):
    data = (two_epoch_run / "checkpoints" / "last.ckpt").read_bytes()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SystemExit):
        main(["sample", "--ckpt_path", str(bad), "--output_dir", str(tmp_path / "out")])
    assert f"cannot load checkpoint {bad}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["--data=gan_lightning.data.TorchvisionDataModule", "--data.name=imagenet"],
            "imagenet",
        ),
        (["--model.init_args.generator.init_args.image_size=48"], "power of two"),
        (["--model.init_args.generator.init_args.latent_dim=0"], "latent_dim must be at least 1"),
        (["--data.init_args.batch_size=5000"], "fewer than one training step needs"),
        (["--model.init_args.n_critic=0"], "n_critic must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_clear_error_before_training(
    tmp_path, capsys, monkeypatch, fid_weights_path, overrides, message
):
    monkeypatch.setenv("GAN_LIGHTNING_FID_WEIGHTS", str(fid_weights_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, *TINY, *run_dirs(tmp_path), *overrides])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.ckpt"))


def test_ddp_on_two_cpu_processes_keeps_ranks_identical(tmp_path):
    """``--trainer.strategy ddp`` with 2 processes (gloo): no unused-parameter crash."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    args = [sys.executable, "-m", "gan_lightning.cli", "fit", "--config", CONFIG, *TINY]
    args += [
        "--trainer.callbacks=null",
        "--trainer.callbacks+=ddp_probe.SaveRankParameters",
        f"--trainer.callbacks.out_dir={tmp_path}",
        "--trainer.max_steps=3",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--trainer.limit_val_batches=0",
        "--model.init_args.n_critic=2",
        "--data.init_args.batch_size=8",
    ]
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrapping generator and discriminator separately" in done.stderr + done.stdout
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert len(ranks[0]["history"]) == len(ranks[1]["history"]) == 3
    for step0, step1 in zip(ranks[0]["history"], ranks[1]["history"], strict=True):
        for name in step0:
            assert torch.equal(step0[name], step1[name]), name
    first, last = ranks[0]["history"][0], ranks[0]["history"][-1]
    assert not torch.equal(first["generator.net.0.weight"], last["generator.net.0.weight"])
    assert not torch.equal(first["discriminator.net.0.weight"], last["discriminator.net.0.weight"])


def test_wandb_logger_works_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    main(
        ["fit", "--config", CONFIG, *TINY, f"--trainer.default_root_dir={tmp_path}"]
        + [
            "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.logger.init_args.offline=true",
            "--trainer.logger.init_args.project=gan-lightning-test",
            "--trainer.callbacks=null",
            "--trainer.callbacks+=gan_lightning.callbacks.SampleGrid",
            "--trainer.callbacks.every_n_steps=2",
            "--trainer.callbacks.num_samples=4",
            "--trainer.max_steps=2",
            "--trainer.log_every_n_steps=1",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
        ]
    )
    import wandb

    wandb.finish()
    runs = list(tmp_path.rglob("offline-run-*"))
    assert len(runs) == 1
    # wandb.finish() can return before W&B's service has written the run file: wait for it.
    for _ in range(100):
        records = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
        if b"train/loss_g" in records and b"samples" in records:
            break
        time.sleep(0.1)
    assert b"train/loss_g" in records and b"samples" in records
    assert list(runs[0].rglob("media/images/samples_*.png"))


@pytest.mark.parametrize("strategy", ["ddp", "lightning.pytorch.strategies.DDPStrategy", "gan_ddp"])
def test_stock_ddp_by_name_or_class_becomes_the_gan_strategy(strategy, tmp_path, monkeypatch):
    from gan_lightning.cli import GANLightningCLI
    from gan_lightning.strategies import GANDDPStrategy

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["gan-lightning"])
    cli = GANLightningCLI(
        args=["--config", CONFIG, *TINY, f"--trainer.strategy={strategy}",
              "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.logger=false"],
        run=False,
    )  # fmt: skip
    assert isinstance(cli.trainer.strategy, GANDDPStrategy)
