import pytest
import torch

from lightning_siamese.data.transforms.augment import KochAffine


def test_no_component_applied_is_identity() -> None:
    images = torch.rand(4, 1, 20, 20)
    out = KochAffine(p=0.0)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images)


def test_pure_translation_moves_pixels() -> None:
    image = torch.zeros(1, 1, 21, 21)
    image[0, 0, 10, 10] = 1.0
    shift = KochAffine(rotation=0, shear=0, scale=(1, 1), translation=2.0, p=1.0)
    generator = torch.Generator().manual_seed(0)
    matrix = shift.matrices(1, 21, torch.Generator().manual_seed(0))
    out = shift(image, generator)
    tx, ty = matrix[0, 0, 2].item(), matrix[0, 1, 2].item()
    # the bright pixel's centre of mass moves by (tx, ty)
    rows, cols = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    mass = out[0, 0].sum()
    assert (out[0, 0] * cols).sum() / mass == pytest.approx(10 + tx, abs=1e-4)
    assert (out[0, 0] * rows).sum() / mass == pytest.approx(10 + ty, abs=1e-4)


def test_parameters_stay_in_koch_ranges_and_components_are_optional() -> None:
    aug = KochAffine()
    m = aug.matrices(20000, 105, torch.Generator().manual_seed(1))
    assert m[:, :, 2].abs().max() <= 2.0
    # each component is skipped with probability 0.5: translation is exactly 0 about half the time
    untranslated = (m[:, :, 2] == 0).all(-1).float().mean()
    assert 0.45 < untranslated < 0.55
    det = torch.linalg.det(m[:, :, :2])
    # det = sx * sy * (1 - rho_x * rho_y)
    assert det.min() > 0.8**2 * (1 - 0.3**2) - 1e-4 and det.max() < 1.2**2 * (1 + 0.3**2) + 1e-4


def test_images_of_a_batch_get_different_distortions() -> None:
    images = torch.rand(1, 1, 30, 30).expand(8, 1, 30, 30).contiguous()
    out = KochAffine(p=1.0)(images, torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])
    again = KochAffine(p=1.0)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="square"):
        KochAffine()(torch.rand(1, 1, 10, 12))
    with pytest.raises(ValueError, match="scale"):
        KochAffine(scale=(1.2, 0.8))


def test_flip_mirrors_left_to_right_and_off_keeps_the_stream() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)
    mirror = KochAffine(rotation=0, shear=0, scale=(1, 1), translation=0, flip=1.0)
    assert torch.equal(mirror(image), image.flip(-1))

    def mirrored(flip):
        return (torch.linalg.det(KochAffine(flip=flip).matrices(2000, 28)[:, :, :2]) < 0).float().mean()

    assert mirrored(0.0) == 0 and 0.45 < mirrored(0.5) < 0.55
    with pytest.raises(ValueError, match="flip"):
        KochAffine(flip=2.0)


def test_elastic_field_peaks_at_alpha_pixels_is_smooth_and_differs_per_image() -> None:
    aug = KochAffine(elastic=3.0, elastic_sigma=4.0)
    field = aug.elastic_field(8, 40, torch.Generator().manual_seed(0))
    assert field.shape == (8, 40, 40, 2)
    assert torch.allclose(field.flatten(1).abs().amax(1), torch.full((8,), 3.0))
    # smooth: neighbouring pixels move almost together (raw noise would differ by ~alpha)
    assert (field[:, 1:] - field[:, :-1]).abs().mean() < 0.1 * 3.0
    assert not torch.allclose(field[0], field[1])


def test_elastic_field_moves_sampling_points_in_pixels() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 3, 4] = 1.0
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    one_pixel_right = torch.zeros(1, 8, 8, 2)
    one_pixel_right[..., 0] = 1.0  # every output pixel samples the input one pixel to its right
    moved = KochAffine.warp(image, identity, one_pixel_right)
    assert moved[0, 0, 3, 3] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)


def test_elastic_distorts_strokes_and_off_keeps_the_stream() -> None:
    images = torch.rand(4, 1, 28, 28)
    still = {"rotation": 0, "shear": 0, "scale": (1, 1), "translation": 0}
    bent = KochAffine(**still, elastic=2.0)(images, torch.Generator().manual_seed(0))
    assert (bent - images).abs().mean() > 0.05
    plain = KochAffine()(images, torch.Generator().manual_seed(1))
    assert torch.equal(KochAffine(elastic=0.0)(images, torch.Generator().manual_seed(1)), plain)
    with pytest.raises(ValueError, match="elastic"):
        KochAffine(elastic=-1.0)
    with pytest.raises(ValueError, match="elastic_sigma"):
        KochAffine(elastic=1.0, elastic_sigma=0.0)
