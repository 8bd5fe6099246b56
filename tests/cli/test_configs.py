"""Every shipped config runs through the command line (Lightning's fast_dev_run smoke test)."""

import sys
from pathlib import Path

import pytest
import yaml

from gan_lightning.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_every_variant_has_a_digits_config():
    names = {path.stem for path in CONFIGS}
    for variant in ("gan", "dcgan", "lsgan", "wgan", "wgan_gp", "sngan", "sngan_dcgan"):
        assert f"{variant}_digits" in names
    for variant in ("gan", "wgan_gp", "sngan", "pacgan"):
        assert {f"{variant}_ring", f"{variant}_grid"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_runs_with_fast_dev_run(config, tmp_path, monkeypatch, fid_weights_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAN_LIGHTNING_FID_WEIGHTS", str(fid_weights_path))
    monkeypatch.setattr(sys, "argv", ["gan-lightning"])
    main(["fit", "--config", str(config), "--trainer.fast_dev_run", "true"])

    # The config names its run folder after itself, so runs of different configs never mix.
    assert (
        yaml.safe_load(config.read_text())["trainer"]["default_root_dir"] == f"runs/{config.stem}"
    )
