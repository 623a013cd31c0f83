import pytest
import torch

from deepclust.augment import (
    build_augmentation, build_eval_transform, list_augmentations, to_float,
)

NAMES = ["byol", "concurl", "none", "propos", "simclr"]
SHAPES = [(1, 28), (3, 32)]


def op_names(pipe):
    return [type(m).__name__ for m in pipe.ops]


def test_list_augmentations():
    assert list_augmentations() == NAMES


def test_to_float():
    x = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    y = to_float(x)
    assert y.dtype == torch.float32 and y.device == x.device
    assert torch.allclose(y, torch.tensor([[0.0, 0.2, 1.0]]))
    with pytest.raises(ValueError, match="expected a uint8 tensor, got dtype torch.float32"):
        to_float(y)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_every_pipeline_runs(name, channels, size):
    aug = build_augmentation(name, size, channels)
    out = aug(torch.rand(6, channels, size, size))
    assert out.shape == (6, channels, size, size) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("view", [0, 1])
@pytest.mark.parametrize("channels,size", SHAPES)
def test_byol_views_run(view, channels, size):
    aug = build_augmentation("byol", size, channels, view=view)
    assert aug(torch.rand(4, channels, size, size)).shape == (4, channels, size, size)


def test_byol_view_parameters():
    v0 = build_augmentation("byol", 96, 3, view=0).config
    v1 = build_augmentation("byol", 96, 3, view=1).config
    assert (v0["blur_p"], v0["solarize_p"]) == (1.0, 0.0)
    assert (v1["blur_p"], v1["solarize_p"]) == (0.1, 0.2)
    assert v0["jitter"] == (0.4, 0.4, 0.2, 0.1) and v0["blur"] is True
    assert "RandomSolarize" not in op_names(build_augmentation("byol", 96, 3, view=0))
    assert "RandomSolarize" in op_names(build_augmentation("byol", 96, 3, view=1))
    assert build_augmentation("byol", 96, 3, view=1, blur_p=0.3).config["blur_p"] == 0.3
    with pytest.raises(ValueError, match="view must be 0 or 1, got 2"):
        build_augmentation("byol", 32, 3, view=2)


def test_crop_changes_size_to_target():
    aug = build_augmentation("simclr", 16, 3)
    assert aug(torch.rand(3, 3, 40, 40)).shape == (3, 3, 16, 16)
    assert build_augmentation("none", 16, 3)(torch.rand(3, 3, 40, 40)).shape == (3, 3, 16, 16)


def test_crop_of_28px_keeps_28():
    aug = build_augmentation("concurl", 28, 1)
    assert aug(torch.rand(5, 1, 28, 28)).shape == (5, 1, 28, 28)


@pytest.mark.parametrize("name", ["simclr", "propos", "concurl", "byol"])
def test_two_calls_give_different_views(name):
    x = torch.rand(8, 3, 32, 32)
    aug = build_augmentation(name, 32, 3)
    assert not torch.allclose(aug(x), aug(x))


def test_parameters_differ_across_the_batch():
    x = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1).contiguous()
    out = build_augmentation("simclr", 32, 3)(x)
    distinct = sum(not torch.allclose(out[0], out[i]) for i in range(1, 8))
    assert distinct >= 6  # same image, new crop/flip/jitter per sample (same_on_batch=False)


@pytest.mark.parametrize("name", ["simclr", "byol", "concurl"])
def test_seeded_torch_gives_identical_views(name):
    x = torch.rand(8, 3, 32, 32)
    aug = build_augmentation(name, 32, 3, **({"blur": True} if name == "simclr" else {}))
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    assert torch.equal(a, b)


def test_uint8_input_equals_to_float():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    aug = build_augmentation("simclr", 32, 3)
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    b = aug(to_float(x))
    assert torch.equal(a, b)


def test_normalisation_applied_after_augmentation():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    x = torch.rand(4, 3, 32, 32)
    plain = build_augmentation("propos", 32, 3)
    normed = build_augmentation("propos", 32, 3, mean=mean, std=std)
    torch.manual_seed(5)
    a = plain(x)
    torch.manual_seed(5)
    b = normed(x)
    for c in range(3):
        assert torch.allclose(b[:, c], (a[:, c] - mean[c]) / std[c], atol=1e-6)


def test_eval_transform_is_deterministic_and_normalises():
    mean, std = [0.5], [0.25]
    ev = build_eval_transform(28, 1, mean=mean, std=std)
    x = torch.rand(3, 1, 28, 28)
    out = ev(x)
    assert torch.equal(out, ev(x))
    assert torch.allclose(out, (x - 0.5) / 0.25)
    assert torch.allclose(build_eval_transform(28, 1)(x), x)


def test_eval_transform_resizes_and_centre_crops():
    ev = build_eval_transform(16, 3)
    assert ev(torch.rand(2, 3, 32, 32)).shape == (2, 3, 16, 16)
    # non-square: short side to 16 then centre crop; a left-right ramp stays centred
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 32, 64)
    out = ev(ramp)
    assert out.shape == (1, 3, 16, 16)
    assert abs(out.mean().item() - 0.5) < 0.02


def test_none_is_eval_transform():
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(build_augmentation("none", 32, 3, mean=0.5, std=0.5)(x), (x - 0.5) / 0.5)


def test_grayscale_variant_drops_colour_ops():
    for name in ["simclr", "propos", "concurl", "byol"]:
        grey = build_augmentation(name, 28, 1, blur=True)
        names = op_names(grey)
        assert "RandomGrayscale" not in names
        assert "RandomGaussianBlur" in names and "RandomResizedCrop" in names
        jit = grey.ops[names.index("ColorJitter")]
        assert jit.saturation == 0.0 and jit.hue == 0.0 and jit.brightness > 0
        assert "RandomGrayscale" in op_names(build_augmentation(name, 32, 3))


def test_simclr_defaults_and_strength():
    cfg = build_augmentation("simclr", 32, 3).config
    assert cfg["jitter"] == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert cfg["jitter_p"] == 0.8 and cfg["grayscale_p"] == 0.2 and cfg["crop_scale"] == (0.08, 1.0)
    assert "RandomGaussianBlur" not in op_names(build_augmentation("simclr", 32, 3))
    cfg = build_augmentation("simclr", 32, 3, strength=1.0).config
    assert cfg["jitter"] == pytest.approx((0.8, 0.8, 0.8, 0.2))


@pytest.mark.parametrize("size,kernel", [(224, 23), (96, 11), (32, 3), (28, 3), (8, 3)])
def test_blur_kernel_scales_with_size(size, kernel):
    aug = build_augmentation("simclr", size, 3, blur=True)
    assert aug.config["blur_kernel"] == kernel
    blur = aug.ops[op_names(aug).index("RandomGaussianBlur")]
    assert tuple(blur.flags["kernel_size"]) == (kernel, kernel)


def test_concurl_defaults_and_jitter_variant():
    aug = build_augmentation("concurl", 32, 3)
    assert aug.config["crop_scale"] == (0.2, 1.0) and aug.config["jitter_p"] == 1.0
    assert aug.config["jitter"] == (0.4, 0.4, 0.4, 0.4)
    assert op_names(aug)[2:4] == ["RandomGrayscale", "ColorJitter"]
    assert build_augmentation("concurl", 32, 3, jitter=0.38).config["jitter"] == (0.38,) * 4


def test_brightness_jitter_uses_torchvision_semantics():
    # only brightness, always applied: torchvision multiplies by a factor in [1-b, 1+b]
    aug = build_augmentation("propos", 16, 1, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                             flip_p=0.0, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0)
    x = torch.full((64, 1, 16, 16), 0.5)
    out = aug(x)
    factor = out / x
    per_sample = factor.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-5)
    assert per_sample.min() >= 0.6 - 1e-5 and per_sample.max() <= 1.4 + 1e-5
    assert per_sample[:, 0].std() > 0.05  # drawn per sample


def test_solarize_matches_threshold_half():
    aug = build_augmentation("byol", 16, 1, view=1, crop_scale=(1.0, 1.0),
                             crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, blur=False,
                             solarize_p=1.0)
    x = torch.rand(4, 1, 16, 16)
    expected = torch.where(x >= 0.5, 1 - x, x)
    assert torch.allclose(aug(x), expected, atol=1e-5)


def test_runs_under_autocast():
    aug = build_augmentation("simclr", 32, 3, blur=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = aug(torch.rand(4, 3, 32, 32))
    assert out.dtype == torch.float32


def test_validation_errors():
    with pytest.raises(ValueError, match="unknown augmentation 'moco'.*simclr"):
        build_augmentation("moco", 32, 3)
    with pytest.raises(ValueError, match="channels must be 1 .* or 3 .* got 2"):
        build_augmentation("simclr", 32, 2)
    assert build_augmentation("none", 32, 2)(torch.rand(1, 2, 32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="image_size must be at least 8, got 4"):
        build_augmentation("simclr", 4, 3)
    with pytest.raises(ValueError, match="image_size must be at least 8"):
        build_eval_transform(4, 3)
    with pytest.raises(ValueError, match="does not accept option.*'strength'"):
        build_augmentation("propos", 32, 3, strength=1.0)
    with pytest.raises(ValueError, match="give both mean and std"):
        build_augmentation("simclr", 32, 3, mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="std has 2 entries, expected 1 or channels=3"):
        build_augmentation("simclr", 32, 3, mean=0.5, std=(0.2, 0.2))
    with pytest.raises(ValueError, match="std must be > 0"):
        build_eval_transform(32, 1, mean=0.5, std=0.0)
    with pytest.raises(ValueError, match="jitter_p must be a probability"):
        build_augmentation("simclr", 32, 3, jitter_p=1.5)
    with pytest.raises(ValueError, match="crop_scale must be a pair"):
        build_augmentation("simclr", 32, 3, crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="blur_kernel must be an odd int"):
        build_augmentation("simclr", 32, 3, blur=True, blur_kernel=4)


def test_batch_validation_errors():
    aug = build_augmentation("simclr", 32, 3)
    with pytest.raises(ValueError, match=r"'simclr'.*\(B, 3, H, W\).*\(3, 32, 32\)"):
        aug(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"'simclr'.*3 channel.*\(2, 1, 32, 32\)"):
        aug(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="float batch in \\[0, 1\\] or uint8, got dtype torch.int64"):
        aug(torch.zeros(2, 3, 32, 32, dtype=torch.long))
