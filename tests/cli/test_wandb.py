"""Weights & Biases from the command line, offline: what a run records, and resuming it.

The offline run folders are read back record by record: a ``.wandb`` file is a LevelDB-style
log (32 KiB blocks of checksummed chunks) of ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from gan_lightning.checkpointing import wandb_run_id
from gan_lightning.cli import main

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "dcgan_digits.yaml")
TINY = [
    "--model.init_args.generator.init_args.image_size=16",
    "--model.init_args.generator.init_args.base_channels=8",
    "--model.init_args.discriminator.init_args.image_size=16",
    "--model.init_args.discriminator.init_args.base_channels=8",
    "--data.init_args.image_size=16",
]


def read_records(path: Path) -> list:
    """The protobuf records of an offline ``run-<id>.wandb`` file, in order."""
    # W&B's service may still be writing the file when finish() returns on a loaded machine.
    for _ in range(100):
        records = parse_records(path.read_bytes())
        if of_type(records, "exit"):
            return records
        time.sleep(0.1)
    return records


def parse_records(data: bytes) -> list:
    assert data[:4] == b":W&B"
    block, position, records, pending = 32768, 7, [], b""
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (kind == 0 and length == 0):  # block padding
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def of_type(records: list, kind: str) -> list:
    return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]


def history(records: list) -> list[dict]:
    return [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h.item}
        for h in of_type(records, "history")
    ]


def fit(tmp_path: Path, max_steps: int, *extra: str) -> None:
    main(
        ["fit", "--config", CONFIG, *TINY, f"--trainer.default_root_dir={tmp_path}"]
        + [
            "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.logger.init_args.project=gan-lightning-test",
            "--trainer.logger.init_args.log_model=all",
            "--trainer.callbacks=null",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.every_n_train_steps=2",
            "--trainer.callbacks.save_last=true",
            "--trainer.callbacks+=gan_lightning.callbacks.SampleGrid",
            "--trainer.callbacks.every_n_steps=2",
            "--trainer.callbacks.num_samples=4",
            f"--trainer.max_steps={max_steps}",
            "--trainer.log_every_n_steps=1",
            "--trainer.limit_val_batches=0",
            "--trainer.enable_progress_bar=false",
            *extra,
        ]
    )
    wandb.finish()  # as at the end of a process: the next fit must not reuse this run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two offline runs: ``fit`` to step 2, then ``fit --ckpt_path last.ckpt`` to step 4."""
    tmp_path = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as patch:
        # Offline, with every W&B folder inside the test's own.
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        for name in ("DIR", "CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
            patch.setenv(f"WANDB_{name}", str(tmp_path / name.lower()))
        fit(tmp_path, 2)
        (first,) = (tmp_path / "gan-lightning-test").iterdir()
        last = first / "checkpoints" / "last.ckpt"
        fit(tmp_path, 4, f"--ckpt_path={last}")
        wandb.teardown()  # the W&B service and settings were made with this test's environment
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    return {
        "folders": folders,
        "records": [read_records(next(f.glob("run-*.wandb"))) for f in folders],
        "checkpoint": last,
    }


def test_a_run_records_hyperparameters_losses_grids_and_checkpoints(runs):
    records = runs["records"][0]
    update = of_type(records, "config")[0].update
    config = {item.key: json.loads(item.value_json) for item in update}
    assert config["n_critic"] == 1 and config["loss"] == "non_saturating"
    assert config["generator"]["init_args"]["base_channels"] == 8  # the command-line override

    rows = history(records)
    losses = [row["trainer/global_step"] for row in rows if "train/loss_g" in row]
    assert len(losses) == 2 and losses[1] == losses[0] + 1 and losses[1] <= 2  # every step
    grids = [row for row in rows if "samples/_type" in row]
    assert [row["trainer/global_step"] for row in grids] == [2]  # one grid, not one per rank

    artifacts = of_type(records, "artifact")
    assert artifacts and {a.type for a in artifacts} == {"model"}
    assert all([c.path for c in a.manifest.contents] == ["model.ckpt"] for a in artifacts)


def test_a_resumed_fit_continues_the_same_run_and_step_axis(runs):
    first, second = (of_type(r, "run")[0].run_id for r in runs["records"])
    assert len(runs["folders"]) == 2
    assert first == second == wandb_run_id(runs["checkpoint"])

    # The step axis goes on from the checkpoint's step 2: steps 3 and 4 follow steps 1 and 2.
    before, after = (
        [row["trainer/global_step"] for row in history(r) if "train/loss_g" in row]
        for r in runs["records"]
    )
    assert after == [step + 2 for step in before]
    rows = history(runs["records"][1])
    assert [row["trainer/global_step"] for row in rows if "samples/_type" in row] == [4]


def test_an_explicit_run_id_is_kept(tmp_path, monkeypatch):
    """``continue_wandb_run`` leaves a configured id alone and fills in a missing one."""
    from jsonargparse import Namespace

    from gan_lightning.checkpointing import continue_wandb_run

    def fit_config(init_args: dict, ckpt: Path | None) -> Namespace:
        logger = Namespace(class_path="lightning.pytorch.loggers.WandbLogger")
        logger.init_args = Namespace(**init_args)
        return Namespace(ckpt_path=str(ckpt) if ckpt else None, trainer=Namespace(logger=logger))

    import torch

    ckpt = tmp_path / "a.ckpt"
    torch.save({"callbacks": {"ExactResume": {"wandb_run_id": "abc123"}}}, ckpt)
    config = fit_config({"id": None, "version": None}, ckpt)
    continue_wandb_run(config)
    assert config.trainer.logger.init_args.id == "abc123"
    config = fit_config({"id": "mine", "version": None}, ckpt)
    continue_wandb_run(config)
    assert config.trainer.logger.init_args.id == "mine"
    config = fit_config({"id": None, "version": None}, None)
    continue_wandb_run(config)
    assert config.trainer.logger.init_args.id is None
