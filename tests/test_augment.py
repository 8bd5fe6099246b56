import pytest
import torch

from gan_lightning.augment import DiffAugment, diff_augment, parse_policy
from gan_lightning.errors import ConfigurationError


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def no_zero_images(n: int, c: int, h: int, w: int) -> torch.Tensor:
    """Images in [0.1, 1) with distinct values, so zeros can only come from the augmentation."""
    return 0.1 + 0.9 * torch.rand(n, c, h, w, generator=seeded(1))


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_shape_and_dtype_are_kept_and_gradients_flow(policy):
    x = (torch.rand(4, 3, 16, 12, generator=seeded(2)) * 2 - 1).requires_grad_()
    out = diff_augment(x, policy, generator=seeded())
    assert out.shape == x.shape and out.dtype == x.dtype
    weights = torch.randn(out.shape, generator=seeded(3))
    (out * weights).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_empty_policy_is_the_identity():
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(diff_augment(x, ""), x)
    assert torch.equal(DiffAugment(" , ")(x), x)


def test_same_generator_seed_gives_the_same_augmentation():
    x = torch.randn(6, 3, 8, 8)
    first = diff_augment(x, generator=seeded(5))
    assert torch.equal(first, diff_augment(x, generator=seeded(5)))
    assert not torch.equal(first, diff_augment(x, generator=seeded(6)))


def test_color_on_flat_gray_images_is_a_per_sample_brightness_offset():
    # Saturation and contrast scale deviations from a mean, which are 0 for a flat image.
    x = torch.full((16, 3, 4, 4), 0.25)
    out = diff_augment(x, "color", generator=seeded())
    offsets = out - x
    per_sample = offsets[:, :1, :1, :1]
    torch.testing.assert_close(offsets, per_sample.expand_as(offsets))
    assert per_sample.min() >= -0.5 and per_sample.max() < 0.5
    assert per_sample.flatten().unique().numel() == 16


def test_color_scales_contrast_and_saturation_per_sample():
    x = torch.randn(1, 3, 8, 8).repeat(8, 1, 1, 1)
    out = diff_augment(x, "color", generator=seeded())
    # Same input, different random draws: the samples' spreads differ.
    assert out.std(dim=(1, 2, 3)).unique().numel() == 8


def test_translation_shifts_each_sample_by_at_most_an_eighth_with_zero_fill():
    n, c, h, w = 16, 2, 16, 16
    x = no_zero_images(n, c, h, w)
    out = diff_augment(x, "translation", generator=seeded())

    # Every output pixel is 0 or a value from the same input sample.
    for i in range(n):
        values = set(x[i].flatten().tolist()) | {0.0}
        assert set(out[i].flatten().tolist()) <= values

    # Each sample equals its input shifted by some (dy, dx) in [-2, 2]^2, padded with zeros.
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = []
    for i in range(n):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(out[i], padded[i, :, 2 - dy : 2 - dy + h, 2 - dx : 2 - dx + w])
        ]
        assert len(matches) == 1
        shifts.append(matches[0])
    assert len(set(shifts)) > 3


@pytest.mark.parametrize(("h", "w", "area"), [(8, 8, 16), (7, 7, 16), (8, 12, 24)])
def test_cutout_zeroes_one_square_of_half_the_side_per_sample(h, w, area):
    n = 12
    x = no_zero_images(n, 3, h, w)
    out = diff_augment(x, "cutout", generator=seeded())
    zero = out == 0
    corners = set()
    for i in range(n):
        # The same pixels in every channel, forming a solid rectangle of the expected area.
        assert torch.equal(zero[i, 0], zero[i, 1]) and torch.equal(zero[i, 0], zero[i, 2])
        rows, cols = zero[i, 0].nonzero(as_tuple=True)
        assert rows.numel() == area
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box.item() == area
        kept = ~zero[i]
        assert torch.equal(out[i][kept], x[i][kept])
        corners.add((rows.min().item(), cols.min().item()))
    assert len(corners) > 2


def test_parse_policy_returns_the_operations_in_order():
    assert parse_policy("cutout, color") == ("cutout", "color")
    assert parse_policy("") == ()
    assert DiffAugment("translation,color").policy == "translation,color"


def test_unknown_operations_are_rejected_with_the_valid_names():
    with pytest.raises(ConfigurationError) as err:
        parse_policy("color,colour", name="model.diff_augment")
    message = str(err.value)
    assert "model.diff_augment" in message and "'colour'" in message
    assert "color, translation, cutout" in message
    with pytest.raises(ConfigurationError, match="'flip'"):
        DiffAugment("flip")
    with pytest.raises(ConfigurationError, match="'zoom'"):
        diff_augment(torch.zeros(1, 1, 8, 8), "zoom")


def test_non_image_input_is_rejected_unless_the_policy_is_empty():
    points = torch.randn(5, 2)
    with pytest.raises(ConfigurationError, match=r"\(N, C, H, W\), got shape \(5, 2\)"):
        diff_augment(points, "color")
    assert torch.equal(diff_augment(points, ""), points)
