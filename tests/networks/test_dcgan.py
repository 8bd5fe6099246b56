import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.networks import DCGANDiscriminator, DCGANGenerator


@pytest.mark.parametrize("image_size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_follow_the_image(image_size, channels):
    g = DCGANGenerator(latent_dim=5, image_size=image_size, channels=channels, base_channels=4)
    d = DCGANDiscriminator(image_size=image_size, channels=channels, base_channels=4)
    x = g(torch.randn(3, 5))
    assert x.shape == (3, channels, image_size, image_size)
    assert x.abs().max() <= 1
    assert d(x).shape == (3,)


@pytest.mark.parametrize("image_size", [0, 4, 48, 100, 2048])
def test_sizes_the_network_cannot_produce_are_rejected(image_size):
    with pytest.raises(ConfigurationError, match=f"power of two.*got {image_size}"):
        DCGANGenerator(image_size=image_size)
    with pytest.raises(ConfigurationError, match=f"got {image_size}"):
        DCGANDiscriminator(image_size=image_size)


def test_latent_size_zero_is_rejected():
    with pytest.raises(ConfigurationError, match="latent_dim must be at least 1, got 0"):
        DCGANGenerator(latent_dim=0)


def test_paper_initialisation():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_size=64, channels=3, base_channels=64)
    weights = torch.cat([m.weight.flatten() for m in d.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.mean().abs() < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)


DISCRIMINATOR_OPTIONS = [
    {},
    {"minibatch_std": True},
    {"minibatch_discrimination": 4},
    {"minibatch_std": True, "minibatch_discrimination": 4, "minibatch_kernel_dim": 3},
    {"spectral_norm": True},
    {"spectral_norm": True, "minibatch_std": True, "minibatch_discrimination": 4},
]


@pytest.mark.parametrize("options", DISCRIMINATOR_OPTIONS)
@pytest.mark.parametrize("image_size", [8, 16])
def test_discriminator_options_score_one_logit_per_image(options, image_size):
    d = DCGANDiscriminator(image_size=image_size, channels=3, base_channels=4, **options)
    x = torch.randn(4, 3, image_size, image_size)
    assert d(x).shape == (4,)
    width = 4 * image_size // 8  # channels of the last 4x4 map
    assert d.feature_shape == (width, 4, 4)
    assert d.features(x).shape == (4, width * 16)
    has_batch_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert has_batch_norm == (image_size > 8 and not options.get("spectral_norm", False))


def test_features_feed_the_final_convolution():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_size=16, base_channels=4).eval()
    x = torch.randn(3, 1, 16, 16)
    features = d.features(x).view(3, *d.feature_shape)
    torch.testing.assert_close(d.net[-1](features).flatten(), d(x))


def test_default_discriminator_keeps_its_layers_and_checkpoint_keys():
    d = DCGANDiscriminator(image_size=16, base_channels=4)
    assert list(d.state_dict()) == [
        "net.0.weight",
        "net.2.weight",
        "net.3.weight",
        "net.3.bias",
        "net.3.running_mean",
        "net.3.running_var",
        "net.3.num_batches_tracked",
        "net.5.weight",
    ]
    assert isinstance(d.net[-1], torch.nn.Conv2d) and d.net[-1].kernel_size == (4, 4)


@pytest.mark.parametrize("options", DISCRIMINATOR_OPTIONS[1:4])
def test_minibatch_options_make_a_score_depend_on_the_rest_of_the_batch(options):
    torch.manual_seed(0)
    x = torch.randn(4, 1, 8, 8)
    y = x.clone()
    y[1:] = torch.randn(3, 1, 8, 8)
    plain = DCGANDiscriminator(image_size=8, base_channels=4).eval()
    assert plain(x)[0] == plain(y)[0]
    d = DCGANDiscriminator(image_size=8, base_channels=4, **options).eval()
    assert d(x)[0] != d(y)[0]


def test_spectral_norm_bounds_every_convolution_and_linear_layer():
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_size=16, base_channels=4, spectral_norm=True)
    for _ in range(40):  # each training forward pass runs one power iteration
        d(torch.randn(4, 1, 16, 16))
    d.eval()
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 3
    for layer in layers:
        weight = layer.weight.reshape(layer.weight.shape[0], -1)
        assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=1e-2)


def test_bad_minibatch_options_are_rejected():
    with pytest.raises(ConfigurationError, match="minibatch_discrimination .* got -2"):
        DCGANDiscriminator(minibatch_discrimination=-2)
    with pytest.raises(ConfigurationError, match="minibatch_kernel_dim must be at least 1, got 0"):
        DCGANDiscriminator(minibatch_kernel_dim=0)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_discriminator_without_batch_norm_scores_each_sample_alone(norm):
    # A gradient penalty needs per-sample scores: in training mode BatchNorm mixes the batch.
    disc = DCGANDiscriminator(image_size=16, channels=1, base_channels=8, norm=norm).train()
    x = torch.randn(4, 1, 16, 16)
    y = torch.cat([x[:1], torch.randn(3, 1, 16, 16)])
    assert torch.allclose(disc(x)[0], disc(y)[0], atol=1e-6)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules())


def test_discriminator_with_batch_norm_mixes_the_batch_in_training():
    disc = DCGANDiscriminator(image_size=16, channels=1, base_channels=8).train()
    x = torch.randn(4, 1, 16, 16)
    y = torch.cat([x[:1], torch.randn(3, 1, 16, 16)])
    assert not torch.allclose(disc(x)[0], disc(y)[0], atol=1e-6)


def test_discriminator_rejects_an_unknown_norm():
    with pytest.raises(ConfigurationError, match="discriminator.norm must be"):
        DCGANDiscriminator(image_size=16, norm="instance")
