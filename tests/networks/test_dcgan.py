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
