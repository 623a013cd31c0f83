"""User arrays (``from_arrays``), ``.npz`` files and scikit-learn's bundled digits."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, _MissingFile

__all__ = ["from_arrays", "load_npz", "load_digits_dataset", "scale_to_uint8", "to_uint8_images", "to_labels",
           "with_labels"]


def _raise_value_error(msg: str):
    raise ValueError(msg)


def to_uint8_images(x, fail=_raise_value_error, what: str = "X") -> np.ndarray:
    """Validate and convert an image array to a C-contiguous uint8 (N, C, H, W) array.

    Accepted layouts: (N, H, W) (one channel), (N, C, H, W), and (N, H, W, C) when the last
    dimension is 1 or 3 and dimension 1 is not. C must be 1 or 3.
    Accepted values: uint8; other integer types with values in [0, 255]; floats in [0, 1]
    (multiplied by 255) or in [0, 255] (kept), rounded to the nearest integer. ``fail(msg)``
    is called (and must raise) on any problem.
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # ragged lists etc.
            fail(f"{what} could not be converted to an array ({exc})")
    if x.dtype.kind not in "uif":
        fail(f"{what} must hold numbers (uint8, integer or float); got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = x.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    else:
        fail(f"{what} must be a 3-D (N, H, W) or 4-D (N, C, H, W) image array; "
             f"got {x.ndim}-D shape {x.shape}")
    if x.size == 0:
        fail(f"{what} is empty: shape {x.shape} (after adding the channel axis); "
             f"need at least one image of at least 1x1 pixels")
    if x.shape[1] not in (1, 3):
        fail(f"{what} must have 1 or 3 channels (N, C, H, W) or (N, H, W, C); "
             f"got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        n_bad = int(x.size - np.count_nonzero(finite))
        if n_bad:
            n_nan = int(np.count_nonzero(np.isnan(x)))
            fail(f"{what} contains {n_bad} non-finite values ({n_nan} NaN, {n_bad - n_nan} "
                 f"+/-Inf) out of {x.size}")
    lo, hi = x.min(), x.max()
    if x.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            fail(f"{what} integer values must lie in [0, 255]; observed range [{lo}, {hi}]")
        return np.ascontiguousarray(x.astype(np.uint8))
    if lo < 0 or hi > 255:
        fail(f"{what} float values must lie in [0, 1] or [0, 255] for images; "
             f"observed range [{float(lo):g}, {float(hi):g}] (rescale them, or give feature vectors of any "
             f"range to an estimator as a 2-D (N, D) array)")
    if hi <= 1.0:
        x = x * 255.0
    return np.ascontiguousarray(np.rint(x).astype(np.uint8))


def scale_to_uint8(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``values`` (..., D) min-max scaled per column to 0..255 between the bounds ``low`` and ``high``
    (D,), clipped to them and rounded: 256 levels per column (a column with ``low == high``: that value
    maps to 0)."""
    span = np.where(high > low, high - low, 1.0)
    return np.rint(np.clip((values - low) / span, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_labels(y, n: int, fail=_raise_value_error, what: str = "y"):
    """Validate labels for ``n`` images. Returns ``(labels int64, class_names, n_classes)``.

    Integer (or integral float) labels are kept as given; ``-1`` means unknown, anything below
    is an error; ``class_names`` are the distinct non-negative values as strings (sorted) and
    ``n_classes`` their count. String labels are encoded to 0..K-1 in sorted order, their
    values becoming ``class_names``. An object array is read as numbers when all its entries are
    numbers, else as their text.
    """
    y = np.asarray(y)
    if y.dtype == object:  # numbers as numbers, anything else as its text
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            y = y.astype(str)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        fail(f"{what} must be 1-D with one label per image; got shape {y.shape}")
    if len(y) != n:
        fail(f"{what} has {len(y)} labels but there are {n} images")
    if y.dtype.kind in "US":
        names, codes = np.unique(y, return_inverse=True)
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
        return codes.astype(np.int64).reshape(-1), names, len(names)
    if y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            fail(f"{what} contains {int(np.count_nonzero(~np.isfinite(y)))} non-finite labels")
        if not np.all(y == np.round(y)):
            bad = y[y != np.round(y)][:5]
            fail(f"{what} must hold integer class labels; got non-integral values such as "
                 f"{bad.tolist()}")
    elif y.dtype.kind not in "iu":
        fail(f"{what} must hold integer or string labels; got dtype {y.dtype}")
    labels = y.astype(np.int64)
    if len(labels) and labels.min() < -1:
        fail(f"{what} labels must be >= 0 (or -1 for unknown); got minimum {labels.min()}")
    present = np.unique(labels[labels >= 0])
    return labels, [str(v) for v in present.tolist()], int(len(present))


def from_arrays(X, y=None, name: str = "array") -> ImageDataset:
    """Wrap user arrays as an :class:`ImageDataset` (see :func:`to_uint8_images` for the
    accepted layouts/value ranges and :func:`to_labels` for labels). Raises ValueError naming
    the problem and the shape or values seen."""
    return with_labels(to_uint8_images(X, what="X"), y, name)


def with_labels(images: np.ndarray, y=None, name: str = "array") -> ImageDataset:
    """An :class:`ImageDataset` of uint8 ``images`` (N, C, H, W) and the labels ``y`` (checked by
    :func:`to_labels`; None: unlabelled)."""
    if y is None:
        return ImageDataset(images, None, name, [], 0)
    labels, class_names, n_classes = to_labels(y, len(images), what="y")
    return ImageDataset(images, labels, name, class_names, n_classes)


_X_KEYS = ("x", "X", "images")
_Y_KEYS = ("y", "Y", "labels")


def load_npz(path, split: str = "all") -> ImageDataset:
    """Load ``x`` (and optional ``y``, optional ``class_names``) from a ``.npz`` file.

    ``x``/``y`` may also be called ``X``/``Y`` or ``images``/``labels``. Same conversion
    rules as :func:`from_arrays`; problems raise :class:`DatasetFormatError` naming the file.
    The file is a single split: ``split`` "all" and "train" both return everything.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise _MissingFile(path, ".npz file")

    def fail(msg):
        raise DatasetFormatError(path, msg)

    try:
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if not hasattr(z, "files"):  # a plain .npy array
                fail(f"expected a .npz archive of named arrays; found a single .npy array "
                     f"of shape {getattr(z, 'shape', '?')}")
            with z:
                keys = list(z.files)
                xk = next((k for k in _X_KEYS if k in keys), None)
                if xk is None:
                    fail(f"expected an array named 'x' (images); found arrays {keys}")
                x = z[xk]
                yk = next((k for k in _Y_KEYS if k in keys), None)
                y = z[yk] if yk is not None else None
                names = z["class_names"] if "class_names" in keys else None
    except DatasetFormatError:
        raise
    except Exception as exc:  # zipfile/zlib/numpy raise many types on corrupt archives
        raise DatasetFormatError(path, f"not a readable .npz archive ({type(exc).__name__}: "
                                       f"{exc})") from None
    images = to_uint8_images(x, fail, what=f"array {xk!r}")
    name = path.stem
    if y is None:
        return ImageDataset(images, None, name, [], 0)
    labels, class_names, n_classes = to_labels(y, len(images), fail, what=f"array {yk!r}")
    if names is not None:
        names = [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(names)]
        top = int(labels.max()) if len(labels) else -1
        if top >= len(names):
            fail(f"'class_names' has {len(names)} entries but labels go up to {top}")
        class_names, n_classes = names, len(names)
    return ImageDataset(images, labels, name, class_names, n_classes)


def load_digits_dataset(split: str = "all") -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1797 images, values 0..16 scaled to 0..255).

    The data has no official train/test split: "all" and "train" both return all 1797 images.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    return ImageDataset(np.ascontiguousarray(images), labels, "digits",
                        [str(d) for d in range(10)], 10)


def digits_data_path() -> str:
    """Where scikit-learn keeps the bundled digits file (for ``dataset_status``)."""
    try:
        import sklearn.datasets

        return os.path.join(os.path.dirname(sklearn.datasets.__file__), "data", "digits.csv.gz")
    except Exception:  # pragma: no cover - sklearn is a hard dependency
        return "sklearn.datasets (bundled)"
