import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_lightning.errors import ConfigurationError
from gan_lightning.networks.resnet import ResNetDiscriminator, ResNetGenerator


def largest_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2).item()


@pytest.mark.parametrize("image_size", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_follow_the_image(image_size, channels):
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=6, image_size=image_size, channels=channels, base_channels=8)
    d = ResNetDiscriminator(image_size=image_size, channels=channels, base_channels=4)
    assert g.latent_dim == 6
    assert g.image_shape == (channels, image_size, image_size)
    x = g(torch.randn(3, 6))
    assert x.shape == (3, channels, image_size, image_size)
    assert x.abs().max() <= 1
    assert d.features(x).shape == (3, 4)
    assert d(x).shape == (3,)


def test_logits_are_the_linear_layer_applied_to_the_features():
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=16, channels=3, base_channels=4).eval()
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(d(x), d.classifier(d.features(x)).squeeze(1))
    # Sum pooling after a ReLU: the features are non-negative.
    assert (d.features(x) >= 0).all()


def test_paper_layout_at_32_pixels():
    # Generator: three up blocks from 4x4. Discriminator: optimized block to 16x16, a down
    # block to 8x8, two blocks at 8x8 (Miyato et al., CIFAR-10 ResNet).
    g = ResNetGenerator(latent_dim=4, image_size=32, base_channels=8)
    d = ResNetDiscriminator(image_size=32, base_channels=8)
    assert len(g.blocks) == 3
    assert len(d.blocks) == 4
    assert d.blocks(torch.randn(2, 3, 32, 32)).shape == (2, 8, 8, 8)
    assert [block.downsample for block in d.blocks[1:]] == [True, False, False]


def test_spectral_norm_makes_every_weight_have_unit_spectral_norm():
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=16, channels=3, base_channels=8).train()
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)

    # Each training-mode forward pass runs one power iteration per weight.
    for _ in range(10):
        d(torch.randn(2, 3, 16, 16))
    d.eval()
    with torch.no_grad():
        for layer in layers:
            assert largest_singular_value(layer.weight) == pytest.approx(1.0, abs=1e-2)


def test_without_spectral_norm_weights_are_plain():
    torch.manual_seed(0)
    d = ResNetDiscriminator(image_size=16, channels=3, base_channels=8, spectral_norm=False)
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert not any(parametrize.is_parametrized(m, "weight") for m in layers)
    sigmas = [largest_singular_value(m.weight.detach()) for m in layers]
    assert max(abs(s - 1) for s in sigmas) > 0.1


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    g = ResNetGenerator(latent_dim=4, image_size=16, channels=1, base_channels=4)
    d = ResNetDiscriminator(image_size=16, channels=1, base_channels=4)
    d(g(torch.randn(3, 4))).sum().backward()
    for net in (g, d):
        for name, param in net.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("image_size", [0, 8, 48, 100, 512])
def test_sizes_the_networks_cannot_handle_are_rejected(image_size):
    with pytest.raises(ConfigurationError, match=f"power of two from 16 to 256.*got {image_size}"):
        ResNetGenerator(image_size=image_size)
    with pytest.raises(ConfigurationError, match=f"discriminator.image_size.*got {image_size}"):
        ResNetDiscriminator(image_size=image_size)


def test_bad_channel_and_latent_sizes_are_rejected():
    with pytest.raises(ConfigurationError, match="generator.channels must be at least 1, got 0"):
        ResNetGenerator(channels=0)
    with pytest.raises(ConfigurationError, match="discriminator.channels.*got 0"):
        ResNetDiscriminator(channels=0)
    with pytest.raises(ConfigurationError, match="generator.latent_dim.*got 0"):
        ResNetGenerator(latent_dim=0)
