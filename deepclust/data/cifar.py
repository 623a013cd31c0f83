"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches.

Each batch is a pickled dict with ``data``: uint8 (n, 3072), one row per 32x32 image, stored
as the 1024 red values then 1024 green then 1024 blue, each plane row-major; so a row reshapes
to (3, 32, 32) directly. CIFAR-10: ``labels`` (list of 0..9) in ``data_batch_1..5`` and
``test_batch``; ``batches.meta`` has ``label_names``. CIFAR-100: ``fine_labels`` and
``coarse_labels`` in ``train`` and ``test``; ``meta`` has ``fine_label_names`` and
``coarse_label_names``.

The pickles are read with a restricted unpickler (``encoding="bytes"``, as the files were
written by Python 2) that only resolves the few numpy globals needed to rebuild arrays, so a
tampered file cannot run code; anything else is reported as a DatasetFormatError.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, _MissingFile

__all__ = ["load_pickle", "load_cifar10", "load_cifar100"]

_ALLOWED_GLOBALS = {
    (mod, name)
    for core in ("numpy.core", "numpy._core")
    for mod, name in ((f"{core}.multiarray", "_reconstruct"), (f"{core}.multiarray", "scalar"),
                      (f"{core}.numeric", "_frombuffer"))
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global '{module}.{name}' "
                                     f"(only numpy arrays, lists, dicts and strings are expected)")


def load_pickle(path) -> dict:
    """Unpickle one batch file as a dict with ``str`` keys (bytes keys are decoded)."""
    path = Path(path)
    if not path.is_file():
        raise _MissingFile(path)
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, TypeError, ...
        raise DatasetFormatError(path, f"not a readable pickle file ({type(exc).__name__}: "
                                       f"{exc})") from None
    if not isinstance(obj, dict):
        raise DatasetFormatError(path, f"expected a pickled dict; found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _get(d: dict, key: str, path: Path):
    if key not in d:
        raise DatasetFormatError(path, f"missing key {key!r}; found keys "
                                       f"{sorted(map(str, d))}")
    return d[key]


def _names(meta: dict, key: str, path: Path, n: int) -> list[str]:
    names = _get(meta, key, path)
    try:
        names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in names]
    except Exception:
        raise DatasetFormatError(path, f"{key!r} must be a list of names; found "
                                       f"{type(names).__name__}") from None
    if len(names) != n:
        raise DatasetFormatError(path, f"{key!r} must list {n} names; found {len(names)}")
    return names


def _batch(path: Path, label_key: str, n_classes: int):
    d = load_pickle(path)
    data = _get(d, "data", path)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(path, f"'data' must be a uint8 array (n, 3072); found {desc}")
    if data.dtype != np.uint8:
        if data.dtype.kind not in "iu" or (data.size and (data.min() < 0 or data.max() > 255)):
            raise DatasetFormatError(path, f"'data' must hold uint8 pixel values; found dtype "
                                           f"{data.dtype}")
        data = data.astype(np.uint8)
    try:
        labels = np.asarray(_get(d, label_key, path), dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise DatasetFormatError(path, f"{label_key!r} must be a list of integers") from None
    if len(labels) != len(data):
        raise DatasetFormatError(path, f"{label_key!r} has {len(labels)} entries but 'data' has "
                                       f"{len(data)} rows")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DatasetFormatError(path, f"{label_key!r} must lie in 0..{n_classes - 1}; found "
                                       f"range {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def _assemble(folder: Path, files: list[str], label_key: str, names: list[str], name: str):
    parts = [_batch(folder / f, label_key, len(names)) for f in files]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return ImageDataset(np.ascontiguousarray(images), labels, name, names, len(names))


CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def load_cifar10(folder, split: str = "all") -> ImageDataset:
    folder = Path(folder)
    files = {"train": CIFAR10_TRAIN, "test": ["test_batch"],
             "all": CIFAR10_TRAIN + ["test_batch"]}[split]
    for f in files + ["batches.meta"]:  # report a missing file before reading anything
        if not (folder / f).is_file():
            raise _MissingFile(folder / f)
    meta_path = folder / "batches.meta"
    names = _names(load_pickle(meta_path), "label_names", meta_path, 10)
    return _assemble(folder, files, "labels", names, "cifar10")


def load_cifar100(folder, split: str = "all", label_level: str = "coarse") -> ImageDataset:
    """``label_level="coarse"`` (default): the 20 superclasses (the "CIFAR-100-20" of the
    clustering literature); ``"fine"``: the 100 classes."""
    if label_level not in ("coarse", "fine"):
        raise ValueError(f"label_level must be 'coarse' or 'fine'; got {label_level!r}")
    folder = Path(folder)
    files = {"train": ["train"], "test": ["test"], "all": ["train", "test"]}[split]
    for f in files + ["meta"]:
        if not (folder / f).is_file():
            raise _MissingFile(folder / f)
    meta_path = folder / "meta"
    n = 20 if label_level == "coarse" else 100
    names = _names(load_pickle(meta_path), f"{label_level}_label_names", meta_path, n)
    return _assemble(folder, files, f"{label_level}_labels", names, "cifar100")
