"""STL-10 binary version (``stl10_binary``).

``*_X.bin``: uint8, 3x96x96 = 27648 bytes per image, no header. Each image is stored
column-major (the layout of a MATLAB array): the bytes run over (C, W, H), so a block of
27648 bytes reshapes to (3, 96, 96) as (C, W, H) and is transposed to (C, H, W).
``*_y.bin``: one uint8 label per image, 1..10 (mapped to 0..9). ``class_names.txt``: one
name per line. ``unlabeled_X.bin`` holds 100,000 unlabelled images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ImageDataset
from .errors import DatasetFormatError, _MissingFile

__all__ = ["load_stl10", "STL10_IMAGE_BYTES"]

STL10_IMAGE_BYTES = 3 * 96 * 96
_CHUNK = 1024  # images per read: ~28 MB


def _n_images(path: Path) -> int:
    if not path.is_file():
        raise _MissingFile(path)
    size = path.stat().st_size
    if size == 0 or size % STL10_IMAGE_BYTES:
        raise DatasetFormatError(path, f"size {size} bytes is not a positive multiple of "
                                       f"{STL10_IMAGE_BYTES} (one 3x96x96 uint8 image)")
    return size // STL10_IMAGE_BYTES


def _read_images(path: Path, out: np.ndarray) -> None:
    """Fill ``out`` (n, 3, 96, 96) from ``path``, chunk by chunk, transposing W and H."""
    buf = np.empty((min(_CHUNK, len(out)), 3, 96, 96), dtype=np.uint8)
    with open(path, "rb") as f:
        for start in range(0, len(out), _CHUNK):
            k = min(_CHUNK, len(out) - start)
            view = buf[:k]
            got = f.readinto(memoryview(view).cast("B"))
            if got != view.nbytes:
                raise DatasetFormatError(path, f"ended early: expected "
                                               f"{len(out) * STL10_IMAGE_BYTES} bytes, "
                                               f"read {start * STL10_IMAGE_BYTES + got}")
            out[start:start + k] = view.transpose(0, 1, 3, 2)


def _read_labels(path: Path, n: int, x_name: str) -> np.ndarray:
    if not path.is_file():
        raise _MissingFile(path)
    labels = np.fromfile(path, dtype=np.uint8)
    if len(labels) != n:
        raise DatasetFormatError(path, f"expected {n} bytes (one label per image of {x_name}); "
                                       f"found {len(labels)}")
    if n and (labels.min() < 1 or labels.max() > 10):
        raise DatasetFormatError(path, f"labels must lie in 1..10; found range "
                                       f"{labels.min()}..{labels.max()}")
    return labels.astype(np.int64) - 1


def _class_names(folder: Path) -> list[str]:
    path = folder / "class_names.txt"
    if not path.is_file():
        raise _MissingFile(path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    names = [n for n in names if n]
    if len(names) != 10:
        raise DatasetFormatError(path, f"expected 10 class names (one per line); found "
                                       f"{len(names)}")
    return names


def load_stl10(folder, split: str = "all", include_unlabeled: bool = False) -> ImageDataset:
    """``split``: "train" (5,000), "test" (8,000), "all" (= train + test, 13,000) or
    "unlabeled" (100,000, labels None). ``include_unlabeled=True`` appends the unlabelled
    images, with label -1, to a train/test/all split (e.g. train + unlabeled for pretraining).
    The dataset's ``parts`` name the images of each split loaded ("train", "test", "unlabeled").
    """
    folder = Path(folder)
    parts = {"train": ["train"], "test": ["test"], "all": ["train", "test"],
             "unlabeled": []}[split]
    with_unlabeled = split == "unlabeled" or bool(include_unlabeled)
    files = [(folder / f"{p}_X.bin", folder / f"{p}_y.bin") for p in parts]
    if with_unlabeled:
        files.append((folder / "unlabeled_X.bin", None))
    for x, y in files:  # report missing files before reading gigabytes
        for p in (x, y):
            if p is not None and not p.is_file():
                raise _MissingFile(p)
    names = _class_names(folder) if parts else []
    counts = [_n_images(x) for x, _ in files]
    labels = [_read_labels(y, n, x.name) if y is not None else np.full(n, -1, np.int64)
              for (x, y), n in zip(files, counts)]
    images = np.empty((sum(counts), 3, 96, 96), dtype=np.uint8)
    offset, loaded = 0, {}
    for name, (x, _), n in zip(parts + ["unlabeled"], files, counts):
        _read_images(x, images[offset:offset + n])
        loaded[name] = np.arange(offset, offset + n)
        offset += n
    if not parts:
        return ImageDataset(images, None, "stl10", [], 0, parts=loaded)
    return ImageDataset(images, np.concatenate(labels), "stl10", names, 10, parts=loaded)
