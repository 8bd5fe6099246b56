"""Multi-process training: two torchrun "nodes" of one CPU process each (gloo, 127.0.0.1).

One process group run (``ddp_worker.py``) trains every variant and option for a few steps;
the tests below read what each rank recorded after every step.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.strategies import GANDDPStrategy

WORKER = Path(__file__).with_name("ddp_worker.py")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_gans import VARIANTS  # noqa: E402

# "cli": the documented multi-node command, gan-lightning fit --trainer.num_nodes 2 ...
RUNS = [*VARIANTS, "cli"]


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Run the worker as two nodes (``--nnodes 2 --node_rank 0/1``) and load both records."""
    out_dir = tmp_path_factory.mktemp("ddp")
    port = free_local_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2"]
    command += ["--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port)]
    nodes = [
        subprocess.Popen(
            [*command, "--node_rank", str(rank), str(WORKER), str(out_dir)],
            env=env,
            cwd=out_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    records = [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return [record | {"dir": out_dir} for record in records]


def test_two_torchrun_nodes_complete_with_identical_weights(ranks):
    first, second = ranks
    assert first["cli"]["strategy"] == "GANDDPStrategy"
    for name in RUNS:
        assert (first[name]["world_size"], second[name]["world_size"]) == (2, 2)
        assert (first[name]["node_rank"], second[name]["node_rank"]) == (0, 1)
        final0, final1 = first[name]["history"][-1], second[name]["history"][-1]
        assert final0.keys() == final1.keys()
        for key in final0:
            assert torch.equal(final0[key], final1[key]), f"{name}: {key}"


@pytest.mark.parametrize("name", RUNS)
def test_parameters_and_buffers_are_identical_on_both_ranks_after_every_step(ranks, name):
    # The ranks built their networks from different seeds and draw different latents.
    history0, history1 = ranks[0][name]["history"], ranks[1][name]["history"]
    assert len(history0) == len(history1) == 3
    for step, (state0, state1) in enumerate(zip(history0, history1, strict=True), start=1):
        for key in state0:
            assert torch.equal(state0[key], state1[key]), f"step {step}: {key}"
    # Training happened: every network's first weight moved between step 1 and step 3.
    for network in ("generator.", "discriminator."):
        key = next(k for k in history0[0] if k.startswith(network) and ".weight" in k)
        assert not torch.equal(history0[0][key], history0[-1][key]), key


@pytest.mark.parametrize(
    ("name", "buffer"),
    [
        ("gan_r1_ema", "generator.body.1.running_mean"),  # BatchNorm1d in the generator
        ("gan_r1_ema", "generator_ema.module.body.1.running_mean"),  # the EMA copy's stats
        ("dcgan_diff_augment", "discriminator.net.3.running_var"),  # BatchNorm2d, real/fake
        ("sngan", "discriminator.head.0.parametrizations.weight.0._v"),  # power iteration
    ],
)
def test_buffers_that_change_every_step_stay_identical(ranks, name, buffer):
    values0 = [state[buffer] for state in ranks[0][name]["history"]]
    values1 = [state[buffer] for state in ranks[1][name]["history"]]
    assert all(torch.equal(a, b) for a, b in zip(values0, values1, strict=True))
    assert not torch.equal(values0[0], values0[1]) and not torch.equal(values0[1], values0[2])


@pytest.mark.parametrize("name", RUNS)
def test_each_phase_all_reduces_only_the_network_it_updates(ranks, name):
    # Tiny networks fit in one gradient bucket: one all-reduce per backward through a wrapper.
    n_critic = ranks[0][name]["n_critic"]
    for rank in ranks:
        counts = rank[name]["counts_per_step"]
        assert [c["generator"] for c in counts] == [1, 2, 3]
        assert [c["discriminator"] for c in counts] == [n_critic, 2 * n_critic, 3 * n_critic]


def test_sample_grids_are_written_once_by_rank_zero(ranks):
    run = ranks[0]["dir"] / "dcgan_diff_augment" / "version_0"
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_000002.png",
        "step_000003.png",
    ]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1


def test_sync_batchnorm_on_cpu_is_refused_before_training():
    from lightning.pytorch.plugins import TorchSyncBatchNorm

    strategy = GANDDPStrategy(parallel_devices=[torch.device("cpu")])
    strategy._layer_sync = TorchSyncBatchNorm()
    with pytest.raises(ConfigurationError, match="sync_batchnorm=true needs GPUs"):
        strategy._check_layer_sync()
