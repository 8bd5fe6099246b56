"""Writing samples from a trained module: images as PNG, points as CSV, nothing overwritten."""

import csv

import pytest
import torch

from gan_lightning.errors import ConfigurationError
from gan_lightning.models import GAN
from gan_lightning.networks import MLPDiscriminator, MLPGenerator
from gan_lightning.sampling import load_generator_module, write_samples


def point_gan() -> GAN:
    torch.manual_seed(0)
    generator = MLPGenerator(latent_dim=3, output_shape=[2], hidden_dims=[8])
    return GAN(generator, MLPDiscriminator(input_shape=[2], hidden_dims=[8]))


def test_points_are_written_as_one_csv_with_exact_values(tmp_path):
    model = point_gan()
    paths = write_samples(model, tmp_path / "out", num_samples=5, batch_size=2, seed=7)
    assert paths == [tmp_path / "out" / "samples.csv"]
    with open(paths[0]) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["x0", "x1"]
    written = torch.tensor([[float(v) for v in row] for row in rows[1:]])

    # The same latents, drawn in the same batches of 2, 2, 1.
    rng = torch.Generator().manual_seed(7)
    expected = torch.cat([model.generate(model.sample_latent(n, generator=rng)) for n in (2, 2, 1)])
    assert torch.equal(written, expected)


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(ConfigurationError, match="is a file, not a folder"):
        write_samples(point_gan(), target, 2, 2, 0)
    with pytest.raises(ConfigurationError, match="is a file"):
        write_samples(point_gan(), target / "below", 2, 2, 0)
    assert target.read_text() == "keep me"


def test_a_non_empty_output_folder_is_refused(tmp_path):
    (tmp_path / "old.png").write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="not empty"):
        write_samples(point_gan(), tmp_path, 2, 2, 0)
    assert (tmp_path / "old.png").read_bytes() == b"x"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_device_without_a_gpu_names_the_device(tmp_path):
    with pytest.raises(ConfigurationError, match="--device cuda:0 asks for a GPU"):
        load_generator_module(tmp_path / "missing.ckpt", torch.device("cuda:0"))
