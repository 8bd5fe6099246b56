"""Hostile input through the command line: one line naming problem and fix, no training, no writes.

Every case runs ``gan-lightning`` (``main``) in-process and checks that it exits with status 2
and exactly one ``gan-lightning: error:`` line, no traceback, that the message contains the
expected words, that no training step ran, and that no file in the run's folder was created
or changed. The cases already covered in ``test_cli.py`` (unknown torchvision dataset, image
size that is not a power of two, latent_dim 0, a dataset smaller than one step, n_critic 0,
``sample`` into a non-empty folder or from a truncated checkpoint) are not repeated here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from gan_lightning.cli import main
from gan_lightning.models.base import GANModule

ROOT = Path(__file__).resolve().parents[2]
RING = str(ROOT / "configs" / "wgan_gp_ring.yaml")
DIGITS = str(ROOT / "configs" / "dcgan_digits.yaml")
GAN_RING = str(ROOT / "configs" / "gan_ring.yaml")
PACGAN_RING = str(ROOT / "configs" / "pacgan_ring.yaml")
SMALL_RING = [
    "--model.init_args.generator.init_args.hidden_dims=[16]",
    "--model.init_args.discriminator.init_args.hidden_dims=[16]",
    "--data.init_args.batch_size=32",
    "--model.init_args.n_critic=1",
    "--trainer.callbacks=null",
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
]
TINY_DIGITS = [
    "--model.init_args.generator.init_args.image_size=16",
    "--model.init_args.generator.init_args.base_channels=8",
    "--model.init_args.discriminator.init_args.image_size=16",
    "--model.init_args.discriminator.init_args.base_channels=8",
    "--trainer.callbacks=null",
    "--trainer.enable_progress_bar=false",
]


def run_dirs(path: Path) -> list[str]:
    return [f"--trainer.default_root_dir={path}", f"--trainer.logger.init_args.save_dir={path}"]


@pytest.fixture(scope="module")
def ring_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of one WGAN-GP step on the ring, written by ``gan-lightning fit``."""
    out = tmp_path_factory.mktemp("ring_run")
    checkpoint = "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint"
    checkpoint_every_step = "--trainer.callbacks.every_n_train_steps=1"
    steps = [checkpoint, checkpoint_every_step, "--trainer.max_steps=1"]
    main(["fit", "--config", RING, *SMALL_RING, *run_dirs(out), *steps])
    return next(out.rglob("*.ckpt"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with a hash of its content."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_images(folder: Path, n: int, corrupt: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"{i}.png"
        if corrupt:
            path.write_text("this is not a PNG file")
        else:
            Image.new("L", (16, 16), color=i * 10).save(path)


def make_truncated_checkpoint(tmp: Path, ckpt: Path) -> str:
    data = ckpt.read_bytes()
    (tmp / "half.ckpt").write_bytes(data[: len(data) // 2])
    return str(tmp / "half.ckpt")


def make_non_checkpoint(tmp: Path, ckpt: Path) -> str:
    torch.save({"weights": torch.zeros(3)}, tmp / "other.pt")
    return str(tmp / "other.pt")


def make_python_checkpoint(tmp: Path, ckpt: Path) -> None:
    """A checkpoint as ``trainer.save_checkpoint`` writes it from Python: no network config."""
    from gan_lightning.models import GAN
    from gan_lightning.networks import MLPDiscriminator, MLPGenerator

    model = GAN(MLPGenerator(latent_dim=16, hidden_dims=[8]), MLPDiscriminator(hidden_dims=[8]))
    state = {"state_dict": model.state_dict(), "hyper_parameters": {"n_critic": 1}}
    torch.save(state | {"pytorch-lightning_version": "2.6.6"}, tmp / "python.ckpt")


def make_existing_run(tmp: Path) -> None:
    (tmp / "tensorboard" / "version_0").mkdir(parents=True)
    (tmp / "tensorboard" / "version_0" / "config.yaml").write_text("seed_everything: 1\n")


# id: (command-line arguments after the run folders, preparation, expected words). In the
# arguments "{tmp}" is the test's run folder and "{ckpt}" the module's ring checkpoint.
FIT_CASES: dict[str, tuple[list[str], Callable | None, list[str]]] = {
    "malformed_yaml": (
        ["--config", "{tmp}/bad.yaml"],
        lambda tmp, ckpt: (tmp / "bad.yaml").write_text("model:\n  class_path: [oops\n"),
        ["Problems parsing config", "bad.yaml", "line 2"],
    ),
    "missing_config_file": (
        ["--config", "{tmp}/none.yaml"],
        None,
        ["File does not exist", "none.yaml"],
    ),
    "unknown_class_path": (
        ["--config", RING, "--model=gan_lightning.models.NoSuchGAN"],
        None,
        ["gan_lightning.models.NoSuchGAN", "has no attribute 'NoSuchGAN'"],
    ),
    "fid_on_points": (
        ["--config", RING, "--trainer.callbacks+=gan_lightning.callbacks.FID"],
        None,
        ["FID measures images", "(2,)", "ModeCoverage"],
    ),
    "trainer_gradient_clipping": (
        ["--config", RING, "--trainer.gradient_clip_val=1.0"],
        None,
        ["gradient_clip_val", "grad_clip_g / grad_clip_d"],
    ),
    "trainer_gradient_accumulation": (
        ["--config", RING, "--trainer.accumulate_grad_batches=2"],
        None,
        ["accumulate_grad_batches", "batch_size"],
    ),
    "misspelled_option": (
        ["--config", RING, "--model.init_args.n_critc=2"],
        None,
        ["Option 'n_critc' is not accepted"],
    ),
    "wrong_type": (
        ["--config", RING, "--model.init_args.n_critic=five"],
        None,
        ['Parser key "n_critic"', "Expected a <class 'int'>", "five"],
    ),
    "value_outside_a_choice": (
        ["--config", RING, "--trainer.precision=17"],
        None,
        ['Parser key "trainer.precision"', "bf16-mixed", "Given value: 17"],
    ),
    "unknown_nan_policy": (
        ["--config", RING, "--model.init_args.nan_policy=explode"],
        None,
        ["nan_policy", "explode"],
    ),
    "impossible_shapes": (
        ["--config", DIGITS, *TINY_DIGITS, "--data.init_args.image_size=32"],
        None,
        ["the generator makes samples of shape (1, 16, 16) but the data has shape (1, 32, 32)"],
    ),
    "negative_option": (
        ["--config", RING, *SMALL_RING, "--model.init_args.gp_weight=-1"],
        None,
        ["model.gp_weight must be >= 0, got -1.0"],
    ),
    "max_steps_zero": (
        ["--config", RING, *SMALL_RING, "--trainer.max_steps=0"],
        None,
        ["trainer.max_steps=0 allows no training step", "at least 1"],
    ),
    "max_epochs_zero": (
        ["--config", RING, *SMALL_RING, "--trainer.max_steps=-1", "--trainer.max_epochs=0"],
        None,
        ["trainer.max_epochs=0 allows no training step"],
    ),
    "invalid_device_count": (
        ["--config", RING, *SMALL_RING, "--trainer.devices=0"],
        None,
        ["trainer: ", "Trainer(devices='0')", "Check the trainer options"],
    ),
    "output_folder_is_a_file": (
        ["--config", RING, *SMALL_RING, "--trainer.default_root_dir={tmp}/file.txt/run"],
        lambda tmp, ckpt: (tmp / "file.txt").write_text("keep"),
        ["trainer.default_root_dir", "file.txt is a file, not a folder"],
    ),
    "run_folder_already_holds_a_run": (
        ["--config", RING, *SMALL_RING, "--trainer.logger.init_args.version=0"],
        lambda tmp, ckpt: make_existing_run(tmp),
        ["already holds a run (config.yaml exists)", "Choose a new folder"],
    ),
    "resume_from_missing_checkpoint": (
        ["--config", RING, *SMALL_RING, "--ckpt_path={tmp}/missing.ckpt"],
        None,
        ["--ckpt_path", "missing.ckpt does not exist"],
    ),
    "resume_from_truncated_checkpoint": (
        ["--config", RING, *SMALL_RING, "--ckpt_path={tmp}/half.ckpt"],
        make_truncated_checkpoint,
        ["half.ckpt cannot be read", "truncated or not a checkpoint"],
    ),
    "resume_from_a_file_that_is_no_checkpoint": (
        ["--config", RING, *SMALL_RING, "--ckpt_path={tmp}/other.pt"],
        make_non_checkpoint,
        ["other.pt is a torch file but not a Lightning checkpoint"],
    ),
    "resume_with_another_variant": (
        ["--config", GAN_RING, *SMALL_RING, "--ckpt_path={ckpt}"],
        None,
        ["was written by gan_lightning.models.WassersteinGANGP", "builds gan_lightning.models.GAN"],
    ),
    "resume_with_another_architecture": (
        ["--config", RING, *SMALL_RING]
        + ["--model.init_args.discriminator.init_args.hidden_dims=[8]", "--ckpt_path={ckpt}"],
        None,
        ["written with other networks", "discriminator.hidden_dims: checkpoint [16], config [8]"],
    ),
    "resume_from_a_python_checkpoint_of_other_networks": (
        ["--config", GAN_RING, *SMALL_RING, "--ckpt_path={tmp}/python.ckpt"],
        make_python_checkpoint,
        ["does not fit the configured networks", "generator.body.0.weight: checkpoint (8, 16)"],
    ),
    "image_folder_without_images": (
        ["--config", DIGITS, *TINY_DIGITS, "--data=gan_lightning.data.ImageFolderDataModule"]
        + ["--data.root={tmp}/images", "--data.image_size=16", "--data.channels=1"],
        lambda tmp, ckpt: [
            (tmp / "images").mkdir(),
            (tmp / "images" / "notes.txt").write_text("no images"),
        ],
        ["found no image files", "Accepted extensions"],
    ),
    "image_folder_with_unreadable_images": (
        ["--config", DIGITS, *TINY_DIGITS, "--data=gan_lightning.data.ImageFolderDataModule"]
        + ["--data.root={tmp}/images", "--data.image_size=16", "--data.channels=1"]
        + ["--data.batch_size=2"],
        lambda tmp, ckpt: write_images(tmp / "images", 4, corrupt=True),
        ["cannot be read", "corrupt or not images", "Remove them"],
    ),
    "image_folder_missing": (
        ["--config", DIGITS, *TINY_DIGITS, "--data=gan_lightning.data.ImageFolderDataModule"]
        + ["--data.root={tmp}/nowhere", "--data.image_size=16", "--data.channels=1"],
        None,
        ["nowhere does not exist", "data.init_args.root"],
    ),
    "pack_not_dividing_the_batch": (
        ["--config", PACGAN_RING, *SMALL_RING, "--data.init_args.batch_size=33"],
        None,
        ["model.pack=2", "batch_size=33 is not divisible", "multiple of 2"],
    ),
}


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if any training step starts."""

    def training_step(self, batch, batch_idx):
        raise AssertionError("a training step ran")

    monkeypatch.setattr(GANModule, "training_step", training_step)


def expect_one_error_line(capsys, exit_info, expected: list[str], status: int = 2) -> str:
    err = capsys.readouterr().err
    assert exit_info.value.code == status
    assert err.count("gan-lightning: error:") == 1 and "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("gan-lightning: error:"))
    for words in expected:
        assert words in line, line
    return line


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_rejects_bad_input_with_one_line_before_training(
    case, tmp_path, capsys, no_training, ring_checkpoint
):
    args, prepare, expected = FIT_CASES[case]
    if prepare is not None:
        prepare(tmp_path, ring_checkpoint)
    before = snapshot(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{ckpt}", str(ring_checkpoint)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args[:2], *run_dirs(tmp_path), *args[2:]])
    expect_one_error_line(capsys, exit_info, expected)
    after = snapshot(tmp_path)
    assert {name: after.get(name) for name in before} == before  # nothing changed or removed
    # Lightning opens the loggers (and the CLI saves the config) before the setup hooks run,
    # so checks in setup leave at most those files in a new run folder, never a checkpoint.
    new = {Path(name).name.split(".")[0] for name in set(after) - set(before)}
    assert new <= {"events", "config", "hparams"}, new


def test_output_folder_without_write_permission(tmp_path, capsys, no_training, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root ignores permission bits: report the folder as locked
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode)
        )
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", RING, *SMALL_RING, *run_dirs(locked / "run")])
        expect_one_error_line(capsys, exit_info, ["no write permission in", str(locked)])
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_unknown_subcommand_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fitt", "--config", RING])
    expect_one_error_line(capsys, exit_info, ["invalid choice: 'fitt'", "gan-lightning --help"])


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--num_samples", "0"], "--num_samples and --batch_size must be at least 1"),
        (["--ckpt_path", "{tmp}/missing.ckpt"], "missing.ckpt does not exist"),
        (["--ckpt_path", "{tmp}/other.pt"], "cannot load checkpoint"),
        (["--output_dir", "{tmp}/other.pt"], "is a file, not a folder"),
        (["--device", "gpu:7"], "is not a device"),
    ],
    ids=[
        "zero_samples",
        "missing_checkpoint",
        "not_a_gan_checkpoint",
        "output_is_a_file",
        "unknown_device",
    ],
)
def test_sample_rejects_bad_input_with_one_line(
    tmp_path, capsys, ring_checkpoint, options, expected
):
    make_non_checkpoint(tmp_path, ring_checkpoint)
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    if "--ckpt_path" not in options:
        options += ["--ckpt_path", str(ring_checkpoint)]
    if "--output_dir" not in options:
        options += ["--output_dir", str(tmp_path / "out")]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", *options])
    expect_one_error_line(capsys, exit_info, [expected])
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
