"""Mixed precision through the loop: penalties, the loss scaler and every variant.

On CPU, ``16-mixed`` runs with a real ``torch.amp.GradScaler("cpu")`` through Lightning's
``MixedPrecision`` plugin, so gradients arrive scaled exactly as on a GPU; ``bf16-mixed``
needs no scaler. The CUDA test runs wherever a GPU is present and skips cleanly otherwise.
"""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision
from tiny_gans import (
    VARIANTS,
    LinearCritic,
    Recorder,
    data_for,
    fit,
    frozen_sgd,
    mlp_pair,
    ring,
)

from gan_lightning.models import (
    WassersteinGANGP,
)
from gan_lightning.networks import (
    MLPGenerator,
)


def scaled_fp16(init_scale: float = 2.0**10, growth_interval: int = 2000) -> MixedPrecision:
    """16-mixed on CPU with a real loss scaler, as on a GPU."""
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=growth_interval)
    return MixedPrecision("16-mixed", "cpu", scaler=scaler)


def precision_options(precision: str) -> dict:
    if precision == "16-mixed+scaler":
        return {"plugins": [scaled_fp16()]}
    return {"precision": precision}


@pytest.mark.parametrize("precision", ["16-mixed+scaler", "bf16-mixed"])
def test_penalties_of_the_linear_critic_are_unscaled_under_mixed_precision(tmp_path, precision):
    # GP = 10 (5 - 1)^2 = 160 and R1 = gamma / 2 * 25 = 25, whatever the loss scale (2^10).
    recorder = Recorder()
    generator = MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[8])
    model = WassersteinGANGP(
        generator, LinearCritic(), optimizer_d=frozen_sgd, n_critic=2, r1_gamma=2.0
    )
    fit(model, ring(), 3, tmp_path, callbacks=[recorder], **precision_options(precision))
    assert [m["train/gp"] for m in recorder.metrics] == pytest.approx([160.0] * 3, rel=1e-3)
    assert [m["train/r1"] for m in recorder.metrics] == pytest.approx([25.0] * 3, rel=1e-3)


class ScalerCalls(Callback):
    """Counts the scaler's unscale_/update calls and records its scale after every step."""

    def __init__(self) -> None:
        self.calls = {"unscale_": 0, "update": 0}
        self.scales: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        scaler = trainer.precision_plugin.scaler
        for name in self.calls:
            original = getattr(scaler, name)

            def counted(*args, _name=name, _original=original, **kwargs):
                self.calls[_name] += 1
                return _original(*args, **kwargs)

            setattr(scaler, name, counted)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.scales.append(trainer.precision_plugin.scaler.get_scale())


def test_the_scaler_unscales_and_updates_once_per_optimizer_step(tmp_path):
    # growth_interval=1 doubles the scale after every update without overflow: 3 steps of
    # n_critic=2 make 3 x (2 + 1) = 9 optimizer steps, so 2^4 -> 2^7 -> 2^10 -> 2^13.
    calls = ScalerCalls()
    model = WassersteinGANGP(*mlp_pair(), n_critic=2)
    plugin = scaled_fp16(init_scale=2.0**4, growth_interval=1)
    trainer = fit(model, ring(), 3, tmp_path, callbacks=[calls], plugins=[plugin])
    assert calls.calls == {"unscale_": 9, "update": 9}
    assert calls.scales == [2.0**7, 2.0**10, 2.0**13]
    assert trainer.global_step == 3


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_trains_under_bf16_mixed(tmp_path, name):
    torch.manual_seed(0)
    model = VARIANTS[name]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = Recorder()
    fit(model, data_for(name), 3, tmp_path, callbacks=[recorder], precision="bf16-mixed")

    for key in ("train/loss_d", "train/loss_g"):
        assert all(math.isfinite(m[key]) for m in recorder.metrics), key
    assert all(
        torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()
    )
    # Weights stay float32 (autocast only lowers the compute) and both networks moved.
    for network in (model.generator, model.discriminator):
        weight_name, weight = next((k, p) for k, p in network.named_parameters() if "weight" in k)
        assert weight.dtype == torch.float32
        prefix = "generator." if network is model.generator else "discriminator."
        assert not torch.equal(before[prefix + weight_name], weight.detach()), prefix


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="16-mixed with a CUDA GradScaler")
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_trains_under_16_mixed_on_cuda(tmp_path, name):
    torch.manual_seed(0)
    model = VARIANTS[name]()
    recorder = Recorder()
    options = {"accelerator": "cuda", "precision": "16-mixed"}
    fit(model, data_for(name), 20, tmp_path, callbacks=[recorder], **options)
    for key in ("train/loss_d", "train/loss_g"):
        assert all(math.isfinite(m[key]) for m in recorder.metrics), key
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="16-mixed with a CUDA GradScaler")
def test_gradient_penalty_is_160_under_16_mixed_on_cuda(tmp_path):
    recorder = Recorder()
    generator = MLPGenerator(latent_dim=4, output_shape=[2], hidden_dims=[8])
    model = WassersteinGANGP(generator, LinearCritic(), optimizer_d=frozen_sgd, n_critic=2)
    fit(model, ring(), 3, tmp_path, callbacks=[recorder], accelerator="cuda", precision="16-mixed")
    assert [m["train/gp"] for m in recorder.metrics] == pytest.approx([160.0] * 3, rel=1e-3)
