"""Named view-generation pipelines and their paper hyper-parameters.

Every colour pipeline is built from the same ops, in this order (each optional):

    RandomResizedCrop(S, crop_scale, crop_ratio) -> HorizontalFlip(flip_p)
    -> ColorJitter(jitter, p=jitter_p) -> Grayscale(grayscale_p)      [concurl: gray, then jitter]
    -> GaussianBlur(blur_kernel, blur_sigma, p=blur_p) if blur -> Solarize(p=solarize_p)
    -> Normalize(mean, std) if given

Colour jitter is ``kornia.augmentation.ColorJitter``: in kornia 0.9 that class implements
torchvision's ``ColorJitter`` formulas (brightness multiplies, contrast and saturation blend
with the grey mean / grey image, torchvision's hue shift; factor ranges
``[max(0, 1 - b), 1 + b]`` etc.). ``ColorJiggle`` uses kornia's own additive brightness and
HSV-based saturation and gives different images for the same factors, so it is not used. One
difference remains: kornia draws the order of the four jitter steps once per call (the whole
batch), torchvision once per image; the factors themselves are drawn per image.

Grey images (``channels == 1``): saturation, hue and RGB->grey cannot apply, so they are
dropped; brightness/contrast jitter, crops, flips, blur and solarize are kept. The same
names therefore work for MNIST-like data.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import kornia.augmentation as K
from torch import nn

from .core import ViewPipeline, check_channels, check_image_size

_BASE = dict(
    crop_scale=(0.08, 1.0),
    crop_ratio=(3.0 / 4.0, 4.0 / 3.0),
    flip_p=0.5,
    jitter=(0.4, 0.4, 0.4, 0.1),
    jitter_p=0.8,
    grayscale_p=0.2,
    blur=False,
    blur_p=0.5,
    blur_sigma=(0.1, 2.0),
    blur_kernel=None,
    solarize_p=0.0,
)

# Per-pipeline defaults. Every key can be overridden through build_augmentation(**overrides).
PIPELINES: dict[str, dict] = {
    # SimCLR (Chen et al. 2020), as used by Contrastive Clustering / HTCN / DCHL:
    # jitter (0.8s, 0.8s, 0.8s, 0.2s) with p=0.8, grey p=0.2, blur p=0.5 when enabled.
    # jitter=None means "derive from strength".
    "simclr": {**_BASE, "strength": 0.5, "jitter": None},
    # ProPos / HaDis (BYOL-style symmetric views): jitter (0.4, 0.4, 0.4, 0.1), blur optional.
    "propos": dict(_BASE),
    # BYOL (Grill et al. 2020, Table 6): asymmetric views selected with view=0 / view=1:
    # blur p 1.0 / 0.1, solarize p 0.0 / 0.2; jitter (0.4, 0.4, 0.2, 0.1) p=0.8, grey p=0.2.
    "byol": {**_BASE, "view": 0, "jitter": (0.4, 0.4, 0.2, 0.1), "blur": True,
             "blur_p": None, "solarize_p": None},
    # ConCURL: crop scale (0.2, 1), grey p=0.2, then jitter (0.4,)*4 always, flip.
    # jitter=0.38 gives the "slightly different views" variant.
    "concurl": {**_BASE, "crop_scale": (0.2, 1.0), "jitter": 0.4, "jitter_p": 1.0},
    # No augmentation (HardReg): resize to S if needed and normalise.
    "none": {},
}
_BYOL_VIEWS = {0: dict(blur_p=1.0, solarize_p=0.0), 1: dict(blur_p=0.1, solarize_p=0.2)}
_GRAY_FIRST = {"concurl"}


def list_augmentations() -> list[str]:
    """Names accepted by :func:`build_augmentation`."""
    return sorted(PIPELINES)


def _prob(value, key: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{owner}: {key} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _range(value, key: str, owner: str, low: float, high: float | None = None):
    ok = (isinstance(value, Sequence) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value))
    if ok:
        a, b = float(value[0]), float(value[1])
        ok = low <= a <= b and (high is None or b <= high)
    if not ok:
        bound = f"{low} <= lo <= hi" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{owner}: {key} must be a pair (lo, hi) with {bound}, got {value!r}")
    return (a, b)


def _jitter(value, owner: str) -> tuple[float, float, float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (float(value),) * 4
    if (not isinstance(value, Sequence) or len(value) != 4
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{owner}: jitter must be a number or a 4-tuple (brightness, contrast, "
                         f"saturation, hue), got {value!r}")
    b, c, s, h = (float(v) for v in value)
    if min(b, c, s, h) < 0 or h > 0.5:
        raise ValueError(f"{owner}: jitter strengths must be >= 0 and hue <= 0.5, got {value!r}")
    return (b, c, s, h)


def _blur_kernel(image_size: int) -> int:
    """Odd kernel of about 10% of the image side (23 px at 224 px, as SimCLR), at least 3."""
    k = int(round(0.1 * image_size))
    if k % 2 == 0:
        k += 1
    return max(k, 3)


def resolve_config(name: str, image_size: int, channels: int, overrides: dict) -> dict:
    """Merge a pipeline's defaults with ``overrides`` and validate every value."""
    owner = f"augmentation '{name}'"
    defaults = PIPELINES[name]
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{owner} does not accept option(s) {unknown}; "
                         f"accepted: {sorted(defaults)}")
    cfg = {**defaults, **overrides}
    if name == "byol":
        view = cfg["view"]
        if view not in _BYOL_VIEWS or isinstance(view, bool):
            raise ValueError(f"{owner}: view must be 0 or 1, got {view!r}")
        for key, value in _BYOL_VIEWS[view].items():
            if overrides.get(key) is None:
                cfg[key] = value
    if name == "simclr":
        s = cfg["strength"]
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or s < 0:
            raise ValueError(f"{owner}: strength must be a number >= 0, got {s!r}")
        if cfg["jitter"] is None:
            cfg["jitter"] = (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)
    if not defaults:  # "none"
        return cfg
    cfg["crop_scale"] = _range(cfg["crop_scale"], "crop_scale", owner, 0.0, 1.0)
    if cfg["crop_scale"][1] <= 0:
        raise ValueError(f"{owner}: crop_scale upper bound must be > 0, got {cfg['crop_scale']}")
    cfg["crop_ratio"] = _range(cfg["crop_ratio"], "crop_ratio", owner, 1e-6)
    cfg["jitter"] = _jitter(cfg["jitter"], owner)
    for key in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
        cfg[key] = _prob(cfg[key], key, owner)
    if channels == 1:  # saturation, hue and RGB->grey need colour: record them as off
        cfg["jitter"] = cfg["jitter"][:2] + (0.0, 0.0)
        cfg["grayscale_p"] = 0.0
    if not isinstance(cfg["blur"], bool):
        raise ValueError(f"{owner}: blur must be True or False, got {cfg['blur']!r}")
    cfg["blur_sigma"] = _range(cfg["blur_sigma"], "blur_sigma", owner, 1e-6)
    k = cfg["blur_kernel"]
    if k is None:
        cfg["blur_kernel"] = _blur_kernel(image_size)
    elif (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 or k % 2 == 0
          or k > image_size):
        raise ValueError(f"{owner}: blur_kernel must be an odd int in [1, image_size="
                         f"{image_size}], got {k!r}")
    return cfg


def _ops(name: str, image_size: int, channels: int, cfg: dict) -> list[nn.Module]:
    S = image_size
    ops: list[nn.Module] = [
        K.RandomResizedCrop((S, S), scale=cfg["crop_scale"], ratio=cfg["crop_ratio"],
                            same_on_batch=False),
    ]
    if cfg["flip_p"] > 0:
        ops.append(K.RandomHorizontalFlip(p=cfg["flip_p"], same_on_batch=False))

    b, c, s, h = cfg["jitter"]  # saturation and hue are 0 for grey input (resolve_config)
    colour: list[nn.Module] = []
    if cfg["jitter_p"] > 0 and max(b, c, s, h) > 0:
        colour.append(K.ColorJitter(b, c, s, h, p=cfg["jitter_p"], same_on_batch=False))
    if cfg["grayscale_p"] > 0:  # 0 for grey input
        gray = K.RandomGrayscale(p=cfg["grayscale_p"], same_on_batch=False)
        colour.insert(0 if name in _GRAY_FIRST else len(colour), gray)
    ops += colour

    if cfg["blur"] and cfg["blur_p"] > 0:
        k = cfg["blur_kernel"]
        ops.append(K.RandomGaussianBlur((k, k), cfg["blur_sigma"], p=cfg["blur_p"],
                                        same_on_batch=False))
    if cfg["solarize_p"] > 0:
        # thresholds=0.0 / additions=0.0 are half-widths around 0.5 / 0: a fixed threshold of
        # 0.5 and no addition, i.e. torchvision's solarize(threshold=0.5) used by BYOL.
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=cfg["solarize_p"],
                                    same_on_batch=False))
    return ops


def build_augmentation(name: str, image_size: int, channels: int, mean=None, std=None,
                       **overrides) -> nn.Module:
    """Build a batched view generator (see :class:`~deepclust.augment.core.ViewPipeline`).

    Args:
        name: one of :func:`list_augmentations`: ``simclr``, ``propos``, ``byol``, ``concurl``,
            ``none``.
        image_size: output side ``S`` (>= 8).
        channels: input channels; 1 or 3 for the colour pipelines (any for ``none``).
        mean, std: per-channel normalisation applied last (both or neither); without them the
            output stays in [0, 1].
        **overrides: change a pipeline's defaults: ``crop_scale``, ``crop_ratio``, ``flip_p``,
            ``jitter`` (a number j -> (j, j, j, j), or a (brightness, contrast, saturation, hue)
            4-tuple), ``jitter_p``, ``grayscale_p``, ``blur`` (bool), ``blur_p``,
            ``blur_sigma``, ``blur_kernel`` (odd; default ~10% of S), ``solarize_p``;
            ``strength`` (simclr only: jitter = (0.8s, 0.8s, 0.8s, 0.2s), default 0.5);
            ``view`` (byol only: 0 or 1, selects the asymmetric blur/solarize probabilities).

    BYOL's two asymmetric views are two pipelines:
    ``build_augmentation("byol", S, C, view=0)`` and ``build_augmentation("byol", S, C, view=1)``,
    each with the usual ``forward(x)``.
    """
    if name not in PIPELINES:
        raise ValueError(f"unknown augmentation {name!r}; valid names: "
                         f"{', '.join(list_augmentations())}")
    owner = f"augmentation '{name}'"
    image_size = check_image_size(image_size, owner)
    channels = check_channels(channels, owner, colour=name != "none")
    cfg = resolve_config(name, image_size, channels, overrides)
    ops = _ops(name, image_size, channels, cfg) if name != "none" else []
    return ViewPipeline(name, image_size, channels, ops, mean=mean, std=std, config=cfg)


def build_eval_transform(image_size: int, channels: int, mean=None, std=None) -> nn.Module:
    """Deterministic evaluation transform: resize to ``S x S`` if needed (short side + centre
    crop for non-square images), then normalise if mean/std are given."""
    owner = "eval transform"
    image_size = check_image_size(image_size, owner)
    channels = check_channels(channels, owner, colour=False)
    return ViewPipeline("eval", image_size, channels, [], mean=mean, std=std, config={})
