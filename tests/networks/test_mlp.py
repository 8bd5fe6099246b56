import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.networks import MLPDiscriminator, MLPGenerator


def largest_singular_value(weight: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(weight.reshape(weight.shape[0], -1), ord=2).item()


@pytest.mark.parametrize("output_shape", [[2], [3, 4]])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_generator_shapes(output_shape, batch_norm):
    g = MLPGenerator(
        latent_dim=5, output_shape=output_shape, hidden_dims=[8, 6], batch_norm=batch_norm
    )
    z = torch.randn(4, 5)
    assert g.latent_dim == 5 and g.output_shape == tuple(output_shape)
    assert g(z).shape == (4, *output_shape)
    assert g.features(z).shape == (4, 6)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == batch_norm


def test_generator_output_activation():
    torch.manual_seed(0)
    z = torch.randn(64, 3) * 100
    assert MLPGenerator(latent_dim=3, hidden_dims=[8], output_activation="tanh")(z).abs().max() <= 1
    assert MLPGenerator(latent_dim=3, hidden_dims=[8])(z).abs().max() > 1


OPTIONS = [
    {},
    {"minibatch_std": True},
    {"minibatch_discrimination": 3},
    {"minibatch_std": True, "minibatch_discrimination": 3, "minibatch_kernel_dim": 2},
    {"spectral_norm": True},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_discriminator_scores_and_features(options):
    d = MLPDiscriminator(input_shape=[3, 2], hidden_dims=[8, 7], **options)
    x = torch.randn(4, 3, 2)
    logits = d(x)
    assert logits.shape == (4,)
    assert d.features(x).shape == (4, 7)
    torch.testing.assert_close(d.head(d.features(x)).flatten(), logits)


def test_minibatch_options_make_a_score_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    x = torch.randn(4, 2)
    y = x.clone()
    y[1:] = torch.randn(3, 2)
    plain = MLPDiscriminator(hidden_dims=[8])
    assert plain(x)[0] == plain(y)[0]
    for options in OPTIONS[1:4]:
        d = MLPDiscriminator(hidden_dims=[8], **options)
        assert d(x)[0] != d(y)[0]


def test_spectral_norm_makes_every_linear_layer_1_lipschitz():
    torch.manual_seed(0)
    d = MLPDiscriminator(hidden_dims=[16, 16], spectral_norm=True)
    for _ in range(30):  # each training forward pass runs one power iteration
        d(torch.randn(4, 2))
    d.eval()
    linears = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert largest_singular_value(layer.weight) == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MLPGenerator(latent_dim=0), "latent_dim must be at least 1, got 0"),
        (lambda: MLPGenerator(hidden_dims=[]), r"hidden_dims must be a non-empty.*got \[\]"),
        (lambda: MLPGenerator(output_shape=[2, 0]), r"output_shape .* got \[2, 0\]"),
        (lambda: MLPGenerator(output_activation="relu"), "'tanh' or 'linear', got 'relu'"),
        (lambda: MLPDiscriminator(hidden_dims=[8, -1]), r"hidden_dims .* got \[8, -1\]"),
        (lambda: MLPDiscriminator(input_shape=[]), r"input_shape .* got \[\]"),
        (lambda: MLPDiscriminator(minibatch_discrimination=-1), "number of kernels, got -1"),
        (lambda: MLPDiscriminator(minibatch_kernel_dim=0), "kernel_dim must be at least 1"),
    ],
)
def test_bad_arguments_are_rejected(build, message):
    with pytest.raises(ConfigurationError, match=message):
        build()
