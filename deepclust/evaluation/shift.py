"""Distribution shift: named image corruptions at severities 1–5, and evaluation of a trained
clustering on corrupted copies of a dataset without refitting.

ConCURL (Deshmukh et al., arXiv 2105.01289) evaluates a learned clustering on shifted data
(CIFAR-10 → CIFAR-10-C-style corruptions). The families and their severity constants follow
CIFAR-10-C (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019); blur widths are given for 32 px images and scaled up
with the image side for larger images (kept for smaller ones, which a narrower blur would not change),
so every dataset (any size, 1, 3 or more channels) gets a comparable blur.

>>> shifted = apply_shift(uint8_images, "gaussian_noise", 3, seed=0)   # same shape, uint8

Every corruption is deterministic for a seed (the random ones draw from
``numpy.random.default_rng(seed)``) and monotone in severity: a higher severity moves the
images further from the clean ones.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from deepclust.data.base import ImageDataset
from deepclust.evaluation.metrics import evaluate_clustering

__all__ = ["SHIFTS", "apply_shift", "evaluate_shifts", "format_shift_table", "list_shifts", "parse_shift",
           "shift_dataset"]

#: Images corrupted per block (bounds the float32 working memory to ~100 MB for 224 px RGB).
CHUNK = 512


def _gaussian_noise(x, c, rng):
    return x + rng.normal(0.0, c, size=x.shape)


def _shot_noise(x, c, rng):
    return rng.poisson(x * c) / c


def _impulse_noise(x, c, rng):
    """Salt and pepper: a fraction c of the values set to 0 or 1 (half each)."""
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def _gaussian_blur(x, c, rng):
    sigma = c * max(1.0, max(x.shape[-2:]) / 32.0)
    return gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


def _contrast(x, c, rng):
    means = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - means) * c + means


def _brightness(x, c, rng):
    """HSV value + c. For RGB the hue and saturation are kept, so the pixel is scaled by V'/V (and a
    black pixel becomes grey c); other channel counts are shifted channel by channel."""
    if x.shape[1] != 3:
        return x + c
    value = x.max(axis=1, keepdims=True)
    new_value = np.minimum(value + c, 1.0)
    scale = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, new_value)


def _per_image(x, fn):
    """Apply ``fn(PIL image) -> PIL image`` to every image (RGB when C == 3, else each channel as L)."""
    out = np.empty_like(x)
    pixels = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    for i in range(x.shape[0]):
        if x.shape[1] == 3:
            out[i] = np.asarray(fn(Image.fromarray(pixels[i].transpose(1, 2, 0), "RGB"))).transpose(2, 0, 1) / 255.0
        else:
            for ch in range(x.shape[1]):
                out[i, ch] = np.asarray(fn(Image.fromarray(pixels[i, ch], "L"))) / 255.0
    return out


def _jpeg(x, quality, rng):
    def compress(image):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(quality))
        return Image.open(buffer).convert(image.mode)
    return _per_image(x, compress)


def _pixelate(x, c, rng):
    def blocks(image):
        w, h = image.size
        small = image.resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
        return small.resize((w, h), Image.BOX)
    return _per_image(x, blocks)


#: name → (corruption of float images in [0, 1] (N, C, H, W), its constants for severities 1..5)
SHIFTS: dict[str, tuple[Callable, tuple[float, ...]]] = {
    "gaussian_noise": (_gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),   # noise std
    "shot_noise": (_shot_noise, (500, 250, 100, 75, 50)),                  # Poisson photons per unit
    "impulse_noise": (_impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),     # salt-and-pepper fraction
    "gaussian_blur": (_gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0)),          # sigma at 32 px
    "contrast": (_contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),                  # kept contrast factor
    "brightness": (_brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),              # added HSV value
    "jpeg": (_jpeg, (80, 65, 58, 50, 40)),                                 # JPEG quality
    "pixelate": (_pixelate, (0.95, 0.9, 0.85, 0.75, 0.65)),                # down-sampling factor
}


def list_shifts() -> list[str]:
    """Names accepted by :func:`apply_shift`."""
    return sorted(SHIFTS)


def _check(name, severity) -> None:
    if name not in SHIFTS:
        raise ValueError(f"unknown shift {name!r}; valid shifts: {', '.join(list_shifts())}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"shift {name!r}: severity must be an integer from 1 to 5, got {severity!r}")


def apply_shift(images, name: str, severity: int, seed: int = 0):
    """A corrupted copy of a uint8 batch (N, C, H, W) — numpy array or torch tensor, returned as
    the same type, shape and dtype — with corruption ``name`` at ``severity`` (1–5)."""
    _check(name, severity)
    tensor = None
    if not isinstance(images, np.ndarray):
        import torch

        if not isinstance(images, torch.Tensor):
            raise ValueError(f"apply_shift expects a uint8 numpy array or torch tensor, got {type(images).__name__}")
        tensor, images = images, images.detach().cpu().numpy()
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"apply_shift expects uint8 images of shape (N, C, H, W), "
                         f"got {images.dtype} of shape {images.shape}")
    corrupt, constants = SHIFTS[name]
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for start in range(0, images.shape[0], CHUNK):
        block = images[start:start + CHUNK].astype(np.float32) / 255.0
        shifted = corrupt(block, constants[severity - 1], rng)
        out[start:start + CHUNK] = np.clip(np.rint(np.asarray(shifted) * 255.0), 0, 255).astype(np.uint8)
    if tensor is not None:
        import torch

        return torch.from_numpy(out).to(tensor.device)
    return out


def parse_shift(text: str) -> tuple[str, int]:
    """``"gaussian_noise:3"`` → ``("gaussian_noise", 3)``."""
    name, sep, level = str(text).partition(":")
    if not sep or not level.strip().lstrip("-").isdigit():
        raise ValueError(f"a shift is NAME:SEVERITY with severity 1-5 (e.g. gaussian_noise:3), got {text!r}; "
                         f"names: {', '.join(list_shifts())}")
    name, severity = name.strip(), int(level)
    _check(name, severity)
    return name, severity


def shift_dataset(dataset: ImageDataset, name: str, severity: int, seed: int = 0) -> ImageDataset:
    """The dataset with corrupted images, the same labels and the clean mean/std."""
    return ImageDataset(apply_shift(dataset.images, name, severity, seed), dataset.labels,
                        f"{dataset.name}+{name}:{severity}", list(dataset.class_names), dataset.n_classes,
                        dataset.mean, dataset.std)


def evaluate_shifts(estimator, dataset: ImageDataset, shifts: list[tuple[str, int]], seed: int = 0) -> list[dict]:
    """Metrics of a fitted estimator's ``predict`` (no refit) on the clean dataset and each shifted copy.

    Returns one record per row (``shift`` = "clean" first), each with ACC/NMI/ARI and the other
    :func:`~deepclust.evaluation.evaluate_clustering` fields.
    """
    if dataset.labels is None:
        raise ValueError(f"dataset '{dataset.name}' has no labels: shift evaluation needs ground truth")
    n_clusters = int(estimator.n_clusters)
    rows = [{"shift": "clean", **evaluate_clustering(dataset.labels, estimator.predict(dataset), n_clusters)}]
    for name, severity in shifts:
        shifted = shift_dataset(dataset, name, severity, seed)
        rows.append({"shift": f"{name}:{severity}",
                     **evaluate_clustering(shifted.labels, estimator.predict(shifted), n_clusters)})
    return rows


def format_shift_table(rows: list[dict]) -> str:
    """A text table: ACC / NMI / ARI per row and each metric's change from the clean row."""
    clean = rows[0]
    width = max(len("shift"), *(len(row["shift"]) for row in rows))
    lines = [f"{'shift':<{width}}  {'ACC':>7} {'NMI':>7} {'ARI':>7}  {'ΔACC':>7} {'ΔNMI':>7} {'ΔARI':>7}"]
    for row in rows:
        values = " ".join(f"{row[key]:7.4f}" for key in ("acc", "nmi", "ari"))
        deltas = " ".join(f"{row[key] - clean[key]:+7.4f}" for key in ("acc", "nmi", "ari"))
        lines.append(f"{row['shift']:<{width}}  {values}  {deltas if row is not clean else ''}".rstrip())
    return "\n".join(lines)
